import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import keygate, { RedisKeyCache } from '../../lib/index.js'
import { FAST_ARGON2, TEST_SECRET, testClock } from '../helpers/app.js'
import { keyIdOf } from '../helpers/keys.js'
import { openTestDatabase, type TestDatabase } from '../helpers/database.js'
import { LIVE_REDIS_TIMEOUT, monitorRedis, needsRedis, REDIS_URL, redisClient } from '../helpers/redis.js'

const OUT = { error: 'credits_exhausted', message: 'API key has no credits left.' }

/** Two instances on one database and one Redis, on one clock. */
async function twoInstances (t: Test, database: TestDatabase, now: () => number): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  t.teardown(async () => { for (const app of apps) await app.close() })
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    await app.register(fastifyRedis, { url: REDIS_URL, closeClient: true })
    await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, secret: TEST_SECRET, now, redisTimeout: LIVE_REDIS_TIMEOUT })
    app.get('/data', async () => ({ ok: true }))
    await app.ready()
    // Until its subscription is confirmed an instance could miss a change published meanwhile.
    if (app.keygateCache instanceof RedisKeyCache) await app.keygateCache.listening
    apps.push(app)
  }
  return apps
}

t.test('two instances sharing one Redis: 200 requests at once against 150 credits admit exactly 150', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const [a, b] = await twoInstances(t, database, testClock().now) as [FastifyInstance, FastifyInstance]
  const { apiKey } = await a.keygate.createKey({ name: 'prepaid', plan: 'enterprise', rateLimit: { perMinute: 1000 }, credits: { remaining: 150 } })
  const responses = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await (i % 2 === 0 ? a : b).inject({ url: '/data', headers: { authorization: apiKey } })))
  const admitted = responses.filter((res) => res.statusCode === 200)
  const refused = responses.filter((res) => res.statusCode === 429)
  t.equal(admitted.length, 150)
  t.equal(refused.length, 50)
  for (const res of refused) t.same(res.json(), OUT)
  t.same(admitted.map((res) => Number(res.headers['x-ratelimit-remaining'])).sort((x, y) => x - y),
    Array.from({ length: 150 }, (_, i) => 850 + i), 'a refusal for credits counted nothing against the minute')
  for (const app of [a, b]) {
    const listed = (await app.keygate.listKeys()).find((key) => key.name === 'prepaid')
    t.same(listed?.credits, { remaining: 0, refill: null }, 'every instance lists what is left in Redis')
  }
})

t.test('credits set on one instance apply on the other at its next request', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const [a, b] = await twoInstances(t, database, testClock().now) as [FastifyInstance, FastifyInstance]
  const { apiKey } = await a.keygate.createKey({ name: 'changed' })
  const get = async (app: FastifyInstance) => await app.inject({ url: '/data', headers: { authorization: apiKey } })
  t.equal((await get(b)).statusCode, 200, 'B holds the key, without credits')
  const heard = new Promise((resolve) => b.keygateCache!.onInvalidate(resolve))
  await a.keygate.updateKey('changed', { credits: { remaining: 1 } })
  await heard
  t.equal((await get(b)).statusCode, 200)
  const refused = await get(a)
  t.equal(refused.statusCode, 429)
  t.same(refused.json(), OUT, 'the credit B used counted on A too')

  const cleared = new Promise((resolve) => b.keygateCache!.onInvalidate(resolve))
  await a.keygate.updateKey('changed', { credits: null })
  await cleared
  t.equal((await get(b)).statusCode, 200, 'cleared: B lets it through again')
})

t.test('a cached key with credits costs one script call per request and nothing else; without credits, the same call with one counter less', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const [a] = await twoInstances(t, database, testClock().now) as [FastifyInstance]
  const { apiKey: withCredits } = await a.keygate.createKey({ name: 'metered', credits: { remaining: 100 } })
  const { apiKey: without } = await a.keygate.createKey({ name: 'plain' })
  const get = async (key: string) => await a.inject({ url: '/data', headers: { authorization: key } })
  // Warm: both keys verified and cached in this process (the test clock stands still: they stay fresh).
  t.equal((await get(withCredits)).statusCode, 200)
  t.equal((await get(without)).statusCode, 200)

  const ids = [keyIdOf(withCredits), keyIdOf(without)]
  const admin = redisClient(t)
  const monitor = await monitorRedis(t)
  const seen: string[][] = []
  const marker = `credits-monitor-${process.pid}-${Date.now()}`
  const done = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (args[0]?.toLowerCase() === 'ping' && args[1] === marker) return resolve()
      // What a client sent about these two keys (other test files share this Redis; the
      // script's own commands show with source `lua`).
      if (source !== 'lua' && args.some((arg) => ids.some((id) => arg.includes(id)))) seen.push(args)
    })
  })
  for (let i = 0; i < 3; i++) t.equal((await get(withCredits)).statusCode, 200)
  for (let i = 0; i < 3; i++) t.equal((await get(without)).statusCode, 200)
  // Redis runs commands in order: once the monitor shows this PING, it has shown every one before it.
  await admin.ping(marker)
  await done
  t.same(seen.map((args) => [args[0]?.toLowerCase(), args[2]]), [
    ['evalsha', '3'], ['evalsha', '3'], ['evalsha', '3'],
    ['evalsha', '2'], ['evalsha', '2'], ['evalsha', '2']
  ], 'one call per request: minute, hour and credits counters with credits; minute and hour without')
})
