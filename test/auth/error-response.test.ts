import t from 'tap'
import type { RateLimitStore, RefusalError } from '../../lib/index.js'
import { buildApp, createKey, testClock } from '../helpers/app.js'
import { captureLogs } from '../helpers/log-capture.js'

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const INTERNAL = { error: 'internal_error', message: 'Internal error.' }

/** The host's envelope: what it is told of each refusal. */
const shaped = (error: RefusalError, request: { apiKeyDenial: string | null }) => ({
  failure: { status: error.statusCode, code: error.code, reason: request.apiKeyDenial, retryAfter: error.retryAfter ?? null, scope: error.scope ?? null }
})

t.test('errorResponse shapes the bodies of the hook\'s and verify\'s refusals; status and headers stay', async (t) => {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { now: clock.now, errorResponse: shaped },
    routes: (app) => {
      app.get('/data', async () => ({ ok: true }))
      app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))
      app.get('/keyed', { config: { apiKey: false }, preHandler: app.keygate.verify }, async () => ({ ok: true }))
    }
  })
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['query'], rateLimit: { perMinute: 2 } })).apiKey

  const missing = await app.inject({ url: '/data' })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), { failure: { status: 401, code: 'FST_KEYGATE_UNAUTHORIZED', reason: 'missing', retryAfter: null, scope: null } })
  t.equal(missing.headers['www-authenticate'], 'Bearer')

  const scope = await app.inject({ method: 'POST', url: '/v1/connectors', headers: { authorization: reader } })
  t.equal(scope.statusCode, 403)
  t.same(scope.json(), { failure: { status: 403, code: 'FST_KEYGATE_INSUFFICIENT_SCOPE', reason: 'insufficient_scope', retryAfter: null, scope: 'connector:write' } })
  t.equal(scope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="connector:write"')

  t.equal((await app.inject({ url: '/data', headers: { authorization: reader } })).statusCode, 200)
  const over = await app.inject({ url: '/data', headers: { authorization: reader } })
  t.equal(over.statusCode, 429)
  t.same(over.json(), { failure: { status: 429, code: 'FST_KEYGATE_RATE_LIMIT_EXCEEDED', reason: 'rate_limited', retryAfter: 60, scope: null } })
  t.equal(over.headers['retry-after'], '60')
  t.equal(over.headers['x-ratelimit-limit'], '2')
  t.equal(over.headers['x-ratelimit-remaining'], '0')

  const viaVerify = await app.inject({ url: '/keyed', headers: { authorization: 'Bearer nonsense' } })
  t.equal(viaVerify.statusCode, 401, 'verify\'s refusals are shaped too')
  t.same(viaVerify.json(), { failure: { status: 401, code: 'FST_KEYGATE_UNAUTHORIZED', reason: 'malformed', retryAfter: null, scope: null } })
  t.equal(viaVerify.headers['www-authenticate'], 'Bearer')
})

t.test('errorResponse shapes 503s as well', async (t) => {
  const down: RateLimitStore = { consume: () => { throw new Error('the store is down (test)') } }
  const app = await buildApp(t, { keygate: { rateLimitStore: down, onStoreError: 'deny', errorResponse: shaped }, routes: (app) => app.get('/data', async () => ({ ok: true })) })
  const key = await createKey(app, 'k')
  const res = await app.inject({ url: '/data', headers: { authorization: key } })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { failure: { status: 503, code: 'FST_KEYGATE_SERVICE_UNAVAILABLE', reason: 'store_unavailable', retryAfter: 1, scope: null } })
  t.equal(res.headers['retry-after'], '1', 'the same header as without errorResponse')
})

t.test('an errorResponse that throws or rejects: 500 with the contract\'s body, logged without the key', async (t) => {
  for (const [label, errorResponse] of [
    ['throws', () => { throw new Error('host bug') }],
    ['rejects', async () => { throw new Error('host bug') }]
  ] as const) {
    const logs = captureLogs()
    const app = await buildApp(t, {
      fastify: { logger: logs.logger },
      keygate: { errorResponse },
      routes: (app) => app.get('/data', async () => ({ ok: true }))
    })
    const key = await createKey(app, 'k')
    const wrong = key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a')
    const res = await app.inject({ url: '/data', headers: { authorization: `Bearer ${wrong}` } })
    t.equal(res.statusCode, 500, label)
    t.same(res.json(), INTERNAL, label)
    t.equal(res.headers['www-authenticate'], undefined, `${label}: no refusal header on a 500`)
    t.match(logs.text(), /the errorResponse option failed/, label)
    t.match(logs.text(), /host bug/, label)
    t.notOk(logs.text().includes(wrong.slice(6)) || logs.text().includes(key.slice(6)), `${label}: no key text in the log`)
  }
})

t.test('without errorResponse the bodies are the contract\'s; a bad errorResponse or hook fails startup', async (t) => {
  const app = await buildApp(t, { routes: (app) => app.get('/data', async () => ({ ok: true })) })
  t.same((await app.inject({ url: '/data' })).json(), UNAUTHORIZED)
  await t.rejects(buildApp(t, { keygate: { errorResponse: 'json' as never } }), {
    code: 'FST_KEYGATE_INVALID_OPTION',
    message: 'Invalid keygate option "errorResponse": expected a function'
  })
  await t.rejects(buildApp(t, { keygate: { hook: 'off' as never } }), {
    code: 'FST_KEYGATE_INVALID_OPTION',
    message: 'Invalid keygate option "hook": expected true or false'
  })
})
