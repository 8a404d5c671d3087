import type { FastifyBaseLogger } from 'fastify'
import type { RedisClient } from '../redis/client.js'
import { DEFAULTS } from '../defaults.js'
import { storeErrorChannel } from '../diagnostics/channels.js'
import { safeError } from '../log/safe-error.js'
import { throttledWarning, type Warn } from '../log/throttled-warning.js'
import { createPublisher, createSubscriber, isCluster } from '../redis/pubsub.js'
import { withTimeout } from '../redis/timeout.js'
import type { CachedKey, Invalidation, KeyCache } from './key-cache.js'
import { createSeal, type Seal } from './sealed-entry.js'

/** Reported on the `keygate:store-error` channel, when observed. */
function storeFailed (operation: 'get' | 'set' | 'delete' | 'subscribe', error: unknown): void {
  if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ store: 'redis-cache', operation, error: safeError(error) })
}

export interface RedisKeyCacheOptions {
  client: RedisClient
  /** The server secret (the plugin's `secret`): entries and messages are tagged with keys derived from it. */
  secret: Buffer
  /** How long an entry is fresh from its read, in ms (the plugin's `cacheTtl`; the same on every instance). */
  cacheTtl: number
  /** How long Redis keeps an entry, in ms (it is refreshed long before). */
  entryTtlMs: number
  /** Longest wait for Redis, in ms; past it, a read is a miss and a write is skipped. */
  timeoutMs: number
  log: FastifyBaseLogger
  /** Prefix of entry names; the channel is `<prefix>invalidate`. Default `keygate:key:`. */
  keyPrefix?: string
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number
}

// An entry marked stale from long ago: re-read from the database before use, never served stale.
const LONG_STALE = 0
// Invalidations older than this are ignored: generous for clocks a little apart, and far too short
// for a replay of messages collected earlier (to crowd out the deletes remembered) to matter.
const MESSAGE_MAX_AGE_MS = 300_000
// Sets many entries, each with the same time to live: KEYS the names, ARGV the ttl in ms, then the
// values in the same order. Named for its version, like the rate-limit script.
const SET_MANY = 'keygateCacheSetMany1'
const SET_MANY_SCRIPT = `
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1]) end
return #KEYS
`
// Entries per script call at most: a script blocks Redis while it runs.
const SET_MANY_MOST = 100
type SetManyClient = Record<typeof SET_MANY, (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<number>>

// After a Cluster node is lost, a subscribe that fails (or meets another loss) is tried again this
// soon, then ever later up to the most.
const RESUBSCRIBE_FIRST_MS = 100
const RESUBSCRIBE_MOST_MS = 5_000
// A subscribe that has not been confirmed by then is tried again.
const SUBSCRIBE_TIMEOUT_MS = 5_000

/**
 * The level every instance shares: a key verified on one instance is known to the others, and a
 * delete reaches them all over pub/sub. Entries and messages carry an HMAC tag (see
 * sealed-entry.ts): one that fails it is a miss, is removed, and is logged at most once a minute.
 *
 * An instance trusts an entry's freshness only if the entry was read from the database after this
 * instance was listening for deletes; an older one comes back stale, to be re-read (without
 * argon2) before use, since a delete may have been published while nobody here was listening.
 *
 * On a Redis Cluster, the channel is a sharded one where the servers have it (see pubsub.ts).
 */
export class RedisKeyCache implements KeyCache {
  readonly #client: RedisClient
  readonly #subscriber: RedisClient
  readonly #subscribeChannel: () => Promise<void>
  readonly #publish: (channel: string, message: string) => Promise<unknown>
  readonly #seal: Seal
  readonly #cacheTtl: number
  readonly #entryTtlMs: number
  readonly #timeoutMs: number
  readonly #keyPrefix: string
  readonly #channel: string
  readonly #now: () => number
  readonly #warnFailed: Warn
  readonly #warnForged: Warn
  readonly #listeners: Array<(keyId: string | null, reason: Invalidation) => void> = []
  /** When the subscription was last confirmed; undefined while it is not. */
  #listeningSince: number | undefined
  #closed = false
  /** Cluster nodes lost so far; a subscribe confirmed after another loss proves nothing. */
  #losses = 0
  #resubscribing = false
  #resubscribeTimer: NodeJS.Timeout | undefined
  /** Settles once the channel's first subscription is confirmed (or failed). */
  readonly listening: Promise<void>

  constructor ({ client, secret, cacheTtl, entryTtlMs, timeoutMs, log, keyPrefix = DEFAULTS.cacheKeyPrefix, now = Date.now }: RedisKeyCacheOptions) {
    this.#client = client
    this.#seal = createSeal(secret)
    this.#cacheTtl = cacheTtl
    this.#entryTtlMs = entryTtlMs
    this.#timeoutMs = timeoutMs
    this.#keyPrefix = keyPrefix
    this.#channel = `${keyPrefix}invalidate`
    this.#now = now
    this.#warnFailed = throttledWarning(log, now)
    this.#warnForged = throttledWarning(log, now)
    this.#publish = createPublisher(client)
    // Registered once per client, like the rate-limit script; a Cluster writes entries one by one.
    if (!isCluster(client) && typeof (client as unknown as Record<string, unknown>)[SET_MANY] !== 'function') {
      client.defineCommand(SET_MANY, { lua: SET_MANY_SCRIPT })
    }
    // A connection in subscriber mode can send nothing else, so it is a connection of its own.
    const subscriber = createSubscriber(client, this.#channel)
    this.#subscriber = subscriber.connection
    this.#subscribeChannel = subscriber.subscribe
    this.#subscriber.on('error', (error: Error) => this.#warnFailed(error, 'keygate: Redis invalidation channel failed; deletes elsewhere apply here within cacheTtl'))
    const onMessage = (channel: string, message: string): void => {
      if (channel === this.#channel) this.#heard(message)
    }
    this.#subscriber.on('message', onMessage)
    this.#subscriber.on('smessage', onMessage)
    if (isCluster(client)) {
      // ioredis reconnects a lost sharded subscriber and subscribes again by itself, but tells
      // nobody when. Its end is reported with the node's key (other connections' without one).
      // (A plain subscriber's move to another node is not reported at all: see the README.)
      this.#subscriber.on('-node', (_connection: unknown, nodeKey?: string) => {
        if (nodeKey !== undefined) this.#lost()
      })
    }
    let connectedBefore = false
    this.#subscriber.on('ready', () => {
      if (!connectedBefore) { connectedBefore = true; return }
      // Messages may have been missed while disconnected: drop everything, trust nothing older.
      this.#listeningSince = undefined
      this.#tell(null)
      void this.#subscribe()
    })
    // Disconnected, a delete published now would be missed: nothing read from here on is trusted fresh.
    this.#subscriber.on('close', () => { this.#listeningSince = undefined })
    this.listening = this.#subscribe()
  }

  async #subscribe (): Promise<void> {
    try {
      await this.#subscribeChannel()
      if (!this.#closed) this.#listeningSince = this.#now()
    } catch (error) {
      storeFailed('subscribe', error)
      this.#warnFailed(error, 'keygate: Redis invalidation channel failed; deletes elsewhere apply here within cacheTtl')
    }
  }

  async get (keyId: string): Promise<CachedKey | undefined> {
    let stored: string | null
    try {
      stored = await withTimeout(this.#client.get(this.#keyPrefix + keyId), this.#timeoutMs)
    } catch (error) {
      storeFailed('get', error)
      this.#warnFailed(error, 'keygate: Redis key cache read failed; using this process\'s cache and the database')
      return undefined
    }
    if (stored === null) return undefined
    const entry = this.#seal.openEntry(keyId, stored)
    if (entry === undefined) {
      this.#warnForged(undefined, 'keygate: a Redis key cache entry failed its check and was removed; is someone else writing to this Redis?')
      this.#client.del(this.#keyPrefix + keyId).catch(() => {})
      return undefined
    }
    const since = this.#listeningSince
    if (since === undefined || entry.freshUntil - this.#cacheTtl < since) return { ...entry, freshUntil: LONG_STALE }
    return entry
  }

  async set (keyId: string, entry: CachedKey): Promise<void> {
    try {
      await withTimeout(this.#client.set(this.#keyPrefix + keyId, this.#seal.entry(keyId, entry), 'PX', this.#entryTtlMs), this.#timeoutMs)
    } catch (error) {
      storeFailed('set', error)
      this.#warnFailed(error, 'keygate: Redis key cache write failed; using this process\'s cache and the database')
    }
  }

  /**
   * One script call per 100 entries on a single Redis; one SET each on a Cluster, where the
   * entries' names lie in different slots.
   */
  async setMany (entries: ReadonlyArray<readonly [keyId: string, entry: CachedKey]>): Promise<void> {
    if (entries.length === 0) return
    if (isCluster(this.#client)) {
      await Promise.all(entries.map(async ([keyId, entry]) => await this.set(keyId, entry)))
      return
    }
    for (let from = 0; from < entries.length; from += SET_MANY_MOST) {
      const chunk = entries.slice(from, from + SET_MANY_MOST)
      const names = chunk.map(([keyId]) => this.#keyPrefix + keyId)
      const values = chunk.map(([keyId, entry]) => this.#seal.entry(keyId, entry))
      try {
        await withTimeout((this.#client as unknown as SetManyClient)[SET_MANY](names.length, ...names, this.#entryTtlMs, ...values), this.#timeoutMs)
      } catch (error) {
        storeFailed('set', error)
        this.#warnFailed(error, 'keygate: Redis key cache write failed; using this process\'s cache and the database')
      }
    }
  }

  async delete (keyId: string, reason: Invalidation = 'deleted'): Promise<void> {
    try {
      await withTimeout(Promise.all([
        this.#client.del(this.#keyPrefix + keyId),
        this.#publish(this.#channel, this.#seal.message(keyId, this.#now(), reason))
      ]), this.#timeoutMs)
    } catch (error) {
      // The other instances still refuse it when its freshness ends.
      storeFailed('delete', error)
      this.#warnFailed(error, 'keygate: Redis key cache delete failed; other instances refuse the key within cacheTtl')
    }
  }

  onInvalidate (listener: (keyId: string | null, reason: Invalidation) => void): void {
    this.#listeners.push(listener)
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#listeningSince = undefined
    clearTimeout(this.#resubscribeTimer)
    this.#subscriber.disconnect()
  }

  /**
   * The node the subscription was on is gone: deletes published from now on are missed here until
   * a subscribe is confirmed again; then everything is dropped, as after a reconnect.
   */
  #lost (): void {
    this.#listeningSince = undefined
    this.#losses++
    if (!this.#resubscribing && !this.#closed) {
      this.#resubscribing = true
      void this.#resubscribe(RESUBSCRIBE_FIRST_MS)
    }
  }

  /** Subscribes until a subscribe is confirmed with no node lost meanwhile, waiting ever longer between tries. */
  async #resubscribe (delayMs: number): Promise<void> {
    if (this.#closed) return
    const losses = this.#losses
    try {
      await withTimeout(this.#subscribeChannel(), SUBSCRIBE_TIMEOUT_MS)
    } catch (error) {
      storeFailed('subscribe', error)
      this.#warnFailed(error, 'keygate: Redis invalidation channel failed; deletes elsewhere apply here within cacheTtl')
      this.#resubscribeLater(delayMs)
      return
    }
    if (this.#closed) return
    if (losses !== this.#losses) {
      this.#resubscribeLater(delayMs)
      return
    }
    this.#resubscribing = false
    this.#tell(null)
    this.#listeningSince = this.#now()
  }

  #resubscribeLater (delayMs: number): void {
    if (this.#closed) return
    this.#resubscribeTimer = setTimeout(() => { void this.#resubscribe(Math.min(delayMs * 2, RESUBSCRIBE_MOST_MS)) }, delayMs)
    this.#resubscribeTimer.unref()
  }

  #heard (message: string): void {
    const opened = this.#seal.openMessage(message)
    if (opened === undefined || this.#now() - opened.sentAt > MESSAGE_MAX_AGE_MS) {
      this.#warnForged(undefined, 'keygate: an invalidation message failed its check or is too old, and was ignored; is someone else publishing to this Redis?')
      return
    }
    this.#tell(opened.keyId, opened.reason)
  }

  #tell (keyId: string | null, reason: Invalidation = 'deleted'): void {
    for (const listener of this.#listeners) listener(keyId, reason)
  }
}
