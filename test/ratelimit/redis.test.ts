import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import keygate, { type KeygateOptions } from '../../lib/index.js'
import { FAST_ARGON2, TEST_SECRET, testClock } from '../helpers/app.js'
import { openTestDatabase } from '../helpers/database.js'
import { captureLogs } from '../helpers/log-capture.js'
import { LIVE_REDIS_TIMEOUT, needsRedis, REDIS_URL } from '../helpers/redis.js'

// Half a minute into 2026-03-03T12:00Z's minute: no request of the test can fall into another one.
const MID_MINUTE = Date.UTC(2026, 2, 3, 12, 0, 30)
const MINUTE_END = String(Date.UTC(2026, 2, 3, 12, 1, 0) / 1000)
// For a client that never connects: each of its tests waits this long per Redis call.
const DEAD_REDIS_TIMEOUT = 50

t.test('two instances sharing one Redis admit exactly the limit', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  const apps: FastifyInstance[] = []
  t.teardown(async () => { for (const app of apps) await app.close(); await database.close() })
  // One clock for both, fixed mid-minute: on the wall clock a run that crosses a minute's end
  // counts in two windows and admits more than the limit.
  const clock = testClock(MID_MINUTE)
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    await app.register(fastifyRedis, { url: REDIS_URL, closeClient: true })
    await app.register(keygate, {
      db: database.db,
      schema: database.schema,
      argon2: FAST_ARGON2,
      secret: TEST_SECRET,
      now: clock.now,
      redisTimeout: LIVE_REDIS_TIMEOUT
    })
    app.get('/data', async () => ({ ok: true }))
    await app.ready()
    apps.push(app)
  }
  const { apiKey } = await apps[0]!.keygate.createKey({ name: 'shared', rateLimit: { perMinute: 60, perHour: 10_000 } })
  const responses = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await apps[i % 2]!.inject({ url: '/data', headers: { authorization: apiKey } })))
  const admitted = responses.filter((res) => res.statusCode === 200)
  const refused = responses.filter((res) => res.statusCode === 429)
  t.equal(admitted.length, 60)
  t.equal(refused.length, 140)
  t.same(admitted.map((res) => Number(res.headers['x-ratelimit-remaining'])).sort((a, b) => a - b),
    Array.from({ length: 60 }, (_, i) => i), 'each admitted request saw its own remaining count')
  for (const res of refused) {
    t.equal(res.headers['retry-after'], '30', 'half a minute to the end of the window')
    t.same([res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset']], ['60', '0', MINUTE_END])
    t.same(res.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 30 seconds.', retry_after: 30 })
  }
})

async function appWithStore (t: Test, client: Redis, options: Partial<KeygateOptions>) {
  const database = await openTestDatabase()
  const logs = captureLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(async () => { await app.close(); await database.close() })
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, redis: client, redisTimeout: LIVE_REDIS_TIMEOUT, secret: TEST_SECRET, ...options })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'k' })
  return { app, apiKey, logs }
}

/** A client pointed at a port nothing listens on: every command waits, then times out. Pair it with DEAD_REDIS_TIMEOUT. */
function deadRedis (t: Test): Redis {
  const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, retryStrategy: () => 50 })
  t.teardown(() => client.disconnect())
  return client
}

t.test('a Redis that does not answer: onStoreError allow lets requests through, warning once', async (t) => {
  const { app, apiKey, logs } = await appWithStore(t, deadRedis(t), { redisTimeout: DEAD_REDIS_TIMEOUT })
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ url: '/data', headers: { authorization: apiKey } })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { ok: true })
    t.equal(res.headers['x-ratelimit-limit'], undefined, 'no counts are known, so no headers are sent')
  }
  const warnings = logs.text().split('\n').filter((line) => line.includes('rate-limit store failed'))
  t.equal(warnings.length, 1, 'one warning, not one per request')
  t.match(warnings[0], /"level":40/)
  t.match(warnings[0], /Redis did not answer within 50 ms/)
})

t.test('a Redis that does not answer: onStoreError deny answers 503', async (t) => {
  const { app, apiKey } = await appWithStore(t, deadRedis(t), { redisTimeout: DEAD_REDIS_TIMEOUT, onStoreError: 'deny' })
  const res = await app.inject({ url: '/data', headers: { authorization: apiKey } })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { error: 'service_unavailable', message: 'The rate-limit store is unavailable. Try again shortly.' })
})

t.test('a Redis that goes away mid-run', { skip: needsRedis }, async (t) => {
  const client = new Redis(REDIS_URL as string)
  t.teardown(() => client.disconnect())
  const { app, apiKey } = await appWithStore(t, client, { onStoreError: 'deny' })
  const before = await app.inject({ url: '/data', headers: { authorization: apiKey } })
  t.equal(before.statusCode, 200)
  t.equal(before.headers['x-ratelimit-remaining'], '59')
  client.disconnect()
  const after = await app.inject({ url: '/data', headers: { authorization: apiKey } })
  t.equal(after.statusCode, 503)
  t.same(after.json(), { error: 'service_unavailable', message: 'The rate-limit store is unavailable. Try again shortly.' })
})
