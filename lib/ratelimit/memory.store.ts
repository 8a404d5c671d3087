import type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './store.js'

interface Bucket {
  start: number
  counts: Map<string, number>
}

/**
 * Counters in this process. Windows are aligned to the clock, so every key's counter for one
 * window lives in one bucket that is dropped whole when the window ends: memory holds only the
 * keys seen in the current minute and hour (and credits period). Credits that never refill count
 * in a window that never ends: one counter per key and credits version, kept until the process
 * restarts.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  // The live bucket of each window name; an older one is dropped when a newer one starts.
  readonly #buckets = new Map<string, Bucket>()

  consume ({ keyId, windows }: ConsumeRequest): ConsumeResult {
    // At its final length: this runs on every request, and a grown array costs more.
    const counts = new Array<number>(windows.length)
    let allowed = true
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as WindowRequest
      const count = this.#bucket(window.name, window.start).counts.get(counterOf(keyId, window)) ?? 0
      counts[i] = count
      if (count >= window.limit) allowed = false
    }
    if (!allowed) return { allowed, counts }
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as WindowRequest
      const next = (counts[i] as number) + 1
      ;(this.#buckets.get(window.name) as Bucket).counts.set(counterOf(keyId, window), next)
      counts[i] = next
    }
    return { allowed, counts }
  }

  peek (requests: readonly ConsumeRequest[]): number[][] {
    return requests.map(({ keyId, windows }) => windows.map((window) => {
      const bucket = this.#buckets.get(window.name)
      // A bucket of an earlier window holds nothing of this one.
      return bucket === undefined || bucket.start < window.start ? 0 : bucket.counts.get(counterOf(keyId, window)) ?? 0
    }))
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

/** The counter's name within its bucket: the key id alone for the rate-limit windows, so they cost no string building. */
function counterOf (keyId: string, window: WindowRequest): string {
  return window.counter === undefined ? keyId : `${keyId}:${window.counter}`
}
