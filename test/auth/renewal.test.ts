import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect } from 'kysely'
import t, { type Test } from 'tap'
import { createKeyInfoMapper } from '../../lib/api/key-info.js'
import { createEntryFor } from '../../lib/auth/cache-entry.js'
import { createFingerprinter } from '../../lib/auth/fingerprint.js'
import { KeyRenewal, type RenewalOptions } from '../../lib/auth/renewal.js'
import type { CachedKey } from '../../lib/cache/key-cache.js'
import { MemoryKeyCache } from '../../lib/cache/memory.cache.js'
import type { KeygateDatabase } from '../../lib/db/schema.js'
import { findLiveKeysByIds } from '../../lib/repositories/api-key.repository.js'
import { buildAppWithDatabase, countingSelects, testClock } from '../helpers/app.js'
import { captureLogs } from '../helpers/log-capture.js'

const TTL = 5_000
const fingerprint = createFingerprinter(Buffer.alloc(32, 3))
const entryFor = createEntryFor({ toKeyInfo: createKeyInfoMapper(() => ({})), fingerprint, cacheTtl: TTL })
const keyIdOf = (key: string) => key.slice(key.indexOf('_') + 1, key.indexOf('_') + 9)

/**
 * Keys in a real database, their entries in a real in-process cache as the request path leaves
 * them, and a renewal over both. `readTakes` moves the clock forward while each read runs.
 */
async function setup (t: Test, names: string[], options: Partial<RenewalOptions> & { readTakes?: number } = {}) {
  const logs = captureLogs()
  const { app, database } = await buildAppWithDatabase(t, { fastify: { logger: logs.logger } })
  const clock = testClock()
  const ids = new Map<string, string>()
  for (const name of names) ids.set(name, keyIdOf((await app.keygate.createKey({ name })).apiKey))
  const { db: counted, selects } = countingSelects(database.db.withSchema(database.schema))
  const db = counted.withPlugin({
    transformQuery: (args) => { clock.advance(options.readTakes ?? 0); return args.node },
    transformResult: async (args) => args.result
  })
  const cache = new MemoryKeyCache()
  for (const row of await findLiveKeysByIds(db, [...ids.values()])) await cache.set(row.id, entryFor(row, `text of ${row.name}`, clock.now()))
  const renewal = new KeyRenewal({ db, cache, fingerprint, entryFor, now: clock.now, cacheTtl: TTL, log: app.log, ...options })
  const entry = (name: string) => cache.get(ids.get(name) as string) as CachedKey | undefined
  return { app, database, clock, cache, renewal, selects, logs, id: (name: string) => ids.get(name) as string, entry }
}

t.test('a hit in the first half of the freshness queues nothing', async (t) => {
  const { clock, renewal, entry, id, selects } = await setup(t, ['a'])
  const reads = selects()
  clock.advance(TTL / 2 - 1)
  t.equal(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()), undefined)
  clock.advance(100)
  const stillFresh = { ...entry('a')!, freshUntil: clock.now() + TTL }
  t.equal(renewal.noteFreshHit(id('a'), stillFresh, clock.now()), undefined, 'a hit 100 ms later finds nothing queued to read')
  t.equal(selects(), reads)
})

t.test('queued keys are read together at the first hit 100 ms later, even one in its first half', async (t) => {
  const { clock, renewal, entry, id, selects, cache } = await setup(t, ['a', 'b', 'fresh'])
  const reads = selects()
  clock.advance(TTL / 2)
  t.equal(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()), undefined, 'queued')
  t.equal(renewal.noteFreshHit(id('b'), entry('b')!, clock.now()), undefined, 'queued')
  clock.advance(99)
  t.equal(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()), undefined, 'not yet 100 ms')
  await cache.set(id('fresh'), { ...entry('fresh')!, freshUntil: clock.now() + TTL })
  clock.advance(1)
  const read = renewal.noteFreshHit(id('fresh'), entry('fresh')!, clock.now())
  t.ok(read instanceof Promise, 'a hit on a key in its first half starts the read that is due')
  await read
  t.equal(selects(), reads + 1, 'one read for both')
  for (const name of ['a', 'b']) t.equal(entry(name)!.freshUntil, clock.now() + TTL, `${name}: fresh for another 5 s`)
})

t.test('a full queue is read at once', async (t) => {
  const { clock, renewal, entry, id } = await setup(t, ['a', 'b'], { maxBatch: 2 })
  clock.advance(TTL / 2)
  t.equal(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()), undefined)
  const read = renewal.noteFreshHit(id('b'), entry('b')!, clock.now())
  t.ok(read instanceof Promise)
  await read
  t.equal(entry('a')!.freshUntil, clock.now() + TTL)
})

t.test('the new freshness counts from before the read, not from its answer', async (t) => {
  const { clock, renewal, entry, id } = await setup(t, ['a'], { maxBatch: 1, readTakes: 1_000 })
  clock.advance(TTL / 2)
  const before = clock.now()
  await renewal.noteFreshHit(id('a'), entry('a')!, before)
  t.equal(clock.now(), before + 1_000, 'the read took a second')
  t.equal(entry('a')!.freshUntil, before + TTL)
})

t.test('a renewal leaves alone a key deleted, re-issued, evicted or replaced before its read', async (t) => {
  const names = ['deleted', 'reissued', 'evicted', 'replaced', 'kept']
  const { clock, renewal, entry, id, database, cache } = await setup(t, names, { maxBatch: names.length })
  const table = () => database.db.withSchema(database.schema).updateTable('keygate_api_keys')
  clock.advance(TTL / 2)
  const queued = new Map(names.map((name) => [name, entry(name)!]))
  await table().set({ deleted_at: new Date() }).where('name', '=', 'deleted').execute()
  await table().set({ hash: 'another-hash' }).where('name', '=', 'reissued').execute()
  await cache.delete(id('evicted'))
  const replacement = { ...entry('replaced')!, freshUntil: clock.now() + 1 }
  let read: Promise<void> | undefined
  for (const name of names) read = renewal.noteFreshHit(id(name), queued.get(name)!, clock.now())
  // Only now, with the batch taken, does the cache change under it.
  await cache.set(id('replaced'), replacement)
  await read

  t.equal(entry('deleted'), queued.get('deleted'), 'deleted: not renewed; its freshness ends as before')
  t.equal(entry('reissued'), queued.get('reissued'), 're-issued: not renewed')
  t.equal(entry('evicted'), undefined, 'evicted: not brought back')
  t.equal(entry('replaced'), replacement, 'replaced: the newer entry stands')
  t.equal(entry('kept')!.freshUntil, clock.now() + TTL, 'the unchanged key is renewed')
})

t.test('the latest entry of a queued key is the one renewed', async (t) => {
  const { clock, renewal, entry, id, cache } = await setup(t, ['a'])
  clock.advance(TTL / 2)
  renewal.noteFreshHit(id('a'), entry('a')!, clock.now())
  const newer = { ...entry('a')!, freshUntil: clock.now() + 10 }
  await cache.set(id('a'), newer)
  renewal.noteFreshHit(id('a'), newer, clock.now())
  clock.advance(100)
  await renewal.noteFreshHit(id('a'), newer, clock.now())
  t.equal(entry('a')!.freshUntil, clock.now() + TTL)
})

t.test('a clock that steps back restarts the wait instead of stalling it', async (t) => {
  const { clock, renewal, entry, id } = await setup(t, ['a'])
  clock.advance(TTL / 2)
  renewal.noteFreshHit(id('a'), entry('a')!, clock.now())
  clock.advance(-1_000)
  t.equal(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()), undefined)
  clock.advance(100)
  t.ok(renewal.noteFreshHit(id('a'), entry('a')!, clock.now()) instanceof Promise, '100 ms after the step back')
})

/** A real database that is already closed: every read fails. */
async function closedDatabase (): Promise<Kysely<KeygateDatabase>> {
  const pglite = new PGlite()
  await pglite.close()
  return new Kysely<KeygateDatabase>({ dialect: new PGliteDialect({ pglite }) })
}

t.test('a failed read renews nothing, throws nothing and warns once a minute', async (t) => {
  const { clock, cache, entry, id, logs, app } = await setup(t, ['a', 'b'])
  const renewal = new KeyRenewal({ db: await closedDatabase(), cache, fingerprint, entryFor, now: clock.now, cacheTtl: TTL, log: app.log, maxBatch: 1 })
  clock.advance(TTL / 2)
  const stale = entry('a')!
  await renewal.noteFreshHit(id('a'), stale, clock.now())
  await renewal.noteFreshHit(id('b'), entry('b')!, clock.now())
  await renewal.idle()
  t.equal(entry('a'), stale)
  t.equal(logs.text().match(/renewing cached keys failed/g)?.length, 1, 'one warning for two failures within a minute')
  t.ok(renewal.noteFreshHit(id('a'), stale, clock.now()) instanceof Promise, 'and the key can be queued again')
})

t.test('a cache that fails its writes fails no request and stops nothing', async (t) => {
  const { clock, entry, id, logs, app, database } = await setup(t, ['a'])
  const failing = new MemoryKeyCache()
  await failing.set(id('a'), entry('a')!)
  failing.set = async () => { throw new Error('cache write failed') }
  const renewal = new KeyRenewal({ db: database.db.withSchema(database.schema), cache: failing, fingerprint, entryFor, now: clock.now, cacheTtl: TTL, log: app.log, maxBatch: 1 })
  clock.advance(TTL / 2)
  await renewal.noteFreshHit(id('a'), failing.get(id('a')) as CachedKey, clock.now())
  await renewal.idle()
  t.match(logs.text(), /cache write failed/)
})
