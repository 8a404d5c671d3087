import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import keygate, { type KeygateOptions, RedisKeyCache } from '../../lib/index.js'
import { countingHasher, TEST_SECRET, testClock } from '../helpers/app.js'
import { DATABASE_URL, openTestDatabase, type TestDatabase } from '../helpers/database.js'
import { LIVE_REDIS_TIMEOUT, monitorRedis, needsRedis, REDIS_URL, redisClient, uniqueKeyPrefix } from '../helpers/redis.js'
import { relay } from '../helpers/relay.js'
import { until } from '../helpers/until.js'

async function instance (t: Test, database: TestDatabase, options: Partial<KeygateOptions> = {}) {
  const { hasher, counts } = countingHasher()
  const app = Fastify()
  t.teardown(async () => await app.close())
  if (options.redis === undefined) await app.register(fastifyRedis, { url: REDIS_URL, closeClient: true })
  await app.register(keygate, { db: database.db, schema: database.schema, hasher, secret: TEST_SECRET, ...options })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  // Until its subscription is confirmed an instance could miss a delete published meanwhile.
  if (app.keygateCache instanceof RedisKeyCache) await app.keygateCache.listening
  return { app, counts }
}

const get = async (app: FastifyInstance, authorization: string) => await app.inject({ url: '/data', headers: { authorization } })

/** Resolves when `app`'s cache hears an invalidation from elsewhere. */
function nextInvalidation (app: FastifyInstance): Promise<string | null> {
  return new Promise((resolve) => app.keygateCache!.onInvalidate(resolve))
}

t.test('Redis is the second level: a key verified on one instance costs the others no argon2', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  // With the 250 ms default, a loaded machine can time out A's write or B's read: B then verifies.
  const a = await instance(t, database, { redisTimeout: LIVE_REDIS_TIMEOUT })
  const b = await instance(t, database, { redisTimeout: LIVE_REDIS_TIMEOUT })
  const { apiKey } = await a.app.keygate.createKey({ name: 'shared' })
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  t.equal((await get(b.app, apiKey)).statusCode, 200)
  t.equal(a.counts.verify, 1)
  t.equal(b.counts.verify, 0, 'B found the verified entry in Redis')

  const stored = await (a.app as unknown as { redis: Redis }).redis.get(`keygate:key:${apiKey.slice(6, 14)}`)
  t.ok(stored)
  t.equal(stored!.includes(apiKey.slice(6)), false, 'Redis holds no key text')
  const [version, tag, ...json] = stored!.split('.')
  t.equal(version, 'v1')
  t.match(tag, /^[\w-]{43}$/, 'an HMAC-SHA256 tag, base64url')
  t.same(Object.keys(JSON.parse(json.join('.'))), ['key', 'lineage', 'notAfter', 'deprecation', 'credits', 'fingerprint', 'hashDigest', 'freshUntil'])
  t.equal(stored!.includes('$argon2id$'), false, 'nor the stored hash')
})

t.test('a delete on one instance is refused on every other, at once', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const a = await instance(t, database)
  const b = await instance(t, database)
  const { apiKey } = await a.app.keygate.createKey({ name: 'revoked' })
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  t.equal((await get(b.app, apiKey)).statusCode, 200)
  const heard = nextInvalidation(b.app)
  await a.app.keygate.deleteKey('revoked')
  t.equal(await heard, apiKey.slice(6, 14), 'B heard of it over pub/sub')
  t.equal((await get(b.app, apiKey)).statusCode, 401)
  t.equal((await get(a.app, apiKey)).statusCode, 401)
})

t.test('after its subscriber reconnects, an instance empties its in-process cache; the entry in Redis then costs no argon2', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  // A name of its own, so the test cuts its own subscriber and no other test file's.
  const connectionName = `keygate-test-${process.pid}-${Date.now()}`
  const client = new Redis(REDIS_URL as string, { connectionName })
  t.teardown(() => client.disconnect())
  const a = await instance(t, database, { redis: client })
  const { apiKey } = await a.app.keygate.createKey({ name: 'k' })
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  const heard = nextInvalidation(a.app)
  const admin = new Redis(REDIS_URL as string)
  t.teardown(() => admin.disconnect())
  const clients = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n')
  const ours = clients.filter((line) => line.includes(` name=${connectionName} `)).map((line) => /id=(\d+)/.exec(line)?.[1])
  t.equal(ours.length, 1, 'one subscriber of ours')
  await admin.call('CLIENT', 'KILL', 'ID', ours[0] as string)
  t.equal(await heard, null, 'everything is dropped')
  const verifications = a.counts.verify
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  t.equal(a.counts.verify, verifications, 'the entry in Redis is re-read from the database, not verified again')
})

t.test('on a single Redis, invalidations go by plain PUBLISH and SUBSCRIBE (sharded ones are for a Cluster)', { skip: needsRedis }, async (t) => {
  const keyPrefix = uniqueKeyPrefix()
  const channel = `${keyPrefix}invalidate`
  const cache = new RedisKeyCache({ client: redisClient(t), secret: Buffer.from(TEST_SECRET), cacheTtl: 5_000, entryTtlMs: 35_000, timeoutMs: LIVE_REDIS_TIMEOUT, log: Fastify().log, keyPrefix })
  t.teardown(async () => await cache.close())
  await cache.listening
  const admin = redisClient(t)
  t.same(await admin.call('PUBSUB', 'NUMSUB', channel), [channel, 1])
  t.same(await admin.call('PUBSUB', 'SHARDNUMSUB', channel), [channel, 0])
  const monitor = await monitorRedis(t)
  const published: string[][] = []
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[1] === channel) published.push([String(args[0]).toLowerCase(), args[1]])
  })
  const heard = new Promise((resolve) => cache.onInvalidate(resolve))
  await cache.delete('a1B2c3D4')
  t.equal(await heard, 'a1B2c3D4')
  await until('MONITOR to show the publish', async () => published.length > 0)
  t.same(published, [['publish', channel]])
})

t.test('a renewal writes its keys to Redis in one script call, not a SET each; another instance then uses them without argon2', { skip: needsRedis }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(async () => await database.close())
  const clock = testClock()
  const one = await instance(t, database, { now: clock.now, redisTimeout: LIVE_REDIS_TIMEOUT })
  const texts: string[] = []
  for (let i = 0; i < 3; i++) texts.push((await one.app.keygate.createKey({ name: `renewed-${i}` })).apiKey)
  for (const text of texts) t.equal((await get(one.app, text)).statusCode, 200)
  const monitor = await monitorRedis(t)
  // What clients sent (the script's own SETs show with the source `lua`).
  const sent: string[][] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => { if (source !== 'lua') sent.push(args) })
  // Second half of the keys' 5 s freshness: each hit queues its key; 100 ms on, a hit sends the batch.
  clock.advance(2_600)
  for (const text of texts) t.equal((await get(one.app, text)).statusCode, 200)
  clock.advance(100)
  t.equal((await get(one.app, texts[0] as string)).statusCode, 200)
  const entryWrite = (args: string[]): boolean => /^evalsha$|^eval$/i.test(args[0] ?? '') && args[3]?.startsWith('keygate:key:') === true
  await until('the renewal\'s write to Redis', async () => sent.some(entryWrite))
  const call = sent.find(entryWrite) as string[]
  t.equal(call[2], '3', 'one call holding the three keys')
  t.equal(Number(call[6]), 35_000, 'each kept for cacheTtl + staleIfError')
  const marker = `renewal-done-${process.pid}`
  await one.app.redis.ping(marker)
  await until('Redis to have shown every command before the marker', async () => sent.some((args) => args[0] === 'ping' && args[1] === marker))
  t.same(sent.filter((args) => args[0]?.toLowerCase() === 'set' && args[1]?.startsWith('keygate:key:') === true), [], 'no SET of its own for any of them')
  // What was written is what another instance reads: no argon2 there.
  const two = await instance(t, database, { now: clock.now, redisTimeout: LIVE_REDIS_TIMEOUT })
  for (const text of texts) t.equal((await get(two.app, text)).statusCode, 200)
  t.equal(two.counts.verify, 0, 'the second instance ran argon2 for none of them')
})

t.test('secret is required when Redis is used', async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true })
  t.teardown(() => client.disconnect())
  const app = Fastify()
  void app.register(keygate, { db: database.db, schema: database.schema, redis: client })
  await t.rejects(async () => await app.ready(), {
    code: 'FST_KEYGATE_INVALID_OPTION',
    message: 'Invalid keygate option "secret": required when Redis is used: every instance must compute the same key fingerprints'
  })
})

t.test('Redis down or hung: authentication goes on from this process and the database', async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const dead = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, retryStrategy: () => 50 })
  t.teardown(() => dead.disconnect())
  const clock = testClock()
  const a = await instance(t, database, { redis: dead, redisTimeout: 50, now: clock.now })
  const { apiKey } = await a.app.keygate.createKey({ name: 'k' })
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  t.equal((await get(a.app, apiKey)).statusCode, 200)
  t.equal(a.counts.verify, 1, 'the in-process level still holds it')
  await a.app.keygate.deleteKey('k')
  t.equal((await get(a.app, apiKey)).statusCode, 401, 'and a delete still applies here')
})

t.test('database down: a revocation heard over pub/sub still applies at once', {
  skip: needsRedis || (DATABASE_URL === undefined ? 'needs DATABASE_URL (a PostgreSQL server to cut off)' : false)
}, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const proxy = await relay(new URL(DATABASE_URL!))
  t.teardown(proxy.close)
  const through = new URL(DATABASE_URL!)
  through.hostname = '127.0.0.1'
  through.port = String(proxy.port)

  const a = await instance(t, database)
  // B reaches the same schema through a relay the test can cut.
  const b = await instance(t, database, { db: { connectionString: through.href, pool: { connectionTimeoutMillis: 1000 } }, migrate: false })
  const { apiKey } = await a.app.keygate.createKey({ name: 'revoked-while-down' })
  t.equal((await get(b.app, apiKey)).statusCode, 200)

  await proxy.cut()
  t.equal((await get(b.app, apiKey)).statusCode, 200, 'B serves from its cache while its database is down')
  const heard = nextInvalidation(b.app)
  await a.app.keygate.deleteKey('revoked-while-down')
  await heard
  const after = await get(b.app, apiKey)
  t.equal(after.statusCode, 401, 'B remembers the delete it heard: refused without asking the database')
})
