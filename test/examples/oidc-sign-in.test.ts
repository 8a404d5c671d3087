import Fastify from 'fastify'
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { oidcSignIn } from '../../examples/oidc-sign-in.js'
import { database, instance } from '../helpers/instance.js'

// The OpenID Connect sign-in of the examples, against an identity provider played here: its own
// key pair, its JWKS on a loopback route, and ID tokens signed as a provider signs them.

const ISSUER = 'https://id.example.test'
const AUDIENCE = 'keygate-console'

async function provider (t: Test) {
  const { privateKey, publicKey } = await generateKeyPair('RS256')
  const jwk: JWK = { ...await exportJWK(publicKey), kid: 'key-1', alg: 'RS256', use: 'sig' }
  const app = Fastify()
  app.get('/.well-known/jwks.json', async () => ({ keys: [jwk] }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => await app.close())
  const { port } = app.server.address() as { port: number }
  const idToken = async (claims: Record<string, unknown>, options: { audience?: string, expiresIn?: string, key?: typeof privateKey } = {}) =>
    await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .setIssuer(ISSUER)
      .setAudience(options.audience ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '5m')
      .sign(options.key ?? privateKey)
  return { jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`, idToken }
}

t.test('a person signed in with an ID token creates, lists and deletes their organisation\'s keys', async (t) => {
  const idp = await provider(t)
  const a = await instance(t, await database(t), { authenticateManagement: oidcSignIn({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: idp.jwksUrl }) })
  const alice = { authorization: `Bearer ${await idp.idToken({ sub: 'alice', org: 'acme', roles: ['keys-admin'] })}` }

  const created = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: alice, payload: { name: 'ci', scopes: ['query'] } })
  t.equal(created.statusCode, 200)
  t.same([created.json().name, created.json().owner], ['ci', 'alice'])
  const listed = await a.app.inject({ url: '/api/v1/keys/list', headers: alice })
  t.same(listed.json().map((k: { name: string, owner: string }) => [k.name, k.owner]), [['ci', 'alice']])
  t.same((await a.app.keygate.listKeys({ tenant: 'acme' })).map((k) => k.name), ['ci'], 'in the tenant the token names')
  t.equal((await a.call(created.json().apiKey, 'GET', '/data')).statusCode, 200, 'the key works')
  const deleted = await a.app.inject({ method: 'DELETE', url: '/api/v1/keys/ci/delete', headers: alice })
  t.same([deleted.statusCode, deleted.json()], [200, { status: 'OK' }])
  t.equal((await a.call(created.json().apiKey, 'GET', '/data')).statusCode, 401)

  const viewer = { authorization: `Bearer ${await idp.idToken({ sub: 'victor', org: 'acme', roles: ['keys-viewer'] })}` }
  t.equal((await a.app.inject({ url: '/api/v1/keys/list', headers: viewer })).statusCode, 200)
  const refused = await a.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: viewer, payload: { name: 'x' } })
  t.same([refused.statusCode, refused.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:write' }])
})

t.test('a token that is not the provider\'s, or not for this application, or expired, is no sign-in: 401', async (t) => {
  const idp = await provider(t)
  const a = await instance(t, await database(t), { authenticateManagement: oidcSignIn({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: idp.jwksUrl }) })
  const { privateKey: forger } = await generateKeyPair('RS256')
  const claims = { sub: 'mallory', org: 'acme', roles: ['keys-admin'] }
  const tokens = {
    'signed by another key': await idp.idToken(claims, { key: forger }),
    'for another audience': await idp.idToken(claims, { audience: 'some-other-app' }),
    expired: await idp.idToken(claims, { expiresIn: '-1m' }),
    'no role that grants anything': await idp.idToken({ sub: 'mallory', org: 'acme', roles: ['guest'] }),
    'no tenant': await idp.idToken({ sub: 'mallory', roles: ['keys-admin'] })
  }
  for (const [label, token] of Object.entries(tokens)) {
    const res = await a.app.inject({ url: '/api/v1/keys/list', headers: { authorization: `Bearer ${token}` } })
    t.same([res.statusCode, res.json()], [401, { error: 'unauthorized', message: 'Client unauthorized' }], label)
  }
  const good = await idp.idToken(claims)
  const hostRoute = await a.app.inject({ url: '/data', headers: { authorization: `Bearer ${good}` } })
  t.equal(hostRoute.statusCode, 401, 'a valid ID token opens the management routes only')
})
