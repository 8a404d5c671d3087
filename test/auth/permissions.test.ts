import t from 'tap'
import { buildApp, createKey } from '../helpers/app.js'

const denied = (scope: string) => ({ error: 'insufficient_scope', message: `API key lacks required permission: ${scope}` })

async function setup (t: Parameters<typeof buildApp>[0]) {
  const app = await buildApp(t, {
    routes: (app) => {
      app.post('/v1/federate', { config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: 'federate' }))
      app.get('/v1/connectors', { config: { apiKey: { scopes: ['connector:read'] } } }, async () => ({ ok: 'read' }))
      app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: 'write' }))
      app.get('/v1/audit', { config: { apiKey: { scopes: ['audit:read', 'audit:export'] } } }, async () => ({ ok: 'audit' }))
      app.get('/v1/anything', async () => ({ ok: 'any key' }))
    }
  })
  const admin = await createKey(app, 'admin')
  const keyWith = async (name: string, scopes: string[]) => (await app.keygate.createKey({ name, scopes })).apiKey
  const call = async (key: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) })
  return { app, admin, keyWith, call }
}

t.test('routes enforce the scopes they declare', async (t) => {
  const { admin, keyWith, call } = await setup(t)
  const query = await keyWith('query-only', ['query'])
  const connectors = await keyWith('connectors', ['connector:*'])
  const auditor = await keyWith('auditor', ['audit:read'])

  const refused = await call(query, 'POST', '/v1/federate')
  t.equal(refused.statusCode, 403)
  t.same(refused.json(), denied('federate'))
  t.equal(refused.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="federate"')
  t.equal(refused.headers['x-ratelimit-limit'], '60', 'a 403 still carries the rate-limit headers')
  t.equal(refused.headers['x-ratelimit-remaining'], '59')

  t.equal((await call(admin, 'POST', '/v1/federate')).statusCode, 200, '* grants everything')
  t.equal((await call(query, 'GET', '/v1/anything')).statusCode, 200, 'a route without scopes takes any key')
  t.same((await call(connectors, 'GET', '/v1/connectors')).json(), { ok: 'read' }, 'connector:* covers connector:read')
  t.same((await call(connectors, 'POST', '/v1/connectors')).json(), { ok: 'write' }, 'and connector:write')
  t.same((await call(connectors, 'POST', '/v1/federate')).json(), denied('federate'))
  const partial = await call(auditor, 'GET', '/v1/audit')
  t.same(partial.json(), denied('audit:export'), 'every listed scope is required; the first missing one is named')
})

t.test('management routes need keys:read and keys:write', async (t) => {
  const { keyWith, call } = await setup(t)
  const reader = await keyWith('reader', ['keys:read'])
  const writer = await keyWith('writer', ['keys:write'])
  t.equal((await call(reader, 'GET', '/api/v1/keys/list')).statusCode, 200)
  t.equal((await call(reader, 'GET', '/api/v1/keys/onboarding')).statusCode, 200)
  t.same((await call(reader, 'POST', '/api/v1/keys/create', { name: 'x', scopes: ['keys:read'] })).json(), denied('keys:write'))
  t.same((await call(reader, 'DELETE', '/api/v1/keys/writer/delete')).json(), denied('keys:write'))
  t.same((await call(writer, 'GET', '/api/v1/keys/list')).json(), denied('keys:read'))
  await keyWith('another-writer', ['keys:write'])
  t.equal((await call(writer, 'DELETE', '/api/v1/keys/another-writer/delete')).statusCode, 200, 'a key it covers')
  t.same((await call(writer, 'DELETE', '/api/v1/keys/reader/delete')).json(), denied('keys:read'), 'not one holding more than it does')
})

t.test('a key cannot create a key with a permission it lacks', async (t) => {
  const { keyWith, call } = await setup(t)
  const limited = await keyWith('limited', ['keys:write', 'query', 'connector:*'])

  const escalate = await call(limited, 'POST', '/api/v1/keys/create', { name: 'escalated', scopes: ['federate'] })
  t.equal(escalate.statusCode, 403)
  t.same(escalate.json(), denied('federate'))
  t.same((await call(limited, 'POST', '/api/v1/keys/create', { name: 'full' })).json(), denied('*'), 'no scopes means *, which it lacks')
  t.same((await call(limited, 'POST', '/api/v1/keys/create', { name: 'admin2', scopes: ['*'] })).json(), denied('*'))

  const ok = await call(limited, 'POST', '/api/v1/keys/create', { name: 'narrow', scopes: ['query', 'connector:read'] })
  t.equal(ok.statusCode, 200)
  t.same(ok.json().scopes, ['query', 'connector:read'])
  t.equal((await call(limited, 'POST', '/api/v1/keys/create', { name: 'same-namespace', scopes: ['connector:*'] })).statusCode, 200)
})

t.test('create validates scopes against the vocabulary', async (t) => {
  const { admin, call } = await setup(t)
  const allowed = '*, query, federate, connector:read, connector:write, audit:read, audit:export, keys:read, keys:write, connector:*, audit:*, keys:*'
  const cases: Array<[unknown, object]> = [
    [['query', 'bogus'], { error: 'scope_invalid', message: `Unknown scope "bogus". Allowed: ${allowed}` }],
    [['Query'], { error: 'scope_invalid', message: `Unknown scope "Query". Allowed: ${allowed}` }],
    [[42], { error: 'scope_invalid', message: `Unknown scope "42". Allowed: ${allowed}` }],
    [[], { error: 'invalid_request', message: 'scopes must be a non-empty array of scope names.' }],
    ['query', { error: 'invalid_request', message: 'scopes must be a non-empty array of scope names.' }],
    [['query', 'query'], { error: 'invalid_request', message: 'scopes must not repeat a scope.' }]
  ]
  for (const [scopes, expected] of cases) {
    const res = await call(admin, 'POST', '/api/v1/keys/create', { name: 'k', scopes })
    t.equal(res.statusCode, 400, JSON.stringify(scopes))
    t.same(res.json(), expected, JSON.stringify(scopes))
  }
  const listed = (await call(admin, 'GET', '/api/v1/keys/list')).json()
  t.same(listed.map((k: { name: string, scopes: string[], plan: string }) => [k.name, k.scopes, k.plan]), [['admin', ['*'], 'free']])
})

t.test('a route declaring a scope outside the vocabulary fails at startup', async (t) => {
  await t.rejects(buildApp(t, { routes: (app) => app.get('/typo', { config: { apiKey: { scopes: ['conector:read'] } } }, async () => 'x') }), {
    code: 'FST_KEYGATE_INVALID_ROUTE_CONFIG',
    message: /^Invalid config\.apiKey on route GET \/typo: unknown scope "conector:read"; the vocabulary is query, federate, /
  })
  await t.rejects(buildApp(t, { routes: (app) => app.get('/wild', { config: { apiKey: { scopes: ['connector:*'] } } }, async () => 'x') }), {
    code: 'FST_KEYGATE_INVALID_ROUTE_CONFIG'
  }, 'routes name concrete scopes, not wildcards')
})

t.test('a host vocabulary', async (t) => {
  const app = await buildApp(t, {
    keygate: { scopes: ['reports:read', 'reports:write'] },
    routes: (app) => app.get('/reports', { config: { apiKey: { scopes: ['reports:read'] } } }, async () => 'ok')
  })
  const key = (await app.keygate.createKey({ name: 'r', scopes: ['reports:*'] })).apiKey
  t.equal((await app.inject({ url: '/reports', headers: { authorization: key } })).statusCode, 200)
  await t.rejects(app.keygate.createKey({ name: 'q', scopes: ['query'] }), { code: 'FST_KEYGATE_SCOPE_INVALID' }, 'the default vocabulary is replaced')
  const manager = (await app.keygate.createKey({ name: 'm', scopes: ['keys:read'] })).apiKey
  t.equal((await app.inject({ url: '/api/v1/keys/list', headers: { authorization: manager } })).statusCode, 200, 'keys:read is always there')
  const auditor = (await app.keygate.createKey({ name: 'a', scopes: ['audit:read', 'audit:export'] })).apiKey
  t.equal((await app.inject({ url: '/api/v1/keys/audit', headers: { authorization: auditor } })).statusCode, 200, 'and so are audit:read and audit:export')
})
