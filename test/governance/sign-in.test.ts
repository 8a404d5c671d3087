import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { database, instance } from '../helpers/instance.js'

// Issue 14, host sign-in: option authenticateManagement lets the host's signed-in people use the
// management routes instead of an API key, within the tenant and scopes the host gives them.

const people: Record<string, { tenant: string, user: string, scopes: string[] }> = {
  'session-alice': { tenant: 'acme', user: 'alice', scopes: ['keys:read', 'keys:write', 'query'] },
  'session-viewer': { tenant: 'acme', user: 'victor', scopes: ['keys:read'] },
  'session-broken': { tenant: '', user: 'x', scopes: [] } as never
}
// The host's session check: a cookie, here a header, for the test.
const signIn = (request: FastifyRequest) => {
  const session = request.headers['x-session']
  if (session === 'session-throws') throw new Error('identity provider down')
  return typeof session === 'string' ? people[session] ?? null : null
}

t.test('a signed-in person manages their tenant\'s keys; the keys they create are theirs', async (t) => {
  const a = await instance(t, await database(t), { authenticateManagement: signIn })
  const asAlice = { 'x-session': 'session-alice' }
  const created = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: asAlice, payload: { name: 'ci', scopes: ['query'] } })
  t.equal(created.statusCode, 200)
  t.same([created.json().owner, created.json().serviceAccount], ['alice', false], 'owned by the person who made it')
  const forService = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: asAlice, payload: { name: 'svc', owner: 'team-data', scopes: ['query'] } })
  t.equal(forService.json().owner, 'team-data', 'unless owner is given')
  const beyond = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: asAlice, payload: { name: 'root' } })
  t.same([beyond.statusCode, beyond.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: *' }], 'nor do people grant what they lack')
  t.same((await a.app.keygate.listKeys({ tenant: 'acme' })).map((k) => k.name), ['ci', 'svc'], 'in the person\'s tenant')
  t.same(await a.app.keygate.listKeys(), [], 'not the default one')
  const listed = await a.app.inject({ url: '/api/v1/keys/list', headers: asAlice })
  t.same(listed.json().map((k: { name: string }) => k.name), ['ci', 'svc'])
  t.equal(listed.headers['x-ratelimit-limit'], undefined, 'people have no rate limit of a key')
  const deleted = await a.app.inject({ method: 'DELETE', url: '/api/v1/keys/ci/delete', headers: asAlice })
  t.same([deleted.statusCode, deleted.json()], [200, { status: 'OK' }])
  t.equal((await a.call(created.json().apiKey)).statusCode, 401)
  const events = (await a.app.keygate.listAuditEvents({ tenant: 'acme' })).events
  t.same(events.map((e) => [e.action, e.actor, e.target?.name ?? null]), [
    ['key.deleted', { user: 'alice' }, 'ci'],
    ['access.denied', { user: 'alice' }, null],
    ['key.created', { user: 'alice' }, 'svc'],
    ['key.created', { user: 'alice' }, 'ci']
  ], 'the audit log names the person, refusals included')
})

t.test('a person lacking a scope gets the contract\'s 403; nobody signed in falls back to the key', async (t) => {
  const a = await instance(t, await database(t), { authenticateManagement: signIn })
  const denied = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { 'x-session': 'session-viewer' }, payload: { name: 'k' } })
  t.same([denied.statusCode, denied.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:write' }])
  t.equal((await a.app.inject({ url: '/api/v1/keys/list', headers: { 'x-session': 'session-viewer' } })).statusCode, 200)
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  t.equal((await a.call(admin, 'GET', '/api/v1/keys/list')).statusCode, 200, 'no session: the API key path')
  t.same((await a.app.inject({ url: '/api/v1/keys/list' })).json(), { error: 'unauthorized', message: 'Client unauthorized' }, 'neither: 401')
  const hostRoute = await a.app.inject({ url: '/data', headers: { 'x-session': 'session-alice' } })
  t.equal(hostRoute.statusCode, 401, 'the sign-in opens the management routes only, never the host\'s own')
})

t.test('a host sign-in that fails or answers the wrong shape is a 500, never a way in', async (t) => {
  const a = await instance(t, await database(t), { authenticateManagement: signIn })
  for (const session of ['session-throws', 'session-broken']) {
    const res = await a.app.inject({ url: '/api/v1/keys/list', headers: { 'x-session': session } })
    t.same([res.statusCode, res.json()], [500, { error: 'internal_error', message: 'Internal error.' }], session)
  }
  await t.rejects((async () => await instance(t, await database(t), { authenticateManagement: 'yes' as never }))(), { code: 'FST_KEYGATE_INVALID_OPTION' })
})
