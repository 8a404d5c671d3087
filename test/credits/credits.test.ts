import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import type { KeygateOptions } from '../../lib/index.js'
import { buildApp, testClock } from '../helpers/app.js'

// The test clock starts at 2026-03-03T12:00:00Z: half a day before the next UTC day.
const TO_NEXT_DAY = 43_200
const OUT = { error: 'credits_exhausted', message: 'API key has no credits left.' }
const refillIn = (seconds: number) => ({
  error: 'credits_exhausted',
  message: `API key has no credits left. Credits refill in ${seconds} seconds.`,
  retry_after: seconds
})

async function setup (t: Test, keygate: Partial<KeygateOptions> = {}, start?: number) {
  const clock = testClock(start)
  const app = await buildApp(t, {
    keygate: { now: clock.now, ...keygate },
    routes: (app) => {
      app.get('/data', async () => ({ ok: true }))
      app.get('/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
    }
  })
  const { apiKey: admin } = await app.keygate.createKey({ name: 'admin', plan: 'enterprise', rateLimit: { perMinute: 10_000 } })
  const get = async (key: string, url = '/data') => await app.inject({ url, headers: { authorization: key } })
  return { app, clock, admin, get }
}

async function listed (app: FastifyInstance, admin: string, name: string) {
  const res = await app.inject({ url: '/api/v1/keys/list', headers: { authorization: admin } })
  return res.json().find((key: { name: string }) => key.name === name).credits
}

const limitHeaders = (res: { headers: Record<string, unknown> }) =>
  [res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['retry-after']]

t.test('in-process store: 200 requests at once against 150 credits admit exactly 150', async (t) => {
  const { app, admin, get } = await setup(t)
  const { apiKey, credits } = await app.keygate.createKey({ name: 'prepaid', plan: 'enterprise', rateLimit: { perMinute: 1000 }, credits: { remaining: 150 } })
  t.same(credits, { remaining: 150, refill: null }, 'the create answer shows the credits set')
  const responses = await Promise.all(Array.from({ length: 200 }, async () => await get(apiKey)))
  const admitted = responses.filter((res) => res.statusCode === 200)
  const refused = responses.filter((res) => res.statusCode === 429)
  t.equal(admitted.length, 150)
  t.equal(refused.length, 50)
  for (const res of refused) {
    t.same(res.json(), OUT)
    t.equal(res.headers['retry-after'], undefined, 'credits that never refill: no Retry-After')
  }
  t.same(await listed(app, admin, 'prepaid'), { remaining: 0, refill: null })
})

t.test('a daily refill: Retry-After to the next UTC day, then the credits left become the amount', async (t) => {
  const { app, clock, admin, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'daily', credits: { remaining: 2, refill: { amount: 5, interval: 'day' } } })
  t.equal((await get(apiKey)).statusCode, 200)
  t.same(await listed(app, admin, 'daily'), { remaining: 1, refill: { amount: 5, interval: 'day' } })
  t.equal((await get(apiKey)).statusCode, 200)
  clock.advance(1_500)
  const refused = await get(apiKey)
  t.equal(refused.statusCode, 429)
  t.same(refused.json(), refillIn(TO_NEXT_DAY - 1))
  t.same(limitHeaders(refused), ['60', '58', String(TO_NEXT_DAY - 1)], 'the rate-limit headers still tell of the minute; Retry-After of the refill')

  clock.advance(TO_NEXT_DAY * 1000 - 1_501)
  t.equal((await get(apiKey)).statusCode, 429, 'still the same day')
  clock.advance(1)
  t.same(await listed(app, admin, 'daily'), { remaining: 5, refill: { amount: 5, interval: 'day' } }, 'refilled to the amount, not added to')
  for (let i = 0; i < 5; i++) t.equal((await get(apiKey)).statusCode, 200)
  const again = await get(apiKey)
  t.same(again.json(), refillIn(86_400))
  t.equal(again.headers['retry-after'], '86400')
})

t.test('a monthly refill follows the calendar: February is 28 days', async (t) => {
  // 2026-02-27T12:00Z: a day and a half to March.
  const { app, clock, admin, get } = await setup(t, {}, Date.UTC(2026, 1, 27, 12))
  const { apiKey } = await app.keygate.createKey({ name: 'monthly', credits: { remaining: 1, refill: { amount: 3, interval: 'month' } } })
  t.equal((await get(apiKey)).statusCode, 200)
  const refused = await get(apiKey)
  t.same(refused.json(), refillIn(129_600))
  t.equal(refused.headers['retry-after'], '129600')
  clock.advance(129_600_000)
  t.same(await listed(app, admin, 'monthly'), { remaining: 3, refill: { amount: 3, interval: 'month' } })
  for (let i = 0; i < 3; i++) t.equal((await get(apiKey)).statusCode, 200)
  t.same((await get(apiKey)).json(), refillIn(31 * 86_400), 'March has 31 days')
})

t.test('a 403 uses no credit; a credit refusal wins over the scope', async (t) => {
  const { app, admin, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'scoped', scopes: ['query'], credits: { remaining: 1 } })
  const forbidden = await get(apiKey, '/federate')
  t.equal(forbidden.statusCode, 403)
  t.same(forbidden.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: federate' })
  t.equal(forbidden.headers['x-ratelimit-remaining'], '59', 'counted against the rate limit, as before')
  t.same(await listed(app, admin, 'scoped'), { remaining: 1, refill: null }, 'but no credit used')
  t.equal((await get(apiKey)).statusCode, 200)
  t.same((await get(apiKey)).json(), OUT)
  t.equal((await get(apiKey, '/federate')).statusCode, 403, 'a request refused for its scope is still a 403 when credits are gone')
})

t.test('a rate-limit refusal uses no credit, and a credit refusal no rate-limit count', async (t) => {
  const { app, clock, admin, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'both', rateLimit: { perMinute: 2, perHour: 100 }, credits: { remaining: 3 } })
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 200)
  const limited = await get(apiKey)
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error, 'rate_limit_exceeded')
  t.same(await listed(app, admin, 'both'), { remaining: 1, refill: null }, 'the refused request used no credit')

  clock.advance(60_000)
  const last = await get(apiKey)
  t.equal(last.statusCode, 200)
  t.same(limitHeaders(last), ['2', '1', undefined])
  const out = await get(apiKey)
  t.same(out.json(), OUT)
  t.same(limitHeaders(out), ['2', '1', undefined], 'the minute still has the one request left: the refusal was not counted')
  const outAgain = await get(apiKey)
  t.same(limitHeaders(outAgain), ['2', '1', undefined])
  t.equal((await get(apiKey)).statusCode, 429)
})

t.test('a rate window and the credits both refuse: credits_exhausted', async (t) => {
  const { app, clock, get } = await setup(t, {}, Date.UTC(2026, 2, 3, 23, 59, 30))
  const { apiKey } = await app.keygate.createKey({ name: 'tight', rateLimit: { perMinute: 1 }, credits: { remaining: 1, refill: { amount: 1, interval: 'day' } } })
  t.equal((await get(apiKey)).statusCode, 200)
  clock.advance(10_000)
  const refused = await get(apiKey)
  t.same(refused.json(), refillIn(20))
  t.same(limitHeaders(refused), ['1', '0', '20'])
})

t.test('PATCH sets credits afresh and clears them', async (t) => {
  const { app, admin, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'patched' })
  const patch = async (body: unknown) => await app.inject({ method: 'PATCH', url: '/api/v1/keys/patched', headers: { authorization: admin }, payload: body as object })
  const set = await patch({ credits: { remaining: 1 } })
  t.equal(set.statusCode, 200)
  t.same(set.json().credits, { remaining: 1, refill: null })
  t.equal((await get(apiKey)).statusCode, 200)
  t.same((await get(apiKey)).json(), OUT)

  const again = await patch({ credits: { remaining: 2, refill: { amount: 10, interval: 'month' } } })
  t.same(again.json().credits, { remaining: 2, refill: { amount: 10, interval: 'month' } }, 'set again: what was used before no longer counts')
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 429)

  const other = await patch({ scopes: ['query'] })
  t.same(other.json().credits, { remaining: 0, refill: { amount: 10, interval: 'month' } }, 'another change leaves them, and shows what is left')

  const cleared = await patch({ credits: null })
  t.equal(cleared.statusCode, 200)
  t.equal(cleared.json().credits, null)
  t.equal((await get(apiKey)).statusCode, 200, 'no credits: only the rate limits apply')
  t.same(await listed(app, admin, 'patched'), null)

  // Set twice within one millisecond (the test clock stands still): still a fresh count.
  await patch({ credits: { remaining: 1 } })
  t.equal((await get(apiKey)).statusCode, 200)
  await patch({ credits: { remaining: 1 } })
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 429)
})

t.test('rotation keeps the lineage and so what is left of the credits', async (t) => {
  const { app, get } = await setup(t)
  const { apiKey } = await app.keygate.createKey({ name: 'rotated', credits: { remaining: 3 } })
  t.equal((await get(apiKey)).statusCode, 200)
  t.equal((await get(apiKey)).statusCode, 200)
  const rotated = await app.keygate.rotateKey('rotated')
  t.same(rotated.credits, { remaining: 1, refill: null })
  t.equal((await get(rotated.apiKey)).statusCode, 200)
  t.same((await get(rotated.apiKey)).json(), OUT)
})

t.test('credits are validated: 400 credits_invalid', async (t) => {
  const { app, admin } = await setup(t)
  await app.keygate.createKey({ name: 'target' })
  const message = 'credits takes remaining (a whole number, 0 or more) and optionally refill: { amount (a whole number, 1 or more), interval ("day" or "month") }'
  const bad = [
    {},
    { remaining: -1 },
    { remaining: 1.5 },
    { remaining: '5' },
    { remaining: 1, refill: { amount: 0, interval: 'day' } },
    { remaining: 1, refill: { amount: 1, interval: 'week' } },
    { remaining: 1, refill: { amount: 1 } },
    { remaining: 1, refill: null },
    { remaining: 1, extra: true },
    'lots'
  ]
  for (const credits of bad) {
    const created = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: admin }, payload: { name: 'x', credits } })
    t.equal(created.statusCode, 400, JSON.stringify(credits))
    t.same(created.json(), { error: 'credits_invalid', message: `${message}.` })
    const patched = await app.inject({ method: 'PATCH', url: '/api/v1/keys/target', headers: { authorization: admin }, payload: { credits } })
    t.equal(patched.statusCode, 400, JSON.stringify(credits))
    t.same(patched.json(), { error: 'credits_invalid', message: `${message}, or null to remove them.` })
  }
  const created = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: admin }, payload: { name: 'x', credits: null } })
  t.same(created.json(), { error: 'credits_invalid', message: `${message}.` }, 'create takes no null: leave credits out')
  await t.rejects(app.keygate.createKey({ name: 'y', credits: { remaining: -1 } }), { code: 'FST_KEYGATE_CREDITS_INVALID', statusCode: 400 })
})

t.test('management never exceeds its caller: a key with credits cannot grant more', async (t) => {
  const { app } = await setup(t)
  const { apiKey: manager } = await app.keygate.createKey({
    name: 'manager',
    scopes: ['keys:read', 'keys:write', 'query'],
    credits: { remaining: 100, refill: { amount: 10, interval: 'month' } }
  })
  const create = async (body: object) => await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: manager }, payload: { scopes: ['query'], ...body } })
  const refusals: Array<[object, string]> = [
    [{ name: 'a' }, 'no credits, which is unlimited (its own: 100 remaining)'],
    [{ name: 'b', credits: { remaining: 101 } }, '101 remaining (its own: 100)'],
    [{ name: 'c', credits: { remaining: 1, refill: { amount: 11, interval: 'month' } } }, 'a refill of 11 a month (its own: 10 a month)'],
    [{ name: 'd', credits: { remaining: 1, refill: { amount: 1, interval: 'day' } } }, 'a refill of 1 a day (its own: 10 a month)']
  ]
  for (const [body, detail] of refusals) {
    const res = await create(body)
    t.equal(res.statusCode, 403, detail)
    t.same(res.json(), { error: 'credits_exceed_caller', message: `API key cannot grant credits above its own: ${detail}` })
  }
  const within = await create({ name: 'ok', credits: { remaining: 100, refill: { amount: 10, interval: 'month' } } })
  t.equal(within.statusCode, 200)
  t.same(within.json().credits, { remaining: 100, refill: { amount: 10, interval: 'month' } })

  const patch = async (body: object) => await app.inject({ method: 'PATCH', url: '/api/v1/keys/ok', headers: { authorization: manager }, payload: body })
  const cleared = await patch({ credits: null })
  t.equal(cleared.statusCode, 403)
  t.same(cleared.json(), { error: 'credits_exceed_caller', message: 'API key cannot grant credits above its own: no credits, which is unlimited (its own: 100 remaining)' })
  t.equal((await patch({ credits: { remaining: 500 } })).statusCode, 403)
  t.equal((await patch({ credits: { remaining: 5 } })).statusCode, 200, 'less is fine')

  // A key of the admin's without credits: the manager may not change it in any other way either.
  await app.keygate.createKey({ name: 'free-for-all', scopes: ['query'] })
  const renamed = await app.inject({ method: 'PATCH', url: '/api/v1/keys/free-for-all', headers: { authorization: manager }, payload: { name: 'mine-now' } })
  t.equal(renamed.statusCode, 403)
  t.equal(renamed.json().error, 'credits_exceed_caller')

  // Full access (`*`) is not bound by its own credits, as with rate limits.
  const { apiKey: root } = await app.keygate.createKey({ name: 'root', credits: { remaining: 5 } })
  const res = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: root }, payload: { name: 'big', credits: { remaining: 1000 } } })
  t.equal(res.statusCode, 200)
})
