import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import keygate, { type CachedKey, type KeygateOptions, MemoryKeyCache } from '../../lib/index.js'
import { countingHasher, countingSelects, testClock } from '../helpers/app.js'
import { openTestDatabase, type TestDatabase } from '../helpers/database.js'
import { keyIdOf, unknownKey, withBadChecksum, wrongSecret } from '../helpers/keys.js'

interface Instance { app: FastifyInstance, counts: { hash: number, verify: number }, selects: () => number }

async function instance (t: Test, database: TestDatabase, options: Partial<KeygateOptions> = {}): Promise<Instance> {
  const { hasher, counts } = countingHasher()
  const { db, selects } = countingSelects(database.db)
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(keygate, { db, schema: database.schema, hasher, ...options })
  app.get('/data', async (request) => ({ plan: request.apiKey?.plan }))
  await app.ready()
  return { app, counts, selects }
}

async function setup (t: Test, options: Partial<KeygateOptions> = {}) {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const clock = testClock()
  const one = await instance(t, database, { now: clock.now, ...options })
  const { apiKey } = await one.app.keygate.createKey({ name: 'k' })
  const get = async (app: FastifyInstance, authorization: string) => await app.inject({ url: '/data', headers: { authorization } })
  return { database, clock, ...one, apiKey, get }
}

t.test('argon2 runs once per key while it stays cached, even for concurrent first requests', async (t) => {
  const { app, counts, apiKey, get } = await setup(t)
  const first = await Promise.all(Array.from({ length: 20 }, async () => await get(app, apiKey)))
  t.same(first.map((res) => res.statusCode), Array(20).fill(200))
  t.equal(counts.verify, 1, '20 concurrent first requests share one verification')
  for (let i = 0; i < 50; i++) await get(app, `Bearer ${apiKey}`)
  t.equal(counts.verify, 1, 'and nothing more while cached')
})

t.test('a record is fresh for cacheTtl, then re-read by id without argon2', async (t) => {
  const { app, counts, selects, apiKey, clock, database, get } = await setup(t)
  t.same((await get(app, apiKey)).json(), { plan: 'free' })
  const readsAfterFirst = selects()
  await database.db.withSchema(database.schema).updateTable('keygate_api_keys').set({ plan: 'pro' }).execute()

  clock.advance(4_999)
  t.same((await get(app, apiKey)).json(), { plan: 'free' }, 'within 5 s the cached record answers')
  t.equal(selects(), readsAfterFirst, 'no database read while fresh')
  clock.advance(1)
  t.same((await get(app, apiKey)).json(), { plan: 'pro' }, 'after 5 s the record is re-read')
  t.equal(selects(), readsAfterFirst + 1, 'one read by id')
  t.equal(counts.verify, 1, 'no argon2: the stored hash is unchanged')
})

t.test('a changed stored hash makes the cached fingerprint worthless', async (t) => {
  const { app, apiKey, clock, database, get } = await setup(t)
  t.equal((await get(app, apiKey)).statusCode, 200)
  const { hasher } = countingHasher()
  await database.db.withSchema(database.schema).updateTable('keygate_api_keys').set({ hash: await hasher.hash('another key text') }).execute()
  clock.advance(5_000)
  t.equal((await get(app, apiKey)).statusCode, 401, 'the old text no longer matches the new hash')
})

t.test('deleting a key evicts it: refused on the very next request', async (t) => {
  const { app, apiKey, get } = await setup(t)
  t.equal((await get(app, apiKey)).statusCode, 200)
  await app.keygate.deleteKey('k')
  t.equal((await get(app, apiKey)).statusCode, 401)
})

t.test('wrong secrets for a real key id cost argon2 once each, then nothing', async (t) => {
  const { app, counts, apiKey, clock, get } = await setup(t)
  t.equal((await get(app, apiKey)).statusCode, 200)
  t.equal(counts.verify, 1)

  for (let i = 0; i < 20; i++) t.equal((await get(app, wrongSecret(apiKey, 1))).statusCode, 401)
  t.equal(counts.verify, 2, 'one wrong secret repeated: one verification, remembered by fingerprint')

  for (let n = 2; n <= 30; n++) t.equal((await get(app, wrongSecret(apiKey, n))).statusCode, 401)
  t.equal(counts.verify, 5, 'distinct wrong secrets: 5 verifications per minute in all, the real one included, then no argon2 at all')

  t.equal((await get(app, apiKey)).statusCode, 200, 'the real key, already verified, is unaffected')
  t.equal(counts.verify, 5)

  clock.advance(60_000)
  t.equal((await get(app, wrongSecret(apiKey, 99))).statusCode, 401)
  t.equal(counts.verify, 6, 'a minute later the id takes new secrets again')
})

t.test('unknown key ids are remembered: garbage with a valid checksum reaches the database once', async (t) => {
  const { app, apiKey, selects, get, clock } = await setup(t)
  const garbage = unknownKey('metlo', apiKey)
  // The set-up made no authenticated request, so no key read or renewal can still be running.
  const before = selects()
  for (let i = 0; i < 25; i++) t.equal((await get(app, garbage)).statusCode, 401)
  t.equal(selects(), before + 1)
  clock.advance(5_000)
  await get(app, garbage)
  t.equal(selects(), before + 2, 'remembered for cacheTtl')
})

t.test('malformed keys never reach the cache or the database', async (t) => {
  const { app, apiKey, selects, counts, get } = await setup(t)
  // The set-up made no authenticated request, so no key read or renewal can still be running.
  const before = selects()
  // The real key with a checksum that is wrong by construction, not by chance.
  for (const bad of ['metlo_x', withBadChecksum(apiKey), 'x'.repeat(10_000)]) {
    t.equal((await get(app, bad)).statusCode, 401, bad.slice(0, 40))
  }
  t.equal(selects(), before)
  t.equal(counts.verify, 0)
})

t.test('another instance with the channel silenced: the 5-second freshness ends a deleted key', async (t) => {
  const { database, clock, app, apiKey, get } = await setup(t)
  const other = await instance(t, database, { now: clock.now, cache: new MemoryKeyCache() })
  t.equal((await get(other.app, apiKey)).statusCode, 200)
  await app.keygate.deleteKey('k')
  t.equal((await get(app, apiKey)).statusCode, 401, 'the deleting instance refuses at once')
  t.equal((await get(other.app, apiKey)).statusCode, 200, 'the other, hearing nothing, trusts its cache while fresh')
  clock.advance(5_000)
  t.equal((await get(other.app, apiKey)).statusCode, 401, 'then re-reads and refuses')
})

t.test('cacheSize bounds the in-process cache', async (t) => {
  const { app, counts, get } = await setup(t, { cacheSize: 2 })
  const keys = [(await app.keygate.createKey({ name: 'a' })).apiKey, (await app.keygate.createKey({ name: 'b' })).apiKey, (await app.keygate.createKey({ name: 'c' })).apiKey]
  for (const key of keys) await get(app, key)
  t.equal(counts.verify, 3)
  await get(app, keys[0]!)
  t.equal(counts.verify, 4, 'the least recently used key was evicted and verified again')
})

t.test('keys in steady use are renewed ahead of their freshness, many in one read, served from the cache meanwhile', async (t) => {
  const cache = new MemoryKeyCache()
  const { app, selects, clock, get } = await setup(t, { cache })
  const start = clock.now()
  const keys = [(await app.keygate.createKey({ name: 'a' })).apiKey, (await app.keygate.createKey({ name: 'b' })).apiKey]
  for (const key of keys) t.equal((await get(app, key)).statusCode, 200)
  const before = selects()

  clock.advance(2_000)
  for (const key of keys) t.equal((await get(app, key)).statusCode, 200)
  t.equal(selects(), before, 'first half of the freshness: nothing to renew')
  clock.advance(600)
  for (const key of keys) t.equal((await get(app, key)).statusCode, 200)
  t.equal(selects(), before, 'second half: queued, not read yet, and served from the cache')
  clock.advance(100)
  t.equal((await get(app, keys[0]!)).statusCode, 200, 'a request once the queue has waited 100 ms')
  await app.close() // waits for the renewal's read
  t.equal(selects(), before + 1, 'one read for both keys')
  for (const key of keys) t.equal((await cache.get(keyIdOf(key)) as CachedKey).freshUntil, start + 2_700 + 5_000, 'fresh for another 5 s')
})

t.test('a key deleted while its first verification runs is not cached by it: the next request is refused', async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const { hasher } = countingHasher()
  // argon2 that waits for the test to let it finish, so the delete lands in the middle.
  let letVerifyFinish = (): void => {}
  const verifying = new Promise<void>((resolve) => { letVerifyFinish = resolve })
  let verifyStarted = (): void => {}
  const started = new Promise<void>((resolve) => { verifyStarted = resolve })
  const gated = {
    hash: hasher.hash,
    verify: async (hash: string, text: string) => { verifyStarted(); await verifying; return await hasher.verify(hash, text) }
  }
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: database.db, schema: database.schema, hasher: gated })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'k' })

  const first = app.inject({ url: '/data', headers: { authorization: apiKey } })
  await started
  await app.keygate.deleteKey('k')
  letVerifyFinish()
  t.equal((await first).statusCode, 200, 'the request read the key before it was deleted')
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 401, 'the next one is refused')
})

t.test('a key deleted while its record is re-read is not cached by that read: the next request is refused', async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const clock = testClock()
  // Reads of the key table wait for the test once it says so, so the delete lands in the middle.
  let gate: Promise<void> | undefined
  let openGate = (): void => {}
  let readWaiting = (): void => {}
  const waiting = new Promise<void>((resolve) => { readWaiting = resolve })
  const db = database.db.withPlugin({
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      if (gate !== undefined && args.result.rows.length > 0 && 'hash' in (args.result.rows[0] as object)) { readWaiting(); await gate }
      return args.result
    }
  })
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(keygate, { db, schema: database.schema, hasher: countingHasher().hasher, now: clock.now })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'k' })
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 200)

  clock.advance(5_000)
  gate = new Promise((resolve) => { openGate = resolve })
  const refreshing = app.inject({ url: '/data', headers: { authorization: apiKey } })
  await waiting
  gate = undefined
  await app.keygate.deleteKey('k')
  openGate()
  t.equal((await refreshing).statusCode, 200, 'the re-read found the key before it was deleted')
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 401, 'the next request is refused')
})
