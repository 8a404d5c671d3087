import diagnosticsChannel from 'node:diagnostics_channel'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { CHANNELS, type RateLimitStore } from '../../lib/index.js'
import { buildApp, TEST_SECRET, testClock } from '../helpers/app.js'

type Event = [string, Record<string, unknown>]

/** Every message of keygate's channels while the test runs, in order. */
function listen (t: Test): Event[] {
  const events: Event[] = []
  for (const name of Object.values(CHANNELS)) {
    const listener = (message: unknown) => { events.push([name, message as Record<string, unknown>]) }
    diagnosticsChannel.subscribe(name, listener)
    t.teardown(() => { diagnosticsChannel.unsubscribe(name, listener) })
  }
  return events
}

/** The events with the argon2 duration replaced by its type: the rest is exact. */
const timeless = (events: Event[]) => events.map(([name, message]) =>
  name === CHANNELS.argon2 ? [name, { ...message, durationMs: typeof message.durationMs }] : [name, message])

t.test('the channel names are exported', async (t) => {
  t.same(CHANNELS, {
    verification: 'keygate:verification',
    denial: 'keygate:denial',
    cache: 'keygate:cache',
    argon2: 'keygate:argon2',
    storeError: 'keygate:store-error'
  })
})

t.test('real requests publish verifications, denials, cache lookups and argon2 runs, never key text', async (t) => {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { now: clock.now },
    routes: (app) => app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))
  })
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'k', scopes: ['query'] })
  const events = listen(t)
  const call = async (authorization?: string, method: 'GET' | 'POST' = 'GET', url = '/v1/connectors') =>
    await app.inject({ method, url, headers: authorization === undefined ? {} : { authorization } })

  t.equal((await call(undefined, 'POST')).statusCode, 401)
  t.equal((await call(apiKey, 'POST')).statusCode, 403)
  const wrong = apiKey.slice(0, 14) + 'W'.repeat(18)
  t.equal((await call(`Bearer ${wrong}`, 'POST')).statusCode, 401)
  t.same(timeless(events), [
    [CHANNELS.verification, { outcome: 'denied', reason: 'missing', identifier: null }],
    [CHANNELS.denial, { reason: 'missing', statusCode: 401, identifier: null }],
    [CHANNELS.cache, { level: 'local', result: 'miss' }],
    [CHANNELS.argon2, { outcome: 'match', durationMs: 'number' }],
    [CHANNELS.verification, { outcome: 'denied', reason: 'insufficient_scope', identifier }],
    [CHANNELS.denial, { reason: 'insufficient_scope', statusCode: 403, identifier }],
    [CHANNELS.verification, { outcome: 'denied', reason: 'malformed', identifier: null }],
    [CHANNELS.denial, { reason: 'malformed', statusCode: 401, identifier: null }]
  ])
  t.ok((events[3]?.[1].durationMs as number) >= 0)
  const text = JSON.stringify(events)
  t.notOk(text.includes(apiKey.slice(6)) || text.includes(apiKey.slice(14, 32)), 'no key text, no secret')
})

t.test('admitted requests: a verification with the key\'s identifier, and a local hit', async (t) => {
  const app = await buildApp(t, { routes: (app) => app.get('/data', async () => ({ ok: true })) })
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'k' })
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 200)
  const events = listen(t)
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 200)
  t.same(events, [
    [CHANNELS.cache, { level: 'local', result: 'hit' }],
    [CHANNELS.verification, { outcome: 'admitted', reason: null, identifier }]
  ])
})

t.test('store errors: the rate-limit store, and a Redis that cannot be reached', async (t) => {
  const down: RateLimitStore = { consume: () => { throw new Error('the store is down (test)') } }
  const app = await buildApp(t, { keygate: { rateLimitStore: down }, routes: (app) => app.get('/data', async () => ({ ok: true })) })
  const { apiKey } = await app.keygate.createKey({ name: 'k' })
  const events = listen(t)
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 200, 'onStoreError allow: let through')
  const storeErrors = events.filter(([name]) => name === CHANNELS.storeError).map(([, message]) => message)
  t.equal(storeErrors.length, 1)
  t.match(storeErrors[0], { store: 'rate-limit', operation: 'consume', error: { type: 'Error', message: 'the store is down (test)' } })

  // Port 1: nothing listens. No offline queue, so every command fails at once.
  const redis = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const unreachable = await buildApp(t, { keygate: { redis, secret: TEST_SECRET, redisTimeout: 50 }, routes: (app) => app.get('/data', async () => ({ ok: true })) })
  const key = (await unreachable.keygate.createKey({ name: 'k' })).apiKey
  events.length = 0
  t.equal((await unreachable.inject({ url: '/data', headers: { authorization: key } })).statusCode, 200, 'the database and this process answer')
  const failed = events.filter(([name]) => name === CHANNELS.storeError).map(([, message]) => `${String(message.store)}:${String(message.operation)}`)
  t.same([...new Set(failed)].sort(), ['rate-limit:consume', 'redis-cache:get', 'redis-cache:set'])
})
