import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import keygate, { type KeygateOptions } from '../../lib/index.js'
import { buildApp, FAST_ARGON2, testClock } from '../helpers/app.js'
import { openTestDatabase } from '../helpers/database.js'

// The test clock starts at 2026-03-03T12:00:00Z; these are its minute's and hour's ends in Unix seconds.
const MINUTE_END = String(Date.UTC(2026, 2, 3, 12, 1, 0) / 1000)
const HOUR_END = String(Date.UTC(2026, 2, 3, 13, 0, 0) / 1000)

async function setup (t: Test, keygate: Partial<KeygateOptions> = {}) {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { now: clock.now, ...keygate },
    routes: (app) => {
      app.get('/data', async () => ({ ok: true }))
      app.get('/boom', async () => { throw new Error('host failure') })
      app.get('/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
    }
  })
  const get = async (key: string, url = '/data') => await app.inject({ url, headers: { authorization: key } })
  return { app, clock, get }
}

function limitHeaders (res: { headers: Record<string, unknown> }) {
  return [res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset']]
}

t.test('every response to a key carries the binding window; the 429 body and Retry-After', async (t) => {
  const { app, clock, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'free-key' })
  const first = await get(apiKey)
  t.equal(first.statusCode, 200)
  t.same(limitHeaders(first), ['60', '59', MINUTE_END], 'free plan: 60 a minute binds before 1,000 an hour')

  for (let i = 2; i <= 60; i++) await get(apiKey)
  clock.advance(17_500)
  const refused = await get(apiKey)
  t.equal(refused.statusCode, 429)
  t.same(refused.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 43 seconds.', retry_after: 43 })
  t.equal(refused.headers['retry-after'], '43', 'whole seconds, rounded up, to the end of the minute')
  t.same(limitHeaders(refused), ['60', '0', MINUTE_END])

  clock.advance(42_499)
  const lastMoment = await get(apiKey)
  t.equal(lastMoment.headers['retry-after'], '1', 'never less than 1')
  clock.advance(1)
  const next = await get(apiKey)
  t.equal(next.statusCode, 200, 'the next minute has room again')
  t.same(limitHeaders(next), ['60', '59', String(Number(MINUTE_END) + 60)])
})

t.test('the hour window refuses while the minute has room, and then binds the headers', async (t) => {
  const { app, clock, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'tight-hour', rateLimit: { perMinute: 5, perHour: 7 } })
  for (let i = 0; i < 2; i++) await get(apiKey)
  const third = await get(apiKey)
  t.same(limitHeaders(third), ['5', '2', MINUTE_END], 'minute: 2 left; hour: 4 left')
  clock.advance(60_000)
  const fourth = await get(apiKey)
  t.same(limitHeaders(fourth), ['7', '3', HOUR_END], 'minute: 4 left; hour: 3 left, so the hour binds')
  for (let i = 0; i < 3; i++) t.equal((await get(apiKey)).statusCode, 200)
  const refused = await get(apiKey)
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().retry_after, 3540, 'until the hour ends')
  t.same(limitHeaders(refused), ['7', '0', HOUR_END])
})

t.test('both windows full: Retry-After is the time until both have room, the later reset', async (t) => {
  const { app, clock, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'both-full', rateLimit: { perMinute: 2, perHour: 2 } })
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 200)
  clock.advance(17_500)
  const refused = await get(apiKey)
  t.equal(refused.statusCode, 429)
  // The minute has room again in 42.5 s, the hour in 3,582.5 s: only then would a retry succeed.
  t.equal(refused.headers['retry-after'], '3583', 'to the end of the hour, not of the minute')
  t.same(refused.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 3583 seconds.', retry_after: 3583 })
  t.same(limitHeaders(refused), ['2', '0', HOUR_END], 'the headers name the window that frees up last')

  clock.advance(42_500)
  const nextMinute = await get(apiKey)
  t.equal(nextMinute.statusCode, 429, 'a new minute, but the hour is still full')
  t.equal(nextMinute.headers['retry-after'], '3540')
})

t.test('a refused request consumes nothing', async (t) => {
  const { app, clock, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'k', rateLimit: { perMinute: 2, perHour: 5 } })
  await get(apiKey)
  await get(apiKey)
  for (let i = 0; i < 10; i++) t.equal((await get(apiKey)).statusCode, 429)
  clock.advance(60_000)
  t.same(limitHeaders(await get(apiKey)), ['2', '1', String(Number(MINUTE_END) + 60)], 'the hour counted only the 3 admitted requests')
  const res = await get(apiKey)
  t.equal(res.headers['x-ratelimit-remaining'], '0')
  clock.advance(60_000)
  t.same(limitHeaders(await get(apiKey)), ['5', '0', HOUR_END], '5th of the hour admitted: refused ones never counted')
})

t.test('headers on 403, 404, a host error and the management routes', async (t) => {
  const { app, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'narrow', scopes: ['query', 'keys:read'] })
  const forbidden = await get(apiKey, '/federate')
  t.equal(forbidden.statusCode, 403)
  t.same(limitHeaders(forbidden), ['60', '59', MINUTE_END])
  const missing = await get(apiKey, '/nowhere')
  t.equal(missing.statusCode, 404)
  t.same(limitHeaders(missing), ['60', '58', MINUTE_END])
  const boom = await get(apiKey, '/boom')
  t.equal(boom.statusCode, 500)
  t.same(limitHeaders(boom), ['60', '57', MINUTE_END])
  const list = await get(apiKey, '/api/v1/keys/list')
  t.equal(list.statusCode, 200)
  t.same(limitHeaders(list), ['60', '56', MINUTE_END], 'management routes count like any other')
  const anonymous = await app.inject({ url: '/data' })
  t.equal(anonymous.headers['x-ratelimit-limit'], undefined, 'no headers without an identified key')
})

t.test('management routes answer 429 with the full body', async (t) => {
  const { app, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'manager', rateLimit: { perMinute: 1 } })
  await get(apiKey, '/api/v1/keys/list')
  const refused = await get(apiKey, '/api/v1/keys/list')
  t.equal(refused.statusCode, 429)
  t.same(refused.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retry_after: 60 })
})

t.test('plans, custom limits and their validation', async (t) => {
  const { app, get } = await setup(t)
  const pro = await app.keygate.createKey({ name: 'pro', plan: 'pro' })
  t.same(pro.limits, { perMinute: 300, perHour: 10_000 })
  t.same(limitHeaders(await get(pro.apiKey)), ['300', '299', MINUTE_END])

  const enterprise = await app.keygate.createKey({ name: 'ent', plan: 'enterprise', rateLimit: { perMinute: 5000, perHour: 100_000 } })
  t.same(enterprise.limits, { perMinute: 5000, perHour: 100_000 })
  t.equal(enterprise.plan, 'enterprise')
  t.same(limitHeaders(await get(enterprise.apiKey)), ['5000', '4999', MINUTE_END])

  const minuteOnly = await app.keygate.createKey({ name: 'minute-only', plan: 'enterprise', rateLimit: { perMinute: 10 } })
  t.same(minuteOnly.limits, { perMinute: 10, perHour: null }, 'a window left out is not limited')

  const override = await app.keygate.createKey({ name: 'override', rateLimit: { perHour: 50 } })
  t.same(override.limits, { perMinute: 60, perHour: 50 }, 'a per-key limit replaces only its own window')

  const admin = (await app.keygate.createKey({ name: 'admin' })).apiKey
  const create = async (body: object) => await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: admin }, payload: body })
  const rateLimitInvalid = { error: 'rate_limit_invalid', message: 'rateLimit takes perMinute and/or perHour, each a positive integer.' }
  const cases: Array<[object, object]> = [
    [{ name: 'x', plan: 'gold' }, { error: 'plan_invalid', message: 'The plan must be one of the following: free, pro, enterprise' }],
    [{ name: 'x', plan: 'enterprise' }, { error: 'rate_limit_required', message: 'Plan enterprise has no limits of its own: set rateLimit.perMinute and/or rateLimit.perHour.' }],
    [{ name: 'x', rateLimit: { perMinute: 0 } }, rateLimitInvalid],
    [{ name: 'x', rateLimit: { perMinute: 1.5 } }, rateLimitInvalid],
    [{ name: 'x', rateLimit: { perMinute: '5' } }, rateLimitInvalid],
    [{ name: 'x', rateLimit: { perMinute: -1 } }, rateLimitInvalid],
    [{ name: 'x', rateLimit: { perDay: 5 } }, rateLimitInvalid],
    [{ name: 'x', rateLimit: {} }, rateLimitInvalid]
  ]
  for (const [body, expected] of cases) {
    const res = await create(body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.same(res.json(), expected, JSON.stringify(body))
  }
  const listed = await get(admin, '/api/v1/keys/list')
  t.same(listed.json().find((k: { name: string }) => k.name === 'ent'), {
    name: 'ent', identifier: enterprise.identifier, created: enterprise.created, for: 'GENERIC',
    scopes: ['*'], plan: 'enterprise', limits: { perMinute: 5000, perHour: 100_000 }, expires: null, owner: null, serviceAccount: true, rotationDue: false, rotatingFrom: null, lastUsed: null, requests: 0, credits: null
  }, 'the list shows scopes, plan and limits')
})

t.test('header styles: ietf and both', async (t) => {
  const ietf = await setup(t, { headers: 'ietf' })
  const key = (await ietf.app.keygate.createKey({ name: 'k' })).apiKey
  ietf.clock.advance(43_000)
  const res = await ietf.get(key)
  t.equal(res.headers['ratelimit-policy'], '"minute";q=60;w=60, "hour";q=1000;w=3600')
  t.equal(res.headers.ratelimit, '"minute";r=59;t=17')
  t.equal(res.headers['x-ratelimit-limit'], undefined)

  const both = await setup(t, { headers: 'both' })
  const key2 = (await both.app.keygate.createKey({ name: 'k', rateLimit: { perHour: 2 } })).apiKey
  const res2 = await both.get(key2)
  t.equal(res2.headers.ratelimit, '"hour";r=1;t=3600')
  t.equal(res2.headers['ratelimit-policy'], '"minute";q=60;w=60, "hour";q=2;w=3600')
  t.same(limitHeaders(res2), ['2', '1', HOUR_END])
})

t.test('custom plans and defaultPlan', async (t) => {
  const { app, get } = await setup(t, { plans: { basic: { perMinute: 3 }, unlimited: {} }, defaultPlan: 'basic' })
  const key = await app.keygate.createKey({ name: 'k' })
  t.equal(key.plan, 'basic')
  t.same(key.limits, { perMinute: 3, perHour: null })
  t.same(limitHeaders(await get(key.apiKey)), ['3', '2', MINUTE_END])
})

t.test('a custom store is used as given', async (t) => {
  const calls: string[] = []
  const { app, get } = await setup(t, {
    rateLimitStore: {
      consume: async ({ keyId, windows }) => {
        calls.push(`${keyId}:${windows.map((w) => `${w.name}=${w.limit}`).join(',')}`)
        return { allowed: true, counts: windows.map(() => 10) }
      }
    }
  })
  const key = await app.keygate.createKey({ name: 'k' })
  const res = await get(key.apiKey)
  t.same(limitHeaders(res), ['60', '50', MINUTE_END])
  t.same(calls, [`${key.identifier.split('.')[1]}:minute=60,hour=1000`])
})

t.test('a plan removed from the options: its keys get the default plan\'s limits, and keep their own', async (t) => {
  const database = await openTestDatabase()
  const clock = testClock()
  const apps: FastifyInstance[] = []
  t.teardown(async () => { for (const app of apps) await app.close(); await database.close() })
  // An app on this test's schema, as a host restarted with other options would build it.
  const start = async (keygateOptions: Partial<KeygateOptions>) => {
    const app = Fastify()
    apps.push(app)
    await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, now: clock.now, ...keygateOptions })
    app.get('/data', async () => ({ ok: true }))
    await app.ready()
    return app
  }
  const get = async (app: FastifyInstance, key: string) => await app.inject({ url: '/data', headers: { authorization: key } })

  const before = await start({})
  const pro = await before.keygate.createKey({ name: 'pro', plan: 'pro' })
  const proOwn = await before.keygate.createKey({ name: 'pro-own', plan: 'pro', rateLimit: { perMinute: 7 } })
  t.same(limitHeaders(await get(before, pro.apiKey)), ['300', '299', MINUTE_END], 'pro while the options have it')
  t.same(limitHeaders(await get(before, proOwn.apiKey)), ['7', '6', MINUTE_END])
  await before.close()

  const after = await start({ plans: { free: { perMinute: 60, perHour: 1000 }, enterprise: {} } })
  t.same(limitHeaders(await get(after, pro.apiKey)), ['60', '59', MINUTE_END], 'the default plan (free) in place of pro')
  t.same(limitHeaders(await get(after, proOwn.apiKey)), ['7', '6', MINUTE_END], 'its own perMinute stays')
  t.same((await after.keygate.listKeys()).map((k) => [k.name, k.plan, k.limits]), [
    ['pro', 'pro', { perMinute: 60, perHour: 1000 }],
    ['pro-own', 'pro', { perMinute: 7, perHour: 1000 }]
  ], 'the stored plan name is kept; the limits are the default plan\'s where the key has none of its own')
})
