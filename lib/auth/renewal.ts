import type { Kysely } from 'kysely'
import type { CachedKey, KeyCache } from '../cache/key-cache.js'
import type { ApiKeyRow, KeygateDatabase } from '../db/schema.js'
import { findLiveKeysByIds } from '../repositories/api-key.repository.js'
import type { EntryFor } from './authenticator.js'
import type { Fingerprint } from './fingerprint.js'

export interface RenewalOptions {
  db: Kysely<KeygateDatabase>
  cache: KeyCache
  fingerprint: Fingerprint
  now: () => number
  /** How long a record is fresh, in ms; renewal starts at half of it. */
  cacheTtl: number
  entryFor: EntryFor
  /** How long a renewal waits for others to read with it, in ms. Default 100. */
  delayMs?: number
  /** Most keys read at once. Default 500. */
  maxBatch?: number
}

/**
 * Renews cached keys ahead of their freshness, many in one database read. A key used in the
 * second half of its freshness is queued; the queue is read (`where id in (...)`) once it has
 * waited `delayMs` by the clock, when a later request finds it so, or once it is full. So keys in
 * steady use are re-read in batches and their requests never wait for the database, where each
 * would otherwise make its own read when its freshness ended.
 *
 * Renewal never makes a key more trusted than a read would: an entry that was evicted or replaced
 * while the read ran is left as it is, and one whose key is gone or whose hash changed is not
 * renewed, so the request path decides about it as before.
 */
export class KeyRenewal {
  readonly #options: Required<RenewalOptions>
  /** Queued key ids, with the entry each was queued for. */
  #queued = new Map<string, CachedKey>()
  #queuedSince = 0
  /** Key ids being read now: not queued again meanwhile. */
  readonly #reading = new Set<string>()
  readonly #running = new Set<Promise<void>>()

  constructor (options: RenewalOptions) {
    this.#options = { delayMs: 100, maxBatch: 500, ...options }
  }

  /**
   * Called on each fresh cache hit. Returns the batch's read when this call started one (the
   * request does not wait for it), undefined otherwise.
   */
  note (keyId: string, entry: CachedKey, at: number): Promise<void> | undefined {
    const { cacheTtl, delayMs, maxBatch } = this.#options
    if (entry.freshUntil - at > cacheTtl / 2) return undefined
    if (!this.#queued.has(keyId) && !this.#reading.has(keyId)) {
      if (this.#queued.size === 0) this.#queuedSince = at
      this.#queued.set(keyId, entry)
    }
    if (this.#queued.size === 0) return undefined
    if (this.#queued.size >= maxBatch || at - this.#queuedSince >= delayMs) return this.flush()
    return undefined
  }

  /** Reads the queued keys now. */
  flush (): Promise<void> {
    const batch = this.#queued
    this.#queued = new Map()
    for (const keyId of batch.keys()) this.#reading.add(keyId)
    const run = this.#renew(batch).finally(() => {
      for (const keyId of batch.keys()) this.#reading.delete(keyId)
      this.#running.delete(run)
    })
    this.#running.add(run)
    return run
  }

  /** Settles once no read is running: the plugin waits for it before closing its pool. */
  async idle (): Promise<void> {
    await Promise.all(this.#running)
  }

  async #renew (batch: Map<string, CachedKey>): Promise<void> {
    const { db, cache, fingerprint, now, entryFor } = this.#options
    let rows: ApiKeyRow[]
    try {
      rows = await findLiveKeysByIds(db, [...batch.keys()])
    } catch {
      // Nothing renewed: the entries end their freshness and the request path reads them itself,
      // where a database outage is handled and reported.
      return
    }
    const at = now()
    const found = new Map(rows.map((row) => [row.id, row]))
    for (const [keyId, entry] of batch) {
      const row = found.get(keyId)
      // Gone, re-issued, or changed in the cache meanwhile: not ours to renew.
      if (row === undefined || fingerprint(row.hash) !== entry.hashDigest || cache.get(keyId) !== entry) continue
      await cache.set(keyId, entryFor(row, entry.fingerprint, at))
    }
  }
}
