import { LRUCache } from 'lru-cache'
import type { CachedKey, KeyCache } from './key-cache.js'

export interface MemoryKeyCacheOptions {
  /** Most entries held; the least recently used goes first. Default 10,000. */
  maxEntries?: number
}

/** Verified keys in this process, bounded by count. Freshness is the hook's to judge. */
export class MemoryKeyCache implements KeyCache {
  readonly #entries: LRUCache<string, CachedKey>
  readonly #listeners: Array<(keyId: string | null) => void> = []

  constructor ({ maxEntries = 10_000 }: MemoryKeyCacheOptions = {}) {
    this.#entries = new LRUCache({ max: maxEntries })
  }

  get (keyId: string): CachedKey | undefined {
    return this.#entries.get(keyId)
  }

  async set (keyId: string, entry: CachedKey): Promise<void> {
    this.#entries.set(keyId, entry)
  }

  async delete (keyId: string): Promise<void> {
    this.#entries.delete(keyId)
  }

  onInvalidate (listener: (keyId: string | null) => void): void {
    this.#listeners.push(listener)
  }

  /** Applies an eviction that came from elsewhere, and tells the listeners. */
  invalidate (keyId: string | null): void {
    if (keyId === null) this.#entries.clear()
    else this.#entries.delete(keyId)
    for (const listener of this.#listeners) listener(keyId)
  }

  get size (): number {
    return this.#entries.size
  }

  async close (): Promise<void> {}
}
