import t from 'tap'
import { testClock } from '../helpers/app.js'
import { database, heard, instance } from '../helpers/instance.js'
import { keyIdOf } from '../helpers/keys.js'
import { needsRedis } from '../helpers/redis.js'

// Issue 13, updates: PATCH {prefix}/:name changes name, scopes, plan, rateLimit or expiresAt,
// validated as create validates them, and every instance applies it at the key's next request.

const denied = (scope: string) => ({ error: 'insufficient_scope', message: `API key lacks required permission: ${scope}` })
const invalid = (message: string) => ({ error: 'invalid_request', message })

t.test('PATCH changes the key and answers its listing shape; the next request sees the change', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  const created = await a.app.keygate.createKey({ name: 'svc', scopes: ['query', 'connector:write'] })
  t.equal((await a.call(created.apiKey, 'POST', '/v1/connectors')).statusCode, 200, 'cached, with connector:write')

  const res = await a.call(admin, 'PATCH', '/api/v1/keys/svc', {
    name: 'svc-renamed', scopes: ['query'], plan: 'pro', rateLimit: { perMinute: 3 }, expiresAt: '2027-01-01T00:00:00Z'
  })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    name: 'svc-renamed',
    identifier: created.identifier,
    created: created.created,
    for: 'GENERIC',
    scopes: ['query'],
    plan: 'pro',
    limits: { perMinute: 3, perHour: 10_000 },
    expires: '2027-01-01T00:00:00.000Z',
    owner: null,
    serviceAccount: true,
    rotationDue: false,
    rotatingFrom: null,
    lastUsed: null,
    requests: 0,
    credits: null
  }, 'the same key (identifier, created) with the changes (usage as of the last flush: none yet)')
  t.equal(JSON.stringify(res.json()).includes(created.apiKey), false, 'never the key')

  const after = await a.call(created.apiKey, 'POST', '/v1/connectors')
  t.same([after.statusCode, after.json()], [403, denied('connector:write')], 'the scope taken away is gone at the next request')
  t.equal(after.headers['x-ratelimit-limit'], '3', 'and the new limit counts')
  t.same((await a.call(created.apiKey)).json(), { scopes: ['query'] }, 'request.apiKey shows the new scopes')
  t.same((await a.app.keygate.listKeys()).map((k) => k.name), ['admin', 'svc-renamed'])
})

t.test('null clears: rateLimit back to the plan\'s, expiresAt to never', async (t) => {
  const a = await instance(t, await database(t))
  await a.app.keygate.createKey({ name: 'svc', rateLimit: { perHour: 50 }, expiresInDays: 3 })
  const cleared = await a.app.keygate.updateKey('svc', { rateLimit: null, expiresAt: null })
  t.same([cleared.limits, cleared.expires], [{ perMinute: 60, perHour: 1000 }, null])
  const same = await a.app.keygate.updateKey('svc', { name: 'svc' })
  t.same(same, cleared, 'its own name again changes nothing')
})

t.test('PATCH refuses bad input as create does, in the envelope, and changes nothing', async (t) => {
  const a = await instance(t, await database(t))
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  await a.app.keygate.createKey({ name: 'svc', scopes: ['query'] })
  const allowed = 'name, owner, scopes, plan, rateLimit, expiresAt, credits'
  const cases: Array<[string, unknown, number, object]> = [
    ['an empty body', {}, 400, invalid(`Nothing to update. Give any of: ${allowed}.`)],
    ['an unknown property', { keyFor: 'AWS' }, 400, invalid(`Unknown property in request body. Allowed: ${allowed}.`)],
    ['a name taken', { name: 'admin' }, 400, { error: 'key_name_taken', message: 'Can not rename key to admin: a live key has that name' }],
    ['an empty name', { name: '' }, 400, { error: 'key_name_required', message: 'Key name is required.' }],
    ['a control character', { name: 'a\nb' }, 400, { error: 'key_name_invalid', message: 'Key name must be a string of 1 to 128 characters without control characters.' }],
    ['an unknown scope', { scopes: ['root'] }, 400, { error: 'scope_invalid', message: 'Unknown scope "root". Allowed: *, query, federate, connector:read, connector:write, audit:read, audit:export, keys:read, keys:write, connector:*, audit:*, keys:*' }],
    ['a plan without limits', { plan: 'enterprise' }, 400, { error: 'rate_limit_required', message: 'Plan enterprise has no limits of its own: set rateLimit.perMinute and/or rateLimit.perHour.' }],
    ['a limit as a string', { rateLimit: { perMinute: '5' } }, 400, { error: 'rate_limit_invalid', message: 'rateLimit takes perMinute and/or perHour, each a positive integer.' }],
    ['a past expiry', { expiresAt: '2001-01-01T00:00:00Z' }, 400, { error: 'expiry_invalid', message: 'expiresAt must be in the future.' }],
    ['expiresInDays is for create', { expiresInDays: 3 }, 400, invalid(`Unknown property in request body. Allowed: ${allowed}.`)],
    ['not an object', [1], 400, invalid('Request body must be a JSON object.')]
  ]
  for (const [label, body, status, expected] of cases) {
    const res = await a.call(admin, 'PATCH', '/api/v1/keys/svc', body as object)
    t.same([res.statusCode, res.json()], [status, expected], label)
  }
  const none = await a.app.inject({ method: 'PATCH', url: '/api/v1/keys/svc', headers: { authorization: admin } })
  t.same([none.statusCode, none.json()], [400, invalid(`Nothing to update. Give any of: ${allowed}.`)], 'no body')
  const unknown = await a.call(admin, 'PATCH', '/api/v1/keys/nobody', { plan: 'pro' })
  t.same([unknown.statusCode, unknown.json()], [404, { error: 'key_not_found', message: 'Did not find any matching keys for nobody' }])
  const reads = a.selects()
  t.equal((await a.call(admin, 'PATCH', `/api/v1/keys/${'x'.repeat(129)}`, { plan: 'pro' })).statusCode, 404, 'a name no key can have')
  t.equal(a.selects(), reads, 'is refused without a query')
  const svc = (await a.app.keygate.listKeys()).find((k) => k.name === 'svc')
  t.same([svc?.scopes, svc?.plan, svc?.expires], [['query'], 'free', null], 'nothing changed')
})

t.test('a caller changes only keys whose permissions it holds, and only within its own', async (t) => {
  const a = await instance(t, await database(t))
  await a.app.keygate.createKey({ name: 'root' })
  const manager = (await a.app.keygate.createKey({ name: 'manager', scopes: ['keys:write', 'query'], rateLimit: { perMinute: 10 } })).apiKey
  await a.app.keygate.createKey({ name: 'reader', scopes: ['query'], rateLimit: { perMinute: 5 } })
  const cases: Array<[string, string, object, object]> = [
    ['a key holding more than the caller', 'root', { plan: 'pro' }, denied('*')],
    ['a scope the caller lacks', 'reader', { scopes: ['query', 'federate'] }, denied('federate')],
    ['full access', 'reader', { scopes: ['*'] }, denied('*')],
    ['a limit above its own', 'reader', { rateLimit: { perMinute: 11 } }, { error: 'limit_exceeds_caller', message: 'API key cannot grant a rate limit above its own: 11 per minute (its own: 10)' }],
    ['its own limit raised', 'manager', { rateLimit: { perMinute: 1000 } }, { error: 'limit_exceeds_caller', message: 'API key cannot grant a rate limit above its own: 1000 per minute (its own: 10)' }],
    ['itself to full access', 'manager', { scopes: ['*'] }, denied('*')]
  ]
  for (const [label, name, body, expected] of cases) {
    const res = await a.call(manager, 'PATCH', `/api/v1/keys/${name}`, body)
    t.same([res.statusCode, res.json()], [403, expected], label)
  }
  const within = await a.call(manager, 'PATCH', '/api/v1/keys/reader', { rateLimit: { perMinute: 10 }, name: 'reader-2' })
  t.same([within.statusCode, within.json().limits], [200, { perMinute: 10, perHour: 1000 }], 'within its own is fine')
  const listed = await a.app.keygate.listKeys()
  t.same(listed.map((k) => [k.name, k.scopes, k.limits.perMinute]), [['root', ['*'], 60], ['manager', ['keys:write', 'query'], 10], ['reader-2', ['query'], 10]])
})

t.test('a rename carries the text in its grace period along', async (t) => {
  const a = await instance(t, await database(t))
  const original = (await a.app.keygate.createKey({ name: 'svc' })).apiKey
  const rotated = await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 600 })
  const renamed = await a.app.keygate.updateKey('svc', { name: 'svc-2', scopes: ['query'] })
  t.same(renamed.rotatingFrom, rotated.rotatingFrom, 'still listed as rotating from the old text')
  t.same((await a.call(original)).json(), { scopes: ['query'] }, 'the old text is the same key: it changed too')
  await a.app.keygate.createKey({ name: 'svc' })
  t.equal((await a.app.keygate.listKeys()).find((k) => k.name === 'svc')?.rotatingFrom, null, 'the old name is free, with nothing of the old key')
})

t.test('with Redis: an update takes effect on another instance at the key\'s next request', { skip: needsRedis }, async (t) => {
  const db = await database(t)
  const a = await instance(t, db, { withRedis: true })
  const b = await instance(t, db, { withRedis: true })
  const { apiKey } = await a.app.keygate.createKey({ name: 'svc', scopes: ['query', 'connector:write'] })
  t.equal((await b.call(apiKey, 'POST', '/v1/connectors')).statusCode, 200, 'cached on b')
  const changed = heard(b.app, keyIdOf(apiKey))
  await a.app.keygate.updateKey('svc', { scopes: ['query'], rateLimit: { perMinute: 4 } })
  await changed
  const res = await b.call(apiKey, 'POST', '/v1/connectors')
  t.same([res.statusCode, res.json()], [403, denied('connector:write')], 'b applies it at once')
  t.equal(res.headers['x-ratelimit-limit'], '4')
  // A third instance that never saw the key, reading the shared level: it gets the new record too.
  const c = await instance(t, db, { withRedis: true })
  t.same((await c.call(apiKey)).json(), { scopes: ['query'] })
})
