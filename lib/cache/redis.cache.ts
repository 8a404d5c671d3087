import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { MaybePromise } from '../maybe-promise.js'
import { withTimeout } from '../redis/timeout.js'
import type { CachedKey, KeyCache } from './key-cache.js'
import { MemoryKeyCache } from './memory.cache.js'

export interface RedisKeyCacheOptions {
  client: Redis | Cluster
  /** The first level: this process's cache. */
  memory: MemoryKeyCache
  /** How long Redis keeps an entry, in ms (it is refreshed long before). */
  entryTtlMs: number
  /** Longest wait for Redis, in ms; past it, a read is a miss and a write is skipped. */
  timeoutMs: number
  log: FastifyBaseLogger
  /** Prefix of entry names; the channel is `<prefix>invalidate`. Default `keygate:key:`. */
  keyPrefix?: string
}

// A Redis that is down would otherwise log once per request.
const WARNING_INTERVAL_MS = 60_000

/**
 * Two levels: this process's LRU, then Redis, so a key verified on one instance is known to the
 * others. Deletes go to Redis and, over pub/sub, to every instance's first level. After a
 * reconnect the first level is emptied, since messages may have been missed.
 */
export class RedisKeyCache implements KeyCache {
  readonly #client: Redis | Cluster
  readonly #subscriber: Redis | Cluster
  readonly #memory: MemoryKeyCache
  readonly #entryTtlMs: number
  readonly #timeoutMs: number
  readonly #log: FastifyBaseLogger
  readonly #keyPrefix: string
  readonly #channel: string
  #lastWarning = Number.NEGATIVE_INFINITY

  constructor ({ client, memory, entryTtlMs, timeoutMs, log, keyPrefix = 'keygate:key:' }: RedisKeyCacheOptions) {
    this.#client = client
    this.#memory = memory
    this.#entryTtlMs = entryTtlMs
    this.#timeoutMs = timeoutMs
    this.#log = log
    this.#keyPrefix = keyPrefix
    this.#channel = `${keyPrefix}invalidate`
    // A connection in subscriber mode can send nothing else, so it is a connection of its own.
    this.#subscriber = (client as Redis).duplicate()
    this.#subscriber.on('error', (error: Error) => this.#warn(error, 'invalidation channel'))
    this.#subscriber.on('message', (channel: string, keyId: string) => {
      if (channel === this.#channel) this.#memory.invalidate(keyId)
    })
    let connectedBefore = false
    this.#subscriber.on('ready', () => {
      if (connectedBefore) this.#memory.invalidate(null)
      connectedBefore = true
    })
    this.#subscriber.subscribe(this.#channel).catch((error: Error) => this.#warn(error, 'invalidation channel'))
  }

  get (keyId: string): MaybePromise<CachedKey | undefined> {
    return this.#memory.get(keyId) ?? this.#getShared(keyId)
  }

  async #getShared (keyId: string): Promise<CachedKey | undefined> {
    try {
      const stored = await withTimeout(this.#client.get(this.#keyPrefix + keyId), this.#timeoutMs)
      if (stored === null) return undefined
      const entry = JSON.parse(stored) as CachedKey
      await this.#memory.set(keyId, entry)
      return entry
    } catch (error) {
      this.#warn(error, 'read')
      return undefined
    }
  }

  async set (keyId: string, entry: CachedKey): Promise<void> {
    await this.#memory.set(keyId, entry)
    try {
      await withTimeout(this.#client.set(this.#keyPrefix + keyId, JSON.stringify(entry), 'PX', this.#entryTtlMs), this.#timeoutMs)
    } catch (error) {
      this.#warn(error, 'write')
    }
  }

  async delete (keyId: string): Promise<void> {
    await this.#memory.delete(keyId)
    try {
      await withTimeout(Promise.all([
        this.#client.del(this.#keyPrefix + keyId),
        this.#client.publish(this.#channel, keyId)
      ]), this.#timeoutMs)
    } catch (error) {
      // The other instances still drop it when its freshness ends.
      this.#warn(error, 'delete')
    }
  }

  onInvalidate (listener: (keyId: string | null) => void): void {
    this.#memory.onInvalidate(listener)
  }

  async close (): Promise<void> {
    this.#subscriber.disconnect()
  }

  #warn (error: unknown, what: string): void {
    const now = Date.now()
    if (now - this.#lastWarning < WARNING_INTERVAL_MS) return
    this.#lastWarning = now
    this.#log.warn({ err: error }, `keygate: Redis key cache ${what} failed; using this process's cache and the database`)
  }
}
