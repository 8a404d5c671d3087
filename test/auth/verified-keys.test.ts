import t, { type Test } from 'tap'
import { createFingerprinter } from '../../lib/auth/fingerprint.js'
import { KeyReader } from '../../lib/auth/key-reader.js'
import { VerifiedKeys, type VerifiedKeysOptions } from '../../lib/auth/verified-keys.js'
import { MemoryKeyCache } from '../../lib/cache/memory.cache.js'
import type { CachedKey } from '../../lib/records/cached-key.js'
import { createKeyRecordMapper } from '../../lib/records/key-info.js'
import { buildAppWithDatabase, countingHasher, countingSelects, testClock } from '../helpers/app.js'
import { keyIdOf } from '../helpers/keys.js'
import { captureLogs } from '../helpers/log-capture.js'

const TTL = 5_000

/** The name of the key an answer verified, or the reason it gives instead. */
const nameOf = (answer: CachedKey | string): string => typeof answer === 'string' ? answer : answer.key.name

/**
 * Keys in a real database and the verified keys of one process over it, each key verified once
 * at the start. `readTakes` moves the clock forward while each read runs.
 */
async function setup (t: Test, names: string[], options: Partial<VerifiedKeysOptions> & { readTakes?: number, verifyFirst?: string[] } = {}) {
  const logs = captureLogs()
  const { app, database } = await buildAppWithDatabase(t, { fastify: { logger: logs.logger } })
  const clock = testClock()
  const texts = new Map<string, string>()
  for (const name of names) texts.set(name, (await app.keygate.createKey({ name })).apiKey)
  const { db: counted, selects } = countingSelects(database.db.withSchema(database.schema))
  const db = counted.withPlugin({
    transformQuery: (args) => { clock.advance(options.readTakes ?? 0); return args.node },
    transformResult: async (args) => args.result
  })
  const { hasher, counts } = countingHasher()
  // Reads fail while the test says so, as with a database that went away.
  const reads = { fail: false }
  const reader = new KeyReader(db)
  const keys = new VerifiedKeys({
    reader: { read: async (keyId) => { if (reads.fail) throw Object.assign(new Error('database gone'), { code: 'ECONNREFUSED' }); return await reader.read(keyId) } },
    hasher,
    prefixes: ['metlo', 'mlo'],
    fingerprint: createFingerprinter(Buffer.alloc(32, 3)),
    toKeyRecord: createKeyRecordMapper(() => ({ perMinute: 60 })),
    shared: undefined,
    cacheSize: 100,
    cacheTtl: TTL,
    staleIfError: 30_000,
    now: clock.now,
    log: app.log,
    ...options
  })
  const text = (name: string) => texts.get(name) as string
  const id = (name: string) => keyIdOf(text(name))
  const entry = (name: string) => keys.peek(id(name))
  // The first use of each, before the test begins: verified, cached, fresh for 5 s from now.
  for (const name of options.verifyFirst ?? names) t.equal(nameOf(await keys.authenticate(text(name))), name)
  const hit = (name: string) => keys.authenticate(text(name))
  return { app, database, clock, keys, selects, logs, counts, reads, text, id, entry, hit }
}

t.test('a hit in the first half of the freshness queues nothing', async (t) => {
  const { clock, keys, hit, selects } = await setup(t, ['a'])
  const reads = selects()
  clock.advance(TTL / 2 - 1)
  t.equal((hit('a') as { key: { name: string } }).key.name, 'a', 'answered at once, from this process')
  clock.advance(100)
  hit('a')
  await keys.idle()
  t.equal(selects(), reads, 'a hit 100 ms later finds nothing queued to read')
})

t.test('queued keys are read together at the first fresh hit 100 ms later, and served from the cache meanwhile', async (t) => {
  const { clock, keys, hit, entry, selects } = await setup(t, ['a', 'b', 'c'])
  const reads = selects()
  clock.advance(TTL / 2)
  hit('a')
  hit('b')
  clock.advance(99)
  hit('a')
  await keys.idle()
  t.equal(selects(), reads, 'not yet 100 ms: nothing read')
  clock.advance(1)
  const at = clock.now()
  hit('c')
  await keys.idle()
  t.equal(selects(), reads + 1, 'one read for all three (c was in its second half too)')
  for (const name of ['a', 'b', 'c']) t.equal(entry(name)?.freshUntil, at + TTL, `${name}: fresh for another 5 s`)
})

t.test('a full queue is read at once', async (t) => {
  const { clock, keys, hit, entry } = await setup(t, ['a', 'b'], { renewal: { maxBatch: 2 } })
  clock.advance(TTL / 2)
  hit('a')
  hit('b')
  await keys.idle()
  t.equal(entry('a')?.freshUntil, clock.now() + TTL)
})

t.test('the new freshness counts from before the read, not from its answer', async (t) => {
  const { clock, keys, hit, entry } = await setup(t, ['a'], { renewal: { maxBatch: 1 }, readTakes: 1_000 })
  clock.advance(TTL / 2)
  const before = clock.now()
  hit('a')
  await keys.idle()
  t.equal(clock.now(), before + 1_000, 'the read took a second')
  t.equal(entry('a')?.freshUntil, before + TTL)
})

t.test('a renewal leaves alone a key deleted, re-issued or evicted before its read', async (t) => {
  const names = ['deleted', 'reissued', 'evicted', 'kept']
  const { clock, keys, hit, entry, id, database, text } = await setup(t, names, { renewal: { maxBatch: names.length } })
  const table = () => database.db.withSchema(database.schema).updateTable('keygate_api_keys')
  clock.advance(TTL / 2)
  const before = new Map(names.map((name) => [name, entry(name)]))
  await table().set({ deleted_at: new Date() }).where('name', '=', 'deleted').execute()
  await table().set({ hash: 'another-hash' }).where('name', '=', 'reissued').execute()
  for (const name of names.slice(0, -1)) hit(name)
  // Evicted (as by a delete here) after it was queued and while its read runs.
  const evicting = keys.deleted(id('evicted'))
  hit('kept')
  await evicting
  await keys.idle()

  t.equal(entry('deleted'), before.get('deleted'), 'deleted: not renewed; its freshness ends as before')
  t.equal(entry('reissued'), before.get('reissued'), 're-issued: not renewed')
  t.equal(entry('evicted'), undefined, 'evicted: not brought back')
  t.equal(await keys.authenticate(text('evicted')), 'deleted', 'and refused from now on, as deleted')
  t.equal(entry('kept')?.freshUntil, clock.now() + TTL, 'the unchanged key is renewed')
})

t.test('a first verification in flight across the delete of another key still stores what it read', async (t) => {
  const { hasher } = countingHasher()
  let letVerifyFinish = (): void => {}
  let verifyStarted = (): void => {}
  const started = new Promise<void>((resolve) => { verifyStarted = resolve })
  const gated = {
    hash: hasher.hash,
    verify: async (hash: string, text: string) => {
      verifyStarted()
      await new Promise<void>((resolve) => { letVerifyFinish = resolve })
      return await hasher.verify(hash, text)
    }
  }
  const { keys, text, id, entry } = await setup(t, ['new', 'unrelated'], { hasher: gated, verifyFirst: [] })
  const verifying = keys.authenticate(text('new'))
  await started
  await keys.deleted(id('unrelated'))
  letVerifyFinish()
  t.equal(nameOf(await verifying), 'new')
  t.ok(entry('new') !== undefined, 'kept: an eviction of another key does not concern it')
})

t.test('a failed renewal renews nothing, fails no request, and warns once a minute', async (t) => {
  const { clock, keys, hit, entry, reads, logs } = await setup(t, ['a', 'b'], { renewal: { maxBatch: 1 } })
  clock.advance(TTL / 2)
  const before = entry('a')
  reads.fail = true
  t.equal((hit('a') as { key: { name: string } }).key.name, 'a', 'the request is answered from the cache')
  t.equal((hit('b') as { key: { name: string } }).key.name, 'b')
  await keys.idle()
  t.equal(entry('a'), before, 'nothing renewed')
  t.equal(logs.text().match(/renewing cached keys failed/g)?.length, 1, 'one warning for two failures within a minute')
  t.match(logs.text(), /database gone/, 'saying why')
  reads.fail = false
  hit('a')
  await keys.idle()
  t.equal(entry('a')?.freshUntil, clock.now() + TTL, 'the key can be queued again, and renewed once reads work')
})

t.test('the shared level: what a renewal or a verification stores reaches it; a failing one fails nothing', async (t) => {
  const shared = new MemoryKeyCache()
  const { clock, keys, hit, id, logs } = await setup(t, ['a'], { shared, renewal: { maxBatch: 1 } })
  t.equal((await shared.get(id('a')))?.freshUntil, clock.now() + TTL, 'the first verification was shared')
  clock.advance(TTL / 2)
  hit('a')
  await keys.idle()
  t.equal((await shared.get(id('a')))?.freshUntil, clock.now() + TTL, 'and so was its renewal')

  // A KeyCache must never throw; one that does still fails no request.
  shared.set = async () => { throw new Error('shared write failed') }
  clock.advance(TTL / 2)
  t.equal((hit('a') as { key: { name: string } }).key.name, 'a')
  await keys.idle()
  t.match(logs.text(), /shared write failed/)
})

t.test('a changed key: the shared level\'s earlier entry is re-read before use, and never served stale', async (t) => {
  const shared = new MemoryKeyCache()
  const { clock, keys, hit, id, reads, selects } = await setup(t, ['a', 'b'], { shared })
  const before = (await shared.get(id('a')))!
  const heardHere: Array<[string | null, string]> = []
  shared.onInvalidate((keyId, reason) => heardHere.push([keyId, reason]))
  await keys.changed(id('a'))
  t.same(heardHere, [[id('a'), 'changed']], 'told to every instance as a change')
  // An instance whose read began before the change writes the old entry back.
  await shared.set(id('a'), before)
  const read = selects()
  t.equal(nameOf(await hit('a')), 'a')
  t.equal(selects(), read + 1, 'the entry written back was re-read from the database, not trusted')

  await keys.changed(id('a'))
  await shared.set(id('a'), before)
  clock.advance(TTL)
  reads.fail = true
  await t.rejects(Promise.resolve(hit('a')), { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE' }, 'database down: what the change may have taken away is not served stale')
  t.equal(nameOf(await hit('b')), 'b', 'an unchanged key still is, from this process')
})

t.test('a deleted key is told as a delete, and refused without a read', async (t) => {
  const shared = new MemoryKeyCache()
  const { keys, hit, id, selects } = await setup(t, ['a'], { shared })
  const heardHere: Array<[string | null, string]> = []
  shared.onInvalidate((keyId, reason) => heardHere.push([keyId, reason]))
  await keys.deleted(id('a'))
  t.same(heardHere, [[id('a'), 'deleted']])
  const read = selects()
  t.equal(await hit('a'), 'deleted')
  t.equal(selects(), read)
})
