import { DEFAULTS } from '../defaults.js'
import type { CachedKey } from '../records/cached-key.js'

export interface RenewalQueueOptions {
  /** How long a record is fresh, in ms; renewal starts at half of it. */
  cacheTtl: number
  /** How long a queued key waits for others to be read with it, in ms. Default 100. */
  delayMs?: number
  /** Most keys read at once. Default 500. */
  maxBatch?: number
}

/**
 * Which cached keys to renew, and when. A key used in the second half of its freshness is
 * queued; the queue is due at the first fresh hit after it has waited `delayMs` by the clock, or
 * once it is full. Keys in steady use are so re-read in batches before their freshness ends,
 * where each would otherwise make its own read, with its request waiting, when it ended.
 * It only decides; reading and storing are the verified keys' (verified-keys.ts).
 */
export class RenewalQueue {
  readonly #cacheTtl: number
  readonly #delayMs: number
  readonly #maxBatch: number
  /** Queued key ids, each with the latest entry seen for it. */
  #queued = new Map<string, CachedKey>()
  #queuedSince = 0
  /** Key ids being read now: not queued again meanwhile. */
  readonly #reading = new Set<string>()

  constructor ({ cacheTtl, delayMs = DEFAULTS.renewalDelayMs, maxBatch = DEFAULTS.renewalBatch }: RenewalQueueOptions) {
    this.#cacheTtl = cacheTtl
    this.#delayMs = delayMs
    this.#maxBatch = maxBatch
  }

  /** Called on every fresh cache hit; returns the batch to read when this hit makes one due. */
  noteFreshHit (keyId: string, entry: CachedKey, at: number): Map<string, CachedKey> | undefined {
    if (entry.freshUntil - at <= this.#cacheTtl / 2 && !this.#reading.has(keyId)) {
      if (this.#queued.size === 0) this.#queuedSince = at
      this.#queued.set(keyId, entry)
    }
    if (this.#queued.size === 0) return undefined
    // A clock that stepped back restarts the wait rather than stalling it.
    if (at < this.#queuedSince) this.#queuedSince = at
    if (this.#queued.size < this.#maxBatch && at - this.#queuedSince < this.#delayMs) return undefined
    const batch = this.#queued
    this.#queued = new Map()
    for (const queuedId of batch.keys()) this.#reading.add(queuedId)
    return batch
  }

  /** The batch's read is over, however it went: its keys may be queued again. */
  done (batch: Map<string, CachedKey>): void {
    for (const keyId of batch.keys()) this.#reading.delete(keyId)
  }
}
