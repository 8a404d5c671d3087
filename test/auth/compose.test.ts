import fastifyAuth from '@fastify/auth'
import fastifyJwt from '@fastify/jwt'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import keygate, { type KeygateOptions, type RateLimitStore } from '../../lib/index.js'
import { FAST_ARGON2, testClock } from '../helpers/app.js'
import { database } from '../helpers/instance.js'

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const JWT_SECRET = 'jwt-secret-jwt-secret-jwt-secret-0123'

/**
 * A host app with keygate's global hook off: /either takes a JWT or an API key (@fastify/auth),
 * /write a JWT or a key with connector:write, /key a key alone (verify as a plain preHandler),
 * and /open nothing at all.
 */
async function composedApp (t: Test, options: Partial<KeygateOptions> = {}, before?: (app: FastifyInstance) => void) {
  const db = await database(t)
  const clock = testClock()
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: db.db, schema: db.schema, argon2: FAST_ARGON2, now: clock.now, hook: false, ...options })
  await app.register(fastifyJwt, { secret: JWT_SECRET })
  await app.register(fastifyAuth)
  before?.(app)
  const verifyJwt = async (request: FastifyRequest) => { await request.jwtVerify() }
  const answer = async (request: FastifyRequest) => ({ user: (request.user as { sub?: string } | undefined)?.sub ?? null, key: request.apiKey?.name ?? null, denial: request.apiKeyDenial })
  app.get('/open', async (request) => ({ key: request.apiKey, denial: request.apiKeyDenial }))
  app.get('/either', { preHandler: app.auth([verifyJwt, app.keygate.verify]) }, answer)
  app.post('/write', { preHandler: app.auth([verifyJwt, app.keygate.verifyWith({ scopes: ['connector:write'] })]) }, answer)
  app.get('/key', { preHandler: app.keygate.verify }, answer)
  await app.ready()
  const token = app.jwt.sign({ sub: 'person-1' })
  return { app, clock, token }
}

t.test('hook: false with @fastify/auth: a JWT or an API key, and the contract\'s answers when neither passes', async (t) => {
  const { app, clock, token } = await composedApp(t)
  const key = (await app.keygate.createKey({ name: 'writer', scopes: ['connector:write'] })).apiKey
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['query'] })).apiKey
  const limited = (await app.keygate.createKey({ name: 'limited', rateLimit: { perMinute: 1 } })).apiKey
  const reset = String(Math.floor((clock.now() - (clock.now() % 60_000) + 60_000) / 1000))

  const open = await app.inject({ url: '/open' })
  t.equal(open.statusCode, 200, 'hook: false leaves other routes unguarded')
  t.same(open.json(), { key: null, denial: null })
  const unknownUrl = await app.inject({ url: '/nowhere' })
  t.equal(unknownUrl.statusCode, 404, 'unknown URLs too: nothing answers 401 for them')

  const jwtOnly = await app.inject({ url: '/either', headers: { authorization: `Bearer ${token}` } })
  t.equal(jwtOnly.statusCode, 200, 'a JWT alone')
  t.same(jwtOnly.json(), { user: 'person-1', key: null, denial: null }, 'the JWT passed first: keygate was not asked')
  t.equal(jwtOnly.headers['www-authenticate'], undefined, 'no refusal header on an admitted request')

  const keyOnly = await app.inject({ url: '/either', headers: { authorization: `Bearer ${key}` } })
  t.equal(keyOnly.statusCode, 200, 'an API key alone')
  t.same(keyOnly.json(), { user: null, key: 'writer', denial: null })
  t.equal(keyOnly.headers['x-ratelimit-limit'], '60', 'with its rate-limit headers')
  t.equal(keyOnly.headers['x-ratelimit-remaining'], '59')
  t.equal(keyOnly.headers['x-ratelimit-reset'], reset)

  const neither = await app.inject({ url: '/either' })
  t.equal(neither.statusCode, 401, 'neither')
  t.same(neither.json(), UNAUTHORIZED)
  t.equal(neither.headers['www-authenticate'], 'Bearer')
  t.equal(neither.headers['content-type'], 'application/json; charset=utf-8')
  const garbage = await app.inject({ url: '/either', headers: { authorization: 'Bearer not-a-token' } })
  t.equal(garbage.statusCode, 401)
  t.same(garbage.json(), UNAUTHORIZED)

  const scoped = await app.inject({ method: 'POST', url: '/write', headers: { authorization: key } })
  t.equal(scoped.statusCode, 200, 'verifyWith: the scope held')
  const wrongScope = await app.inject({ method: 'POST', url: '/write', headers: { authorization: reader } })
  t.equal(wrongScope.statusCode, 403, 'verifyWith: the scope lacking')
  t.same(wrongScope.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: connector:write' })
  t.equal(wrongScope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="connector:write"')
  t.equal(wrongScope.headers['x-ratelimit-limit'], '60', 'an identified key\'s answer carries its headers')
  const jwtWrites = await app.inject({ method: 'POST', url: '/write', headers: { authorization: `Bearer ${token}` } })
  t.equal(jwtWrites.statusCode, 200, 'the JWT strategy still decides for people')

  t.equal((await app.inject({ url: '/either', headers: { authorization: limited } })).statusCode, 200)
  const over = await app.inject({ url: '/either', headers: { authorization: limited } })
  t.equal(over.statusCode, 429, 'over the rate limit')
  t.same(over.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retry_after: 60 })
  t.equal(over.headers['retry-after'], '60')
  t.equal(over.headers['x-ratelimit-limit'], '1')
  t.equal(over.headers['x-ratelimit-remaining'], '0')
  t.equal(over.headers['x-ratelimit-reset'], reset)

  const plain = await app.inject({ url: '/key' })
  t.equal(plain.statusCode, 401, 'verify as a plain preHandler')
  t.same(plain.json(), UNAUTHORIZED)
  t.equal(plain.headers['www-authenticate'], 'Bearer')
  const plainOk = await app.inject({ url: '/key', headers: { authorization: key } })
  t.same(plainOk.json(), { user: null, key: 'writer', denial: null })

  const management = await app.inject({ url: '/api/v1/keys/list' })
  t.equal(management.statusCode, 401, 'the management routes keep their guard without the hook')
  t.same(management.json(), UNAUTHORIZED)
  const listed = await app.inject({ url: '/api/v1/keys/list', headers: { authorization: key } })
  t.equal(listed.statusCode, 403, 'and their scope checks')
  t.same(listed.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: keys:read' })
})

t.test('a host error handler sees verify\'s refusals as coded errors, and can hand them back for the contract\'s body', async (t) => {
  const seen: Array<[string, number | undefined, string | undefined]> = []
  const { app } = await composedApp(t, {}, (app) => {
    app.setErrorHandler(function hostErrors (error: FastifyError & { denial?: string }, _request: FastifyRequest, reply: FastifyReply) {
      seen.push([error.code, error.statusCode, error.denial])
      return reply.send(error)
    })
  })
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['query'] })).apiKey
  const limited = (await app.keygate.createKey({ name: 'limited', rateLimit: { perMinute: 1 } })).apiKey

  const none = await app.inject({ url: '/either' })
  t.equal(none.statusCode, 401)
  t.same(none.json(), UNAUTHORIZED, 'handed back: the contract\'s body')
  const denied = await app.inject({ method: 'POST', url: '/write', headers: { authorization: reader } })
  t.equal(denied.statusCode, 403)
  await app.inject({ url: '/either', headers: { authorization: limited } })
  const over = await app.inject({ url: '/either', headers: { authorization: limited } })
  t.equal(over.statusCode, 429)
  t.same(over.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retry_after: 60 })
  t.same(seen, [
    ['FST_KEYGATE_UNAUTHORIZED', 401, 'missing'],
    ['FST_KEYGATE_INSUFFICIENT_SCOPE', 403, 'insufficient_scope'],
    ['FST_KEYGATE_RATE_LIMIT_EXCEEDED', 429, 'rate_limited']
  ])
})

t.test('verify on a public route with the hook on; verifyWith refuses an unknown scope at once', async (t) => {
  const db = await database(t)
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: db.db, schema: db.schema, argon2: FAST_ARGON2 })
  t.throws(() => app.keygate.verifyWith({ scopes: ['conector:write'] }), { code: 'FST_KEYGATE_INVALID_ROUTE_CONFIG' })
  app.get('/public-but-keyed', { config: { apiKey: false }, preHandler: app.keygate.verify }, async (request) => ({ key: request.apiKey?.name }))
  app.get('/guarded', { preHandler: app.keygate.verifyWith({ scopes: ['query'] }) }, async (request) => ({ key: request.apiKey?.name }))
  await app.ready()
  const key = (await app.keygate.createKey({ name: 'k', scopes: ['query'], rateLimit: { perMinute: 5 } })).apiKey
  const res = await app.inject({ url: '/public-but-keyed', headers: { authorization: key } })
  t.same(res.json(), { key: 'k' })
  t.equal(res.headers['x-ratelimit-remaining'], '4')
  const none = await app.inject({ url: '/public-but-keyed' })
  t.equal(none.statusCode, 401)
  t.same(none.json(), UNAUTHORIZED)
  const twice = await app.inject({ url: '/guarded', headers: { authorization: key } })
  t.same(twice.json(), { key: 'k' }, 'the hook verified it; verifyWith checks the scopes only')
  t.equal(twice.headers['x-ratelimit-remaining'], '3', 'counted once, not twice')
})

t.test('verify reports 503 with the contract\'s body when the rate-limit store is down and onStoreError is deny', async (t) => {
  const down: RateLimitStore = { consume: () => { throw new Error('the store is down (test)') } }
  const { app, token } = await composedApp(t, { rateLimitStore: down, onStoreError: 'deny' })
  const key = (await app.keygate.createKey({ name: 'k' })).apiKey
  const res = await app.inject({ url: '/either', headers: { authorization: key } })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { error: 'service_unavailable', message: 'The rate-limit store is unavailable. Try again shortly.' })
  t.equal(res.headers['retry-after'], '1', 'the same header as the hook sends')
  const person = await app.inject({ url: '/either', headers: { authorization: `Bearer ${token}` } })
  t.equal(person.statusCode, 200, 'a JWT does not need the store')
})
