import t from 'tap'
import { buildApp, createKey, testClock } from '../helpers/app.js'
import { unknownKey, wrongSecret } from '../helpers/keys.js'

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }

t.test('the hook guards every host route', async (t) => {
  const app = await buildApp(t, {
    routes: (app) => {
      app.get('/health', { config: { apiKey: false } }, async (request) => ({ apiKey: request.apiKey }))
      app.get('/api/v1/endpoints', async (request) => ({ apiKey: request.apiKey }))
    }
  })
  const metlo = await createKey(app, 'metlo-key', 'metlo')
  const mlo = await createKey(app, 'mlo-key', 'mlo')
  const [metloInfo, mloInfo] = await app.keygate.listKeys()

  const refused = async (headers: Record<string, string>, label: string, url = '/api/v1/endpoints') => {
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, 401, label)
    t.equal(res.headers['www-authenticate'], 'Bearer', label)
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8', label)
    t.same(res.json(), UNAUTHORIZED, label)
  }
  const accepted = async (headers: Record<string, string>, expected: unknown, label: string) => {
    const res = await app.inject({ url: '/api/v1/endpoints', headers })
    t.equal(res.statusCode, 200, label)
    t.same(res.json(), { apiKey: expected }, label)
  }

  await t.test('public routes need nothing and see apiKey null', async (t) => {
    const res = await app.inject({ url: '/health' })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { apiKey: null })
    const withKey = await app.inject({ url: '/health', headers: { authorization: metlo } })
    t.same(withKey.json(), { apiKey: null }, 'a public route does not authenticate, even with a key')
  })

  await t.test('Metlo style and Bearer style, both prefixes', async () => {
    const policy = { tenant: 'default', scopes: ['*'], plan: 'free', limits: { perMinute: 60, perHour: 1000 }, expires: null, owner: null }
    const metloKey = { id: metlo.slice(6, 14), identifier: metloInfo?.identifier, name: 'metlo-key', for: 'GENERIC', created: metloInfo?.created, ...policy }
    const mloKey = { id: mlo.slice(4, 12), identifier: mloInfo?.identifier, name: 'mlo-key', for: 'GENERIC', created: mloInfo?.created, ...policy }
    await accepted({ authorization: metlo }, metloKey, 'Authorization: <key>')
    await accepted({ authorization: `Bearer ${metlo}` }, metloKey, 'Authorization: Bearer <key>')
    await accepted({ authorization: `bearer ${mlo}` }, mloKey, 'lower-case scheme')
    await accepted({ authorization: `  BEARER   ${mlo}  ` }, mloKey, 'upper-case scheme, spaces trimmed')
    await accepted({ authorization: mlo }, mloKey, 'mlo key without scheme')
  })

  await t.test('missing, malformed, unknown and wrong-secret keys get the 401 body', async () => {
    const body = metlo.slice('metlo_'.length)
    await refused({}, 'no Authorization header')
    await refused({ authorization: '' }, 'empty header')
    await refused({ authorization: 'Bearer' }, 'scheme only')
    await refused({ authorization: 'Basic dXNlcjpwYXNz' }, 'another scheme')
    await refused({ authorization: `other_${body}` }, 'unknown prefix')
    await refused({ authorization: `mlo_${body}` }, 'a metlo body under the mlo prefix')
    await refused({ authorization: metlo.slice(0, -1) }, 'too short')
    await refused({ authorization: `${metlo}${'a'.repeat(5000)}` }, 'oversized header')
    await refused({ authorization: `Bearer ${metlo} ${metlo}` }, 'two keys')
    // A well-formed key (valid checksum) whose id is not in the database.
    await refused({ authorization: unknownKey('metlo', metlo) }, 'unknown key id')
  })

  await t.test('the right key id with the wrong secret is refused', async () => {
    await refused({ authorization: wrongSecret(metlo, 1) }, 'wrong secret, valid checksum')
  })

  await t.test('unknown URLs need a key too, so the route table stays private', async () => {
    await refused({}, 'unknown url without a key', '/nowhere')
    const res = await app.inject({ url: '/nowhere', headers: { authorization: metlo } })
    t.equal(res.statusCode, 404)
  })
})

t.test('a deleted key is refused on the very next request', async (t) => {
  const app = await buildApp(t, { routes: (app) => app.get('/data', async () => ({ ok: true })) })
  const admin = await createKey(app, 'admin')
  const doomed = await createKey(app, 'doomed')
  t.equal((await app.inject({ url: '/data', headers: { authorization: doomed } })).statusCode, 200)
  const deleted = await app.inject({ method: 'DELETE', url: '/api/v1/keys/doomed/delete', headers: { authorization: admin } })
  t.equal(deleted.statusCode, 200)
  const after = await app.inject({ url: '/data', headers: { authorization: doomed } })
  t.equal(after.statusCode, 401)
  t.same(after.json(), UNAUTHORIZED)
  t.equal((await app.inject({ url: '/data', headers: { authorization: admin } })).statusCode, 200, 'other keys unaffected')
})

t.test('a key deleted by its own request works for that request only', async (t) => {
  const app = await buildApp(t)
  const self = await createKey(app, 'self')
  const res = await app.inject({ method: 'DELETE', url: '/api/v1/keys/self/delete', headers: { authorization: self } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'OK' })
  const next = await app.inject({ url: '/api/v1/keys/list', headers: { authorization: self } })
  t.equal(next.statusCode, 401)
})

t.test('routes registered before the plugin are guarded too', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { default: keygate } = await import('../../lib/index.js')
  const { openTestDatabase } = await import('../helpers/database.js')
  const { FAST_ARGON2 } = await import('../helpers/app.js')
  const database = await openTestDatabase()
  const app = Fastify()
  t.teardown(async () => { await app.close(); await database.close() })
  app.get('/early', async () => ({ ok: true }))
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2 })
  await app.ready()
  const res = await app.inject({ url: '/early' })
  t.equal(res.statusCode, 401)
  t.same(res.json(), UNAUTHORIZED)
  const key = await createKey(app)
  t.equal((await app.inject({ url: '/early', headers: { authorization: key } })).statusCode, 200)
})

t.test('config.apiKey is checked when the route is registered', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [true, /Invalid config\.apiKey on route GET \/bad: expected false or \{ scopes: \[\.\.\.\] \}/],
    [{ scope: ['query'] }, /unknown property "scope"/],
    [{ scopes: 'query' }, /scopes must be an array of non-empty strings/],
    [{ scopes: [''] }, /scopes must be an array of non-empty strings/]
  ]
  for (const [apiKey, message] of cases) {
    await t.rejects(buildApp(t, { routes: (app) => app.get('/bad', { config: { apiKey: apiKey as false } }, async () => 'x') }),
      { code: 'FST_KEYGATE_INVALID_ROUTE_CONFIG', message }, JSON.stringify(apiKey))
  }
})

// The test clock starts at 2026-03-03T12:00:00Z: the end of its minute, in Unix seconds.
const MINUTE_END = String(Date.UTC(2026, 2, 3, 12, 1, 0) / 1000)
const limitHeaders = (res: { headers: Record<string, unknown> }) =>
  [res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset']]
const rateLimited = (seconds: number) =>
  ({ error: 'rate_limit_exceeded', message: `Rate limit exceeded. Retry after ${seconds} seconds.`, retry_after: seconds })

t.test('request.apiKey is set on a 403 and on a 429: a host onResponse hook can tell which key was refused', async (t) => {
  const clock = testClock()
  const seen: Array<[number, string | undefined]> = []
  const app = await buildApp(t, {
    keygate: { now: clock.now },
    routes: (app) => {
      app.addHook('onResponse', async (request, reply) => { seen.push([reply.statusCode, request.apiKey?.identifier]) })
      app.get('/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
    }
  })
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'narrow', scopes: ['query'], rateLimit: { perMinute: 1 } })

  const forbidden = await app.inject({ url: '/federate', headers: { authorization: apiKey } })
  t.equal(forbidden.statusCode, 403)
  t.equal(forbidden.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="federate"')
  t.same(limitHeaders(forbidden), ['1', '0', MINUTE_END])
  t.same(forbidden.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: federate' })

  const limited = await app.inject({ url: '/federate', headers: { authorization: apiKey } })
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['retry-after'], '60')
  t.same(limitHeaders(limited), ['1', '0', MINUTE_END])
  t.same(limited.json(), rateLimited(60))

  const anonymous = await app.inject({ url: '/federate' })
  t.equal(anonymous.statusCode, 401)
  t.same(seen, [[403, identifier], [429, identifier], [401, undefined]], 'the key on both refusals; none where no key was identified')
})

t.test('429 comes before 403: a key over its limit gets 429 even on a route it lacks the scope for', async (t) => {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { now: clock.now },
    routes: (app) => {
      app.get('/query', { config: { apiKey: { scopes: ['query'] } } }, async () => ({ ok: true }))
      app.get('/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
    }
  })
  const { apiKey } = await app.keygate.createKey({ name: 'narrow', scopes: ['query'], rateLimit: { perMinute: 1 } })
  t.equal((await app.inject({ url: '/query', headers: { authorization: apiKey } })).statusCode, 200, 'the one request of the minute')

  const over = await app.inject({ url: '/federate', headers: { authorization: apiKey } })
  t.equal(over.statusCode, 429, 'over the limit and lacking federate: the limit answers')
  t.equal(over.headers['retry-after'], '60')
  t.equal(over.headers['www-authenticate'], undefined, 'no scope challenge')
  t.same(limitHeaders(over), ['1', '0', MINUTE_END])
  t.same(over.json(), rateLimited(60))

  clock.advance(60_000)
  const forbidden = await app.inject({ url: '/federate', headers: { authorization: apiKey } })
  t.equal(forbidden.statusCode, 403, 'with room again, the missing scope answers')
  t.same(forbidden.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: federate' })
})

t.test("the hook's refusals go out as the contract's JSON text: a host's preSerialization hook and reply serializer do not reshape them, its onSend hooks see them", async (t) => {
  const clock = testClock()
  const sent: Array<[number, unknown]> = []
  const app = await buildApp(t, {
    keygate: { now: clock.now },
    routes: (app) => {
      // A host that wraps every body it serializes: its own routes' bodies, not the plugin's refusals.
      app.addHook('preSerialization', async (_request, _reply, payload) => ({ data: payload }))
      app.setReplySerializer((payload) => JSON.stringify({ serialized: payload }))
      app.addHook('onSend', async (_request, reply, payload) => { sent.push([reply.statusCode, payload]) })
      app.get('/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
      app.get('/query', { config: { apiKey: { scopes: ['query'] } } }, async () => ({ ok: true }))
    }
  })
  const { apiKey } = await app.keygate.createKey({ name: 'narrow', scopes: ['query'], rateLimit: { perMinute: 2 } })

  const ok = await app.inject({ url: '/query', headers: { authorization: apiKey } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, '{"serialized":{"data":{"ok":true}}}', "the host's own route goes through both")

  const refusals = [
    { url: '/query', headers: {}, status: 401, body: '{"error":"unauthorized","message":"Client unauthorized"}' },
    { url: '/federate', headers: { authorization: apiKey }, status: 403, body: '{"error":"insufficient_scope","message":"API key lacks required permission: federate"}' },
    { url: '/query', headers: { authorization: apiKey }, status: 429, body: JSON.stringify(rateLimited(60)) }
  ]
  for (const { url, headers, status, body } of refusals) {
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, status)
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8', `${status}: content type`)
    t.equal(res.body, body, `${status}: the contract's body, as it is`)
  }
  t.same(sent, [[200, '{"serialized":{"data":{"ok":true}}}'], ...refusals.map(({ status, body }) => [status, body])], 'onSend saw every body, as text')
})
