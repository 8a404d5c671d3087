import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import type { CachedKey, KeyCache } from '../cache/key-cache.js'
import type { ApiKeyRow, KeygateDatabase } from '../db/schema.js'
import { findLiveKeysByIds } from '../repositories/api-key.repository.js'
import type { EntryFor } from './cache-entry.js'
import type { Fingerprint } from './fingerprint.js'

export interface RenewalOptions {
  db: Kysely<KeygateDatabase>
  cache: KeyCache
  fingerprint: Fingerprint
  entryFor: EntryFor
  now: () => number
  /** How long a record is fresh, in ms; renewal starts at half of it. */
  cacheTtl: number
  log: FastifyBaseLogger
  /** How long a renewal waits for others to read with it, in ms. Default 100. */
  delayMs?: number
  /** Most keys read at once. Default 500. */
  maxBatch?: number
}

// A renewal that keeps failing would otherwise log once per batch.
const WARNING_INTERVAL_MS = 60_000

/**
 * Renews cached keys ahead of their freshness, many in one database read. A key used in the
 * second half of its freshness is queued; the queue is read (`where id in (...)`) at the first
 * fresh cache hit after it has waited `delayMs` by the clock, or once it is full. Keys in steady
 * use are so re-read in batches before their freshness ends, where each would otherwise make its
 * own read, with its request waiting, when its freshness ended.
 *
 * A renewal never makes a key more trusted than a read would: the new freshness counts from
 * before the read, and an entry is left alone when its key is gone or its hash changed (the
 * request path then decides, as before) or when the cache no longer holds the entry that was
 * queued (evicted or replaced meanwhile). Nothing it does can fail a request.
 */
export class KeyRenewal {
  readonly #options: Required<RenewalOptions>
  /** Queued key ids, each with the latest entry seen for it. */
  #queued = new Map<string, CachedKey>()
  #queuedSince = 0
  /** Key ids being read now: not queued again meanwhile. */
  readonly #reading = new Set<string>()
  readonly #running = new Set<Promise<void>>()
  #lastWarning = Number.NEGATIVE_INFINITY

  constructor (options: RenewalOptions) {
    this.#options = { delayMs: 100, maxBatch: 500, ...options }
  }

  /**
   * Called on every fresh cache hit. Returns the batch's read when this call started one (the
   * request does not wait for it), undefined otherwise.
   */
  noteFreshHit (keyId: string, entry: CachedKey, at: number): Promise<void> | undefined {
    const { cacheTtl, delayMs, maxBatch } = this.#options
    if (entry.freshUntil - at <= cacheTtl / 2 && !this.#reading.has(keyId)) {
      if (this.#queued.size === 0) this.#queuedSince = at
      // The latest entry: the one the read must still find in the cache.
      this.#queued.set(keyId, entry)
    }
    if (this.#queued.size === 0) return undefined
    // A clock that stepped back restarts the wait rather than stalling it.
    if (at < this.#queuedSince) this.#queuedSince = at
    if (this.#queued.size >= maxBatch || at - this.#queuedSince >= delayMs) return this.#flush()
    return undefined
  }

  /** Reads the queued keys now. The promise never rejects. */
  #flush (): Promise<void> {
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
    const { db, cache, fingerprint, entryFor, now } = this.#options
    // Freshness counts from before the read, as on the request path.
    const at = now()
    try {
      const rows = await findLiveKeysByIds(db, [...batch.keys()])
      const found = new Map<string, ApiKeyRow>(rows.map((row) => [row.id, row]))
      const writes: Array<Promise<void>> = []
      // Checked and written in one synchronous pass: nothing can change the cache in between.
      for (const [keyId, entry] of batch) {
        const row = found.get(keyId)
        if (row === undefined || fingerprint(row.hash) !== entry.hashDigest || cache.get(keyId) !== entry) continue
        writes.push(cache.set(keyId, entryFor(row, entry.fingerprint, at)))
      }
      // The shared level's writes run side by side: a slow Redis costs one timeout, not one per key.
      await Promise.all(writes)
    } catch (error) {
      // Nothing more is renewed: the entries end their freshness and the request path reads
      // them, where an outage is handled and answered.
      this.#warn(error, at)
    }
  }

  #warn (error: unknown, at: number): void {
    if (at - this.#lastWarning < WARNING_INTERVAL_MS) return
    this.#lastWarning = at
    this.#options.log.warn({ err: error }, 'keygate: renewing cached keys failed; they will be re-read when their freshness ends')
  }
}
