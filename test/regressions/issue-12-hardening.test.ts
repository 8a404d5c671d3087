import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import keygate, { type CachedKey, MemoryKeyCache } from '../../lib/index.js'
import { countingHasher, FAST_ARGON2, TEST_SECRET, testClock } from '../helpers/app.js'
import { database, heard, instance } from '../helpers/instance.js'
import { forgeKey, keyIdOf } from '../helpers/keys.js'
import { captureLogs } from '../helpers/log-capture.js'
import { needsRedis } from '../helpers/redis.js'

const run = promisify(execFile)

// Issue 12: each numbered finding, tried as an attacker would, against a real database (and a
// real Redis with two or three instances where the finding needs one).

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const denied = (scope: string) => ({ error: 'insufficient_scope', message: `API key lacks required permission: ${scope}` })

t.test('1. another prefix with a known key id and a valid checksum locks nobody out', async (t) => {
  const a = await instance(t, await database(t))
  const { apiKey } = await a.app.keygate.createKey({ name: 'victim' })
  t.equal((await a.call(apiKey)).statusCode, 200)
  const forged = forgeKey('mlo', keyIdOf(apiKey), 'anything')
  for (let i = 0; i < 3; i++) t.same((await a.call(forged)).json(), UNAUTHORIZED, 'the forged text is refused')
  t.equal((await a.call(apiKey)).statusCode, 200, 'the real key, cached and verified, still works')

  // An instance that has not verified the real key yet: the forged prefix is remembered as
  // missing under its own identifier, never under the key id the real key shares.
  const b = await instance(t, await database(t))
  const other = await b.app.keygate.createKey({ name: 'not-yet-used' })
  t.equal((await b.call(forgeKey('mlo', keyIdOf(other.apiKey), 'x'))).statusCode, 401)
  t.equal((await b.call(other.apiKey)).statusCode, 200, 'its first use after the forgery is accepted')
  t.equal(b.counts.verify, 1, 'and the forgery cost no argon2')
})

t.test('1. with Redis: a forged prefix on one instance locks the key out of no other', { skip: needsRedis }, async (t) => {
  const db = await database(t)
  const a = await instance(t, db, { withRedis: true })
  const b = await instance(t, db, { withRedis: true })
  const { apiKey } = await a.app.keygate.createKey({ name: 'victim' })
  t.equal((await a.call(apiKey)).statusCode, 200)
  t.equal((await b.call(forgeKey('mlo', keyIdOf(apiKey), 'x'))).statusCode, 401)
  t.equal((await a.call(forgeKey('mlo', keyIdOf(apiKey), 'y'))).statusCode, 401)
  t.equal((await b.call(apiKey)).statusCode, 200, 'B takes the verified entry from Redis')
  t.equal((await a.call(apiKey)).statusCode, 200)
})

t.test('1, 2. spending a key id\'s argon2 budget on one instance does not lock out a key verified on another', async (t) => {
  const db = await database(t)
  const shared = new MemoryKeyCache()
  const a = await instance(t, db, { cache: shared })
  const b = await instance(t, db, { cache: shared })
  const { apiKey } = await a.app.keygate.createKey({ name: 'victim' })
  t.equal((await a.call(apiKey)).statusCode, 200, 'verified on A')
  for (let n = 0; n < 10; n++) t.equal((await b.call(forgeKey('metlo', keyIdOf(apiKey), `wrong${n}`))).statusCode, 401)
  t.equal(b.counts.verify, 5, 'B spent the key id\'s budget on wrong secrets')
  t.equal((await b.call(apiKey)).statusCode, 200, 'the real key is found verified in the shared level all the same')
  t.equal(b.counts.verify, 5)
})

t.test('2. a burst of 100 distinct wrong secrets for one key id costs at most 5 argon2 runs', async (t) => {
  const a = await instance(t, await database(t))
  const { apiKey } = await a.app.keygate.createKey({ name: 'target' })
  const burst = await Promise.all(Array.from({ length: 100 }, async (_, n) => await a.call(forgeKey('metlo', keyIdOf(apiKey), `wrong${n}`))))
  t.same([...new Set(burst.map((res) => res.statusCode))], [401])
  t.equal(a.counts.verify, 5, 'verifications are counted as they start, not when argon2 ends')
})

t.test('2. argon2 is capped per process: past the queue, 503 with Retry-After; verified keys never wait', async (t) => {
  const db = await database(t)
  const { hasher } = countingHasher()
  // argon2 that finishes only when the test lets it, so the slot stays taken meanwhile.
  const release: Array<() => void> = []
  const gated = {
    hash: hasher.hash,
    verify: async (hash: string, text: string) => {
      await new Promise<void>((resolve) => release.push(resolve))
      return await hasher.verify(hash, text)
    }
  }
  const a = await instance(t, db, { hasher: gated, hashConcurrency: 1, hashQueue: 0 })
  const keys: string[] = []
  for (const name of ['warm', 'first', 'second']) keys.push((await a.app.keygate.createKey({ name })).apiKey)
  const [warm, first, second] = keys as [string, string, string]
  const verifyNext = async () => {
    while (release.length === 0) await new Promise(setImmediate)
    return release.shift() as () => void
  }
  const warming = a.call(warm)
  ;(await verifyNext())()
  t.equal((await warming).statusCode, 200, 'one key verified before')

  const firstUse = a.call(first)
  const letFirstFinish = await verifyNext()
  const refused = await a.call(second)
  t.equal(refused.statusCode, 503, 'the one slot is taken and no queue is allowed')
  t.equal(refused.headers['retry-after'], '1')
  t.same(refused.json(), { error: 'service_unavailable', message: 'Too many keys are being verified at once. Try again shortly.' })
  t.equal((await a.call(warm)).statusCode, 200, 'a verified key is answered meanwhile')
  letFirstFinish()
  t.equal((await firstUse).statusCode, 200)

  const retried = a.call(second)
  ;(await verifyNext())()
  t.equal((await retried).statusCode, 200, 'the refused key succeeds once there is room: its refusal did not count against it')
})

t.test('3. Redis entries grant nothing: raised scopes, replays after a delete, and garbage', { skip: needsRedis }, async (t) => {
  const db = await database(t)
  const a = await instance(t, db, { withRedis: true })
  const b = await instance(t, db, { withRedis: true })
  const redis = (a.app as unknown as { redis: Redis }).redis
  const { apiKey: admin } = await a.app.keygate.createKey({ name: 'admin' })
  const { apiKey: queryOnly } = await a.app.keygate.createKey({ name: 'query-only', scopes: ['query'] })
  const entryName = (key: string) => `keygate:key:${keyIdOf(key)}`

  await t.test('an entry edited to scopes ["*"] is a miss; the database decides', async (t) => {
    t.equal((await a.call(queryOnly)).statusCode, 200)
    const stored = await redis.get(entryName(queryOnly))
    t.ok(stored?.startsWith('v1.'), 'entries are tagged')
    await redis.set(entryName(queryOnly), stored!.replace('["query"]', '["*"]'), 'PX', 60_000)
    const res = await b.call(queryOnly, 'POST', '/api/v1/keys/create', { name: 'made-by-query-only' })
    t.equal(res.statusCode, 403)
    t.same(res.json(), denied('keys:write'))
    t.equal(b.counts.verify, 1, 'B verified the key itself, from the database')
    const after = await redis.get(entryName(queryOnly))
    t.equal(after?.includes('["*"]'), false, 'the edited entry is gone from Redis')
  })

  await t.test('an untagged entry is a miss, is removed, and never reaches the in-process cache', async (t) => {
    const c = await instance(t, db, { withRedis: true })
    const { apiKey } = await a.app.keygate.createKey({ name: 'garbage-target' })
    await redis.set(entryName(apiKey), '{"x":1}', 'PX', 60_000)
    t.same((await c.call(apiKey)).json(), { scopes: ['*'] }, 'the key itself still works, verified afresh')
    t.equal(c.counts.verify, 1)
    t.ok((await redis.get(entryName(apiKey)))?.startsWith('v1.'), 'the garbage was replaced by a tagged entry')
    await redis.set(entryName(apiKey), 'v1.AAAA.{"x":1}', 'PX', 60_000)
    const d = await instance(t, db, { withRedis: true })
    t.equal((await d.call(apiKey)).statusCode, 200)
    t.equal(d.counts.verify, 1, 'a wrong tag is no better than none')
  })

  await t.test('a deleted key\'s own earlier entry, written back, is refused everywhere', async (t) => {
    const { apiKey } = await a.app.keygate.createKey({ name: 'to-delete' })
    t.equal((await a.call(apiKey)).statusCode, 200)
    t.equal((await b.call(apiKey)).statusCode, 200)
    const before = await redis.get(entryName(apiKey))
    const bHeard = heard(b.app, keyIdOf(apiKey))
    await a.app.keygate.deleteKey('to-delete')
    await bHeard
    // What a verification in flight across the delete, or an attacker, would write (finding 9).
    await redis.set(entryName(apiKey), before!, 'PX', 60_000)
    t.same((await a.call(apiKey)).json(), UNAUTHORIZED, 'the deleting instance refuses it')
    t.same((await b.call(apiKey)).json(), UNAUTHORIZED, 'an instance that heard the delete refuses it')
    const latecomer = await instance(t, db, { withRedis: true })
    t.same((await latecomer.call(apiKey)).json(), UNAUTHORIZED, 'an instance started after the delete re-reads the entry first, and refuses it')
  })

  await t.test('a forged invalidation message is ignored', async (t) => {
    t.equal((await b.call(admin)).statusCode, 200)
    await redis.publish('keygate:key:invalidate', keyIdOf(admin))
    await redis.publish('keygate:key:invalidate', `${keyIdOf(admin)}.not-a-tag`)
    // A genuine message sent after them arrives after them: once it is heard, they were too.
    const { apiKey: other } = await a.app.keygate.createKey({ name: 'marker' })
    const marker = heard(b.app, keyIdOf(other))
    await a.app.keygate.deleteKey('marker')
    await marker
    const verifications = b.counts.verify
    t.equal((await b.call(admin)).statusCode, 200)
    t.equal(b.counts.verify, verifications, 'still cached: nothing was evicted by the forgeries')
  })

  await t.test('a genuine invalidation more than 5 minutes old is ignored too', async (t) => {
    const { createSeal } = await import('../../lib/cache/sealed-entry.js')
    await redis.publish('keygate:key:invalidate', createSeal(Buffer.from(TEST_SECRET)).message(keyIdOf(admin), Date.now() - 301_000, 'deleted'))
    const { apiKey: other } = await a.app.keygate.createKey({ name: 'marker-2' })
    const marker = heard(b.app, keyIdOf(other))
    await a.app.keygate.deleteKey('marker-2')
    await marker
    const verifications = b.counts.verify
    const reads = b.selects()
    t.equal((await b.call(admin)).statusCode, 200)
    t.equal(b.counts.verify + b.selects(), verifications + reads, 'still cached')
  })
})

t.test('3. freshness from the shared level is capped at cacheTtl, and deletes are remembered for cacheTtl + staleIfError', async (t) => {
  const db = await database(t)
  const clock = testClock()
  const shared = new MemoryKeyCache()
  const a = await instance(t, db, { cache: shared, now: clock.now })
  const b = await instance(t, db, { cache: shared, now: clock.now })
  const { apiKey } = await a.app.keygate.createKey({ name: 'k' })
  t.equal((await a.call(apiKey)).statusCode, 200)
  const entry = (await shared.get(keyIdOf(apiKey)))!
  await shared.set(keyIdOf(apiKey), { ...entry, freshUntil: clock.now() + 3_600_000 })
  t.equal((await b.call(apiKey)).statusCode, 200)
  const reads = b.selects()
  clock.advance(5_000)
  t.equal((await b.call(apiKey)).statusCode, 200)
  t.equal(b.selects(), reads + 1, 'an hour of freshness written by someone else counts as 5 s here')

  await a.app.keygate.deleteKey('k')
  await shared.set(keyIdOf(apiKey), { ...entry, freshUntil: clock.now() + 3_600_000 })
  const afterDelete = b.selects()
  t.same((await b.call(apiKey)).json(), UNAUTHORIZED, 'B heard the delete: the entry written back is refused')
  clock.advance(5_000 + 30_000 - 1)
  t.same((await b.call(apiKey)).json(), UNAUTHORIZED, 'for cacheTtl + staleIfError')
  t.equal(b.selects(), afterDelete, 'without a database read')
})

t.test('3. entries of any shared level are checked: another key id\'s entry is a miss, and what is used is frozen', async (t) => {
  const db = await database(t)
  const shared = new MemoryKeyCache()
  const a = await instance(t, db, { cache: shared })
  const b = await instance(t, db, {
    cache: shared,
    hostRoutes: (app) => { app.get('/frozen', async (request) => ({ frozen: Object.isFrozen(request.apiKey) && Object.isFrozen(request.apiKey?.scopes) })) }
  })
  const { apiKey: narrow } = await a.app.keygate.createKey({ name: 'narrow', scopes: ['query'] })
  const { apiKey: wide } = await a.app.keygate.createKey({ name: 'wide' })
  for (const key of [narrow, wide]) t.equal((await a.call(key)).statusCode, 200)
  // A host's own shared cache that hands back plain objects (a JSON round trip: nothing frozen)...
  const plain = async (key: string) => JSON.parse(JSON.stringify(await shared.get(keyIdOf(key)))) as CachedKey
  await shared.set(keyIdOf(wide), await plain(wide))
  t.equal((await b.call(wide, 'GET', '/frozen')).json().frozen, true, 'an entry from the shared level is frozen before use')
  // ...and narrow's entry, its fingerprint intact, carrying wide's record (another key id, scopes *).
  await shared.set(keyIdOf(narrow), { ...await plain(narrow), key: (await plain(wide)).key })
  t.same((await b.call(narrow)).json(), { scopes: ['query'] }, 'a record of another key id is a miss: narrow is verified from the database')
  t.equal(b.counts.verify, 1)
})

t.test('3. a delete pushed out of memory by newer ones leaves the shared level distrusted until its time is up', async (t) => {
  const db = await database(t)
  const shared = new MemoryKeyCache()
  const a = await instance(t, db, { cache: shared })
  const b = await instance(t, db, { cache: shared, cacheSize: 2 })
  const keys = []
  for (const name of ['k0', 'k1', 'k2']) keys.push((await a.app.keygate.createKey({ name })).apiKey)
  t.equal((await b.call(keys[0])).statusCode, 200)
  const before = (await shared.get(keyIdOf(keys[0]!)))!
  for (const name of ['k0', 'k1', 'k2']) await a.app.keygate.deleteKey(name)
  // B remembers two deletes; k0's was pushed out. Its entry comes back into the shared level.
  await shared.set(keyIdOf(keys[0]!), before)
  t.same((await b.call(keys[0])).json(), UNAUTHORIZED, 're-read from the database before use, and refused')
})

t.test('4. management never exceeds its caller: delete, plans and limits', async (t) => {
  const db = await database(t)
  const a = await instance(t, db)
  const { apiKey: bootstrap } = await a.app.keygate.createKey({ name: 'bootstrap' })
  const { apiKey: manager } = await a.app.keygate.createKey({ name: 'manager', scopes: ['keys:read', 'keys:write', 'query'] })

  const refused = await a.call(manager, 'DELETE', '/api/v1/keys/bootstrap/delete')
  t.equal(refused.statusCode, 403)
  t.same(refused.json(), denied('*'), 'a key without * cannot delete one with it')
  t.equal(refused.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="*"')
  t.equal((await a.call(bootstrap)).statusCode, 200, 'and the bootstrap key still works')

  await a.app.keygate.createKey({ name: 'query-key', scopes: ['query'] })
  t.equal((await a.call(manager, 'DELETE', '/api/v1/keys/query-key/delete')).statusCode, 200, 'one it covers it may delete')

  const pro = await a.call(manager, 'POST', '/api/v1/keys/create', { name: 'pro', scopes: ['query'], plan: 'pro' })
  t.equal(pro.statusCode, 403)
  t.same(pro.json(), { error: 'limit_exceeds_caller', message: 'API key cannot grant a rate limit above its own: 300 per minute (its own: 60)' })
  const custom = await a.call(manager, 'POST', '/api/v1/keys/create', { name: 'custom', scopes: ['query'], plan: 'enterprise', rateLimit: { perMinute: 10 } })
  t.same(custom.json(), { error: 'limit_exceeds_caller', message: 'API key cannot grant a rate limit above its own: unlimited per hour (its own: 1000)' })
  const hourly = await a.call(manager, 'POST', '/api/v1/keys/create', { name: 'hourly', scopes: ['query'], rateLimit: { perHour: 5000 } })
  t.same(hourly.json(), { error: 'limit_exceeds_caller', message: 'API key cannot grant a rate limit above its own: 5000 per hour (its own: 1000)' })
  const within = await a.call(manager, 'POST', '/api/v1/keys/create', { name: 'within', scopes: ['query'], rateLimit: { perMinute: 30 } })
  t.equal(within.statusCode, 200, 'at or below its own limits it may')
  t.same(within.json().limits, { perMinute: 30, perHour: 1000 })
  t.equal((await a.call(bootstrap, 'POST', '/api/v1/keys/create', { name: 'big', plan: 'pro' })).statusCode, 200, 'a * key may grant any plan')
})

t.test('5. request.apiKey is deeply frozen: a handler cannot widen the next request', async (t) => {
  const db = await database(t)
  const a = await instance(t, db, {
    hostRoutes: (app) => { app.get('/widen', async (request) => {
      const key = request.apiKey as unknown as { scopes: string[], limits: { perMinute: number } }
      const attempts = [
        () => { key.scopes = ['*'] },
        () => { key.scopes.push('*') },
        () => { key.limits.perMinute = 1_000_000 }
      ]
      return attempts.map((attempt) => { try { attempt(); return 'changed' } catch { return 'refused' } })
    }) }
  })
  const { apiKey } = await a.app.keygate.createKey({ name: 'narrow', scopes: ['query'] })
  t.same((await a.call(apiKey, 'GET', '/widen')).json(), ['refused', 'refused', 'refused'])
  const next = await a.call(apiKey, 'POST', '/v1/connectors')
  t.equal(next.statusCode, 403)
  t.equal(next.headers['x-ratelimit-limit'], '60')
})

t.test('6. every answer under the route prefix is the envelope; no raw error reaches a client', async (t) => {
  const db = await database(t)
  const logs = captureLogs()
  let failLists = false
  const failing = db.db.withPlugin({
    transformQuery: (args) => {
      if (failLists && args.node.kind === 'SelectQueryNode') throw new Error('relation "secret_internal_table" does not exist')
      return args.node
    },
    transformResult: async (args) => args.result
  })
  const { hasher } = countingHasher()
  const app = Fastify({ logger: logs.logger })
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: failing, schema: db.schema, hasher, secret: TEST_SECRET })
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'admin' })
  const call = async (method: 'GET' | 'DELETE', url: string) => await app.inject({ method, url, headers: { authorization: apiKey } })

  const nul = await call('DELETE', '/api/v1/keys/a%00b/delete')
  t.equal(nul.statusCode, 404)
  t.same(nul.json(), { error: 'key_not_found', message: 'Did not find any matching keys for a\ufffdb' })
  const long = await call('DELETE', `/api/v1/keys/${'x'.repeat(200)}/delete`)
  t.same(long.json(), { error: 'key_not_found', message: `Did not find any matching keys for ${'x'.repeat(128)}…` })

  const unknown = await call('GET', '/api/v1/keys/nope?x=1')
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { error: 'not_found', message: 'Route GET /api/v1/keys/nope not found.' })
  t.equal((await app.inject({ url: '/api/v1/keys/nope' })).statusCode, 401, 'without a key: 401 first, as everywhere')

  failLists = true
  const broken = await call('GET', '/api/v1/keys/list')
  t.equal(broken.statusCode, 500)
  t.same(broken.json(), { error: 'internal_error', message: 'Internal error.' })
  t.match(logs.text(), /secret_internal_table/, 'the detail is in the log')
  t.equal(broken.body.includes('secret_internal_table'), false, 'and only there')
})

t.test('6. a name create would refuse costs delete no database call', async (t) => {
  const a = await instance(t, await database(t))
  const { apiKey } = await a.app.keygate.createKey({ name: 'admin' })
  t.equal((await a.call(apiKey)).statusCode, 200)
  const reads = a.selects()
  for (const name of ['a%00b', 'tab%09name', `${'y'.repeat(129)}`]) {
    t.equal((await a.call(apiKey, 'DELETE', `/api/v1/keys/${name}/delete`)).statusCode, 404, name)
  }
  t.equal(a.selects(), reads, 'no query for any of them')
})

t.test('7. config.apiKey on a route registered before the plugin is checked at startup', async (t) => {
  const db = await database(t)
  const app = Fastify()
  t.teardown(async () => await app.close())
  app.post('/typo', { config: { apiKey: { scope: ['connector:write'] } } as never }, async () => ({ ok: true }))
  void app.register(keygate, { db: db.db, schema: db.schema, argon2: FAST_ARGON2 })
  await t.rejects(async () => await app.ready(), {
    code: 'FST_KEYGATE_INVALID_ROUTE_CONFIG',
    message: 'Invalid config.apiKey on route POST /typo: unknown property "scope"'
  })
})

t.test('7. an app created before the plugin was loaded: such a route is checked at its first request, failing closed', async (t) => {
  // Only a process that creates its app before it loads the plugin can show this, so it runs in
  // a process of its own (this file loaded the plugin long ago).
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../helpers/late-app.ts', import.meta.url))], { env: process.env })
  const [typo, again, scoped] = JSON.parse(stdout) as Array<[number, unknown]>
  t.same(typo, [500, { error: 'internal_error', message: 'Internal error.' }], 'never 200')
  t.same(again, typo)
  t.same(scoped, [403, denied('connector:write')], 'a good setting registered early is enforced')
  const lines = stderr.split('\n').filter((line) => line.includes('FST_KEYGATE_INVALID_ROUTE_CONFIG'))
  t.equal(lines.length, 1, 'logged once')
  t.match(lines[0], /POST \/typo: unknown property \\"scope\\"/)
})

t.test('8. create checks name and limit before argon2', async (t) => {
  const a = await instance(t, await database(t), { maxKeys: 2 })
  const { apiKey } = await a.app.keygate.createKey({ name: 'admin' })
  t.equal(a.counts.hash, 1)
  const taken = await a.call(apiKey, 'POST', '/api/v1/keys/create', { name: 'admin' })
  t.same(taken.json(), { error: 'key_name_taken', message: 'Can not create key with name admin' })
  t.equal((await a.call(apiKey, 'POST', '/api/v1/keys/create', { name: 'second' })).statusCode, 200)
  const full = await a.call(apiKey, 'POST', '/api/v1/keys/create', { name: 'third' })
  t.same(full.json(), { error: 'key_limit_reached', message: 'Maximum API Key Limit Reached: 2. Consider deleting any that are not in use.' })
  t.equal(a.counts.hash, 2, 'the refused creates hashed nothing')
})
