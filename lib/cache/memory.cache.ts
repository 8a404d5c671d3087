import { LRUCache } from 'lru-cache'
import { DEFAULTS } from '../defaults.js'
import type { CachedKey, Invalidation, KeyCache } from './key-cache.js'

export interface MemoryKeyCacheOptions {
  /** Most entries held; the least recently used goes first. Default 10,000. */
  maxEntries?: number
}

/**
 * A shared level in this process's memory: for several apps in one process (workers of one
 * server, tests) that should know each other's verified keys and deletes without Redis.
 */
export class MemoryKeyCache implements KeyCache {
  readonly #entries: LRUCache<string, CachedKey>
  readonly #listeners: Array<(keyId: string | null, reason: Invalidation) => void> = []

  constructor ({ maxEntries = DEFAULTS.cacheSize }: MemoryKeyCacheOptions = {}) {
    this.#entries = new LRUCache({ max: maxEntries })
  }

  async get (keyId: string): Promise<CachedKey | undefined> {
    return this.#entries.get(keyId)
  }

  async set (keyId: string, entry: CachedKey): Promise<void> {
    this.#entries.set(keyId, entry)
  }

  async delete (keyId: string, reason: Invalidation = 'deleted'): Promise<void> {
    this.#entries.delete(keyId)
    for (const listener of this.#listeners) listener(keyId, reason)
  }

  onInvalidate (listener: (keyId: string | null, reason: Invalidation) => void): void {
    this.#listeners.push(listener)
  }

  get size (): number {
    return this.#entries.size
  }

  async close (): Promise<void> {}
}
