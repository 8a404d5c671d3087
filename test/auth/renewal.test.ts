import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect } from 'kysely'
import t from 'tap'
import { KeyRenewal } from '../../lib/auth/renewal.js'
import type { CachedKey } from '../../lib/cache/key-cache.js'
import { MemoryKeyCache } from '../../lib/cache/memory.cache.js'
import type { KeygateDatabase } from '../../lib/db/schema.js'

const T0 = Date.UTC(2026, 2, 3, 12, 0, 0)

function entry (freshUntil: number): CachedKey {
  return { key: { id: 'k' } as CachedKey['key'], fingerprint: 'f', hashDigest: 'h', freshUntil }
}

/** A real database that is already closed: every read fails. */
async function closedDatabase (): Promise<Kysely<KeygateDatabase>> {
  const pglite = new PGlite()
  await pglite.close()
  return new Kysely<KeygateDatabase>({ dialect: new PGliteDialect({ pglite }) })
}

t.test('a failed read renews nothing and throws nothing: the request path reads the keys itself later', async (t) => {
  const cache = new MemoryKeyCache()
  const renewal = new KeyRenewal({
    db: await closedDatabase(),
    cache,
    fingerprint: (text) => text,
    now: () => T0,
    cacheTtl: 5_000,
    entryFor: () => t.fail('nothing may be renewed') as never,
    maxBatch: 2
  })
  const stale = entry(T0 + 1_000)
  await cache.set('a', stale)
  await cache.set('b', stale)
  t.equal(renewal.note('a', stale, T0), undefined, 'queued, the batch not full')
  const read = renewal.note('b', stale, T0)
  t.ok(read instanceof Promise, 'a full batch is read at once')
  await read
  await renewal.idle()
  t.equal(cache.get('a'), stale)
  t.equal(cache.get('b'), stale)
  t.equal(renewal.note('a', stale, T0), undefined, 'and the keys can be queued again')
})
