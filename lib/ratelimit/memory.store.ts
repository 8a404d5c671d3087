import type { ConsumeRequest, ConsumeResult, RateLimitStore } from './store.js'

interface Bucket {
  end: number
  counts: Map<string, number>
}

/**
 * Counters in this process. Windows are aligned to the clock, so every key's counter for one
 * window lives in one bucket that is dropped whole when the window ends: memory holds only the
 * keys seen in the current minute and hour.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  readonly #buckets = new Map<string, Bucket>()

  async consume ({ keyId, windows, now }: ConsumeRequest): Promise<ConsumeResult> {
    this.#dropEnded(now)
    const buckets = windows.map((window) => this.#bucket(window.name, window.start, window.durationMs))
    const counts = buckets.map((bucket) => bucket.counts.get(keyId) ?? 0)
    for (let i = 0; i < windows.length; i++) {
      if ((counts[i] as number) >= (windows[i] as ConsumeRequest['windows'][number]).limit) return { allowed: false, counts }
    }
    for (let i = 0; i < buckets.length; i++) {
      const next = (counts[i] as number) + 1
      ;(buckets[i] as Bucket).counts.set(keyId, next)
      counts[i] = next
    }
    return { allowed: true, counts }
  }

  /** Counters held, over all live windows. */
  get size (): number {
    let size = 0
    for (const bucket of this.#buckets.values()) size += bucket.counts.size
    return size
  }

  #bucket (name: string, start: number, durationMs: number): Bucket {
    const id = `${name}:${start}`
    let bucket = this.#buckets.get(id)
    if (bucket === undefined) {
      bucket = { end: start + durationMs, counts: new Map() }
      this.#buckets.set(id, bucket)
    }
    return bucket
  }

  #dropEnded (now: number): void {
    for (const [id, bucket] of this.#buckets) {
      if (bucket.end <= now) this.#buckets.delete(id)
    }
  }
}
