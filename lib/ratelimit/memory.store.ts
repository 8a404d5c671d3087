import type { ConsumeRequest, ConsumeResult, RateLimitStore } from './store.js'

interface Bucket {
  start: number
  counts: Map<string, number>
}

/**
 * Counters in this process. Windows are aligned to the clock, so every key's counter for one
 * window lives in one bucket that is dropped whole when the window ends: memory holds only the
 * keys seen in the current minute and hour.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  // The live bucket of each window name; an older one is dropped when a newer one starts.
  readonly #buckets = new Map<string, Bucket>()

  consume ({ keyId, windows }: ConsumeRequest): ConsumeResult {
    // At its final length: this runs on every request, and a grown array costs more.
    const counts = new Array<number>(windows.length)
    let allowed = true
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as ConsumeRequest['windows'][number]
      const count = this.#bucket(window.name, window.start).counts.get(keyId) ?? 0
      counts[i] = count
      if (count >= window.limit) allowed = false
    }
    if (!allowed) return { allowed, counts }
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as ConsumeRequest['windows'][number]
      const next = (counts[i] as number) + 1
      ;(this.#buckets.get(window.name) as Bucket).counts.set(keyId, next)
      counts[i] = next
    }
    return { allowed, counts }
  }

  /** Counters held, over all live windows. */
  get size (): number {
    let size = 0
    for (const bucket of this.#buckets.values()) size += bucket.counts.size
    return size
  }

  #bucket (name: string, start: number): Bucket {
    let bucket = this.#buckets.get(name)
    // A later window replaces the live one whole; a clock that steps back keeps counting in it.
    if (bucket === undefined || start > bucket.start) {
      bucket = { start, counts: new Map() }
      this.#buckets.set(name, bucket)
    }
    return bucket
  }
}
