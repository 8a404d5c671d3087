import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { buildApp, TEST_SECRET } from '../helpers/app.js'

// The console with the host's sign-in (option authenticateManagement): the host's person is used
// as they are, and the key form remains for everyone the host does not recognise.

const people: Record<string, { tenant: string, user: string, scopes: string[] }> = {
  'session-alice': { tenant: 'acme', user: 'alice', scopes: ['keys:read', 'keys:write', 'query'] },
  'session-guest': { tenant: 'acme', user: 'guest', scopes: ['query'] }
}
const authenticateManagement = (request: FastifyRequest) => {
  const session = request.headers['x-session']
  return typeof session === 'string' ? people[session] ?? null : null
}

t.test('the host\'s person is signed in as they are; nobody recognised falls back to the key form', async (t) => {
  const app = await buildApp(t, { keygate: { console: true, secret: TEST_SECRET, authenticateManagement } })
  const alice = await app.inject({ url: '/keys-console/session', headers: { 'x-session': 'session-alice' } })
  t.equal(alice.statusCode, 200)
  t.same(alice.json().signedIn, { user: 'alice', tenant: 'acme', scopes: ['keys:read', 'keys:write', 'query'] })
  t.equal(alice.json().csrfToken, null, 'no console session, so no token: the host\'s sign-in guards its own requests')
  t.equal(alice.headers['set-cookie'], undefined)

  const guest = await app.inject({ url: '/keys-console/session', headers: { 'x-session': 'session-guest' } })
  t.same([guest.statusCode, guest.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:read' }], 'a person without keys:read: the same 403')
  t.same((await app.inject({ url: '/keys-console/session' })).json(), { error: 'unauthorized', message: 'Client unauthorized' }, 'nobody: 401, and the page shows the key form')

  // The person's requests are theirs, in their tenant.
  const created = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { 'x-session': 'session-alice' }, payload: { name: 'laptop', scopes: ['query'] } })
  t.same([created.statusCode, created.json().owner], [200, 'alice'])

  // The key form still works beside it, in the key's own tenant.
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'admin' })
  const signedIn = await app.inject({ method: 'POST', url: '/keys-console/session', payload: { apiKey } })
  t.same(signedIn.json().signedIn, { identifier, name: 'admin', tenant: 'default', scopes: ['*'] })
  const cookie = String(signedIn.headers['set-cookie']).split(';', 1)[0] as string
  const listed = await app.inject({ url: '/api/v1/keys/list', headers: { cookie } })
  t.same(listed.json().map((key: { name: string }) => key.name), ['admin'], 'the key\'s tenant, not alice\'s')
  const both = await app.inject({ url: '/api/v1/keys/list', headers: { cookie, 'x-session': 'session-alice' } })
  t.same(both.json().map((key: { name: string }) => key.name), ['laptop'], 'a person the host recognises comes first')
})
