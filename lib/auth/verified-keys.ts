import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { Invalidation, KeyCache } from '../cache/key-cache.js'
import type { ApiKeyRow } from '../db/schema.js'
import { DEFAULTS } from '../defaults.js'
import { whileAvailable } from '../db/unavailable.js'
import { HasherBusyError, ServiceUnavailableError } from '../errors.js'
import type { KeyHasher } from '../keys/hasher.js'
import { keyIdentifier, type ParsedKey, parseKey } from '../keys/key-text.js'
import { throttledWarning, type Warn } from '../log/throttled-warning.js'
import type { MaybePromise } from '../maybe-promise.js'
import { type CachedKey, cachedKeyOfShape } from '../records/cached-key.js'
import type { ToKeyRecord } from '../records/key-info.js'
import { creditsOf, deprecationOf, isLiveAt, notAfterOf } from '../records/lifecycle.js'
import { argon2Channel, cacheChannel, LOCAL_HIT, LOCAL_MISS, LOCAL_STALE, SHARED_HIT, SHARED_MISS } from '../diagnostics/channels.js'
import { AbuseGuard } from './abuse-guard.js'
import type { KeyDenial } from './denial.js'
import { type Fingerprint, retainable, sameFingerprint } from './fingerprint.js'
import type { KeyReader } from './key-reader.js'
import { RenewalQueue } from './renewal-queue.js'

export interface VerifiedKeysOptions {
  /** Every database read of a key goes through it (batched per event-loop turn). */
  reader: Pick<KeyReader, 'read'>
  /** argon2, bounded (see keys/bounded-hasher.ts). */
  hasher: KeyHasher
  prefixes: readonly string[]
  fingerprint: Fingerprint
  toKeyRecord: ToKeyRecord
  /** The level other instances share (Redis), if any. */
  shared: KeyCache | undefined
  /** Most keys held in this process. */
  cacheSize: number
  /** How long a record is trusted without reading the database, in ms. */
  cacheTtl: number
  /** How long past its freshness a record keeps serving while the database is down, in ms. */
  staleIfError: number
  now: () => number
  log: FastifyBaseLogger
  /** Renewal's batching, for tests. Defaults: 100 ms, 500 keys. */
  renewal?: { delayMs?: number, maxBatch?: number }
}

/**
 * The verified key of a text (its record, lineage, expiry, grace and credits), or why it is
 * refused: a constant string (`typeof answer === 'string'`), so a refusal allocates nothing.
 * Synchronous on the hot path (a fresh key in this process), a promise otherwise.
 */
export type Authenticate = (keyText: string) => MaybePromise<CachedKey | KeyDenial>

/** A row that can no longer pass: deleted outright, or past its expiry or its grace period. */
function deadRowReason (row: ApiKeyRow): 'deleted' | 'expired' {
  return row.deleted_at !== null && row.sunset_at === null ? 'deleted' : 'expired'
}

const MINUTE_MS = 60_000

interface Eviction {
  generation: number
  /**
   * Until then (ms since the epoch) a deleted key is refused without a read (ids are never
   * reused), and a changed one is re-read before any entry of it is trusted or served stale.
   */
  until: number
  deleted: boolean
}

/**
 * A verified key's life in this process, in one place: lookup by key id and fingerprint, answered
 * fresh, stale or miss; freshness and `staleIfError`; renewal ahead of freshness; one flight per
 * key text; what is known to be missing or deleted; and the eviction generation.
 *
 * The one consistency rule: every eviction (a delete here, one heard of, or the loss of messages)
 * takes the next number of one generation counter and is remembered with it; whatever a read
 * found is stored only if no eviction that concerns its key id is numbered after the generation
 * at which the read began, and the key id is not remembered as deleted. A read in flight across
 * an eviction answers its own request but stores nothing, here or in the shared level, while
 * evictions of other keys leave it alone (so nobody can spoil others' first verifications by
 * deleting keys of their own).
 */
export class VerifiedKeys {
  readonly #options: VerifiedKeysOptions
  readonly #accepted: ReadonlySet<string>
  /** This process's level: key id to the entry of the text verified for it. */
  readonly #local: LRUCache<string, CachedKey>
  /** Key ids evicted, with the generation of their last eviction and, once deleted, until when that is remembered. */
  readonly #evicted: LRUCache<string, Eviction>
  readonly #guard: AbuseGuard
  readonly #renewal: RenewalQueue
  readonly #inFlight = new Map<string, Promise<CachedKey | KeyDenial>>()
  readonly #running = new Set<Promise<void>>()
  readonly #warn: Warn
  /** The number of the latest eviction. */
  #generation = 0
  /** No read that began before this generation may store anything: everything was dropped, or an eviction's record was. */
  #floor = 0
  /** Until then shared entries are re-read before use: a delete still to be remembered was forgotten for want of room. */
  #distrustSharedUntil = 0

  constructor (options: VerifiedKeysOptions) {
    this.#options = options
    this.#accepted = new Set(options.prefixes)
    this.#local = new LRUCache({ max: options.cacheSize })
    // An eviction pushed out of memory takes its generation with it: the floor keeps the rule whole.
    this.#evicted = new LRUCache({
      max: options.cacheSize,
      dispose: (eviction, _keyId, reason) => {
        if (reason !== 'evict') return
        this.#floor = Math.max(this.#floor, eviction.generation)
        this.#distrustSharedUntil = Math.max(this.#distrustSharedUntil, eviction.until)
      }
    })
    this.#guard = new AbuseGuard({
      missTtlMs: options.cacheTtl,
      maxVerifications: DEFAULTS.verificationsPerKeyId,
      windowMs: MINUTE_MS,
      maxTracked: options.cacheSize
    })
    this.#renewal = new RenewalQueue({ cacheTtl: options.cacheTtl, ...options.renewal })
    this.#warn = throttledWarning(options.log, options.now)
    options.shared?.onInvalidate((keyId, reason) => {
      this.#evict(keyId, reason)
      options.log.debug({ keyId, reason }, 'keygate: key evicted by an invalidation')
    })
  }

  /**
   * Checks key text. Format and checksum first (no I/O); then this process's level, where a
   * verified key is known by its fingerprint and nothing else is consulted; then what is known
   * to be deleted, missing or refused; then the shared level; only then the database and argon2.
   */
  readonly authenticate: Authenticate = (keyText) => {
    const parsed = parseKey(keyText, this.#accepted)
    if (parsed === null) return 'malformed'
    const at = this.#options.now()
    const keyFingerprint = this.#options.fingerprint(keyText)
    const local = this.#local.get(parsed.keyId)
    if (local !== undefined && sameFingerprint(local.fingerprint, keyFingerprint)) {
      // Expired, or its grace is over: the entry knows, so no read is needed to refuse it.
      if (local.notAfter !== null && at >= local.notAfter) return 'expired'
      if (at < local.freshUntil) {
        if (cacheChannel.hasSubscribers) cacheChannel.publish(LOCAL_HIT)
        this.#noteFreshHit(parsed.keyId, local, at)
        return local
      }
      if (cacheChannel.hasSubscribers) cacheChannel.publish(LOCAL_STALE)
      return this.#once(parsed.keyId, keyFingerprint, async () => await this.#refresh(parsed, local, at, this.#generation))
    }
    if (cacheChannel.hasSubscribers) cacheChannel.publish(LOCAL_MISS)
    if (this.#isDeleted(parsed.keyId, at)) return 'deleted'
    const missing = this.#guard.missing(keyIdentifier(parsed.prefix, parsed.keyId), at)
    if (missing !== null) return missing
    // With a shared level, a key verified elsewhere must still be found there first.
    if (this.#options.shared === undefined) {
      const refused = this.#guard.refusal(parsed.keyId, keyFingerprint, at)
      if (refused !== null) return refused
    }
    return this.#once(parsed.keyId, keyFingerprint, async () => await this.#resolve(parsed, keyFingerprint, at))
  }

  /** A key deleted here: refused from now on in this process, and evicted from the shared level (so everywhere). */
  async deleted (keyId: string): Promise<void> {
    this.#evict(keyId, 'deleted')
    await this.#options.shared?.delete(keyId, 'deleted')
  }

  /** A key changed here (updated, or rotated away with a grace period): re-read at its next request, everywhere. */
  async changed (keyId: string): Promise<void> {
    this.#evict(keyId, 'changed')
    await this.#options.shared?.delete(keyId, 'changed')
  }

  /** This process's entry for a key id, without touching its recency. */
  peek (keyId: string): CachedKey | undefined {
    return this.#local.peek(keyId)
  }

  /** Settles once no renewal is running: the plugin waits for it before closing its pool. */
  async idle (): Promise<void> {
    await Promise.all(this.#running)
  }

  /** Concurrent requests with the same key text share one database read and one argon2 run. */
  #once (keyId: string, keyFingerprint: string, resolve: () => Promise<CachedKey | KeyDenial>): Promise<CachedKey | KeyDenial> {
    const flightKey = `${keyId}:${keyFingerprint}`
    let flight = this.#inFlight.get(flightKey)
    if (flight === undefined) {
      flight = resolve().finally(() => this.#inFlight.delete(flightKey))
      this.#inFlight.set(flightKey, flight)
    }
    return flight
  }

  /** Not in this process: the shared level, then the database and argon2. */
  async #resolve (parsed: ParsedKey, keyFingerprint: string, at: number): Promise<CachedKey | KeyDenial> {
    const generation = this.#generation
    const shared = await this.#fromShared(parsed.keyId, at)
    if (shared !== undefined && sameFingerprint(shared.fingerprint, keyFingerprint)) {
      if (shared.notAfter !== null && at >= shared.notAfter) return 'expired'
      if (at >= shared.freshUntil) return await this.#refresh(parsed, shared, at, generation)
      if (this.#isDeleted(parsed.keyId, this.#options.now())) return 'deleted'
      this.#keep(parsed.keyId, shared, generation)
      return shared
    }
    const refused = this.#guard.refusal(parsed.keyId, keyFingerprint, this.#options.now())
    if (refused !== null) return refused
    const row = await whileAvailable(async () => await this.#options.reader.read(parsed.keyId))
    if (row === undefined || row.prefix !== parsed.prefix) {
      this.#guard.rememberMissing(keyIdentifier(parsed.prefix, parsed.keyId), at)
      return 'unknown'
    }
    // Expired or past its grace is as good as missing: no argon2 for a key that cannot pass.
    if (!isLiveAt(row, at)) {
      const reason = deadRowReason(row)
      this.#guard.rememberMissing(keyIdentifier(parsed.prefix, parsed.keyId), at, reason)
      return reason
    }
    return await this.#verify(parsed, row, keyFingerprint, at, generation)
  }

  /**
   * The shared level's entry, as far as this process trusts it: rebuilt and frozen, fresh for no
   * longer than a read of our own would be, and stale outright while a forgotten delete may be
   * hiding behind it.
   */
  async #fromShared (keyId: string, at: number): Promise<CachedKey | undefined> {
    if (this.#options.shared === undefined) return undefined
    const stored = await this.#options.shared.get(keyId)
    const entry = stored === undefined ? undefined : cachedKeyOfShape(keyId, stored)
    if (cacheChannel.hasSubscribers) cacheChannel.publish(entry === undefined ? SHARED_MISS : SHARED_HIT)
    if (entry === undefined) return undefined
    const distrusted = at < this.#distrustSharedUntil || at < (this.#evicted.get(keyId)?.until ?? 0)
    const freshUntil = distrusted ? 0 : Math.min(entry.freshUntil, at + this.#options.cacheTtl)
    return freshUntil === entry.freshUntil ? entry : { ...entry, freshUntil }
  }

  /** A known text whose record is stale: re-read it; argon2 only if the stored hash changed. */
  async #refresh (parsed: ParsedKey, cached: CachedKey, at: number, generation: number): Promise<CachedKey | KeyDenial> {
    let row: ApiKeyRow | undefined
    try {
      row = await whileAvailable(async () => await this.#options.reader.read(parsed.keyId))
    } catch (error) {
      // The database is down: a record verified recently enough keeps serving for a while.
      // Not one deleted or changed lately, though: what it would serve may be what was taken away.
      if (error instanceof ServiceUnavailableError && at < cached.freshUntil + this.#options.staleIfError &&
        at >= (this.#evicted.get(parsed.keyId)?.until ?? 0)) {
        return cached
      }
      throw error
    }
    if (row === undefined || row.prefix !== parsed.prefix) {
      // Deleted, and this process had not heard: make sure every instance hears now.
      await this.deleted(parsed.keyId)
      return 'deleted'
    }
    // Expired, or its grace ended: every instance knows by its own clock, nobody needs telling.
    if (!isLiveAt(row, at)) return deadRowReason(row)
    if (this.#options.fingerprint(row.hash) !== cached.hashDigest) return await this.#verify(parsed, row, cached.fingerprint, at, generation)
    const entry = this.#entryFor(row, cached.fingerprint, at)
    await this.#store(parsed.keyId, entry, generation)
    return entry
  }

  async #verify (parsed: ParsedKey, row: ApiKeyRow, keyFingerprint: string, at: number, generation: number): Promise<CachedKey | KeyDenial> {
    // Counted before argon2 starts, so verifications still running count against the key id
    // too; by the clock now, not at the request's arrival, which may be a slow read ago.
    const now = this.#options.now()
    const refused = this.#guard.refusal(parsed.keyId, keyFingerprint, now)
    if (refused !== null) return refused
    this.#guard.begin(parsed.keyId, keyFingerprint, now)
    let matches: boolean
    const started = argon2Channel.hasSubscribers ? performance.now() : 0
    try {
      matches = await this.#options.hasher.verify(row.hash, parsed.text)
    } catch (error) {
      // A full queue is no run: it gives its turn back and is not reported as one.
      if (error instanceof HasherBusyError) this.#guard.abandon(parsed.keyId, this.#options.now())
      else if (started !== 0 && argon2Channel.hasSubscribers) argon2Channel.publish({ outcome: 'error', durationMs: performance.now() - started })
      throw error
    }
    if (started !== 0 && argon2Channel.hasSubscribers) argon2Channel.publish({ outcome: matches ? 'match' : 'mismatch', durationMs: performance.now() - started })
    if (!matches) {
      this.#guard.failed(parsed.keyId, keyFingerprint, this.#options.now())
      return 'wrong_secret'
    }
    const entry = this.#entryFor(row, keyFingerprint, at)
    await this.#store(parsed.keyId, entry, generation)
    return entry
  }

  /** The entry for a row read at `at`, keeping the fingerprint of the text verified. */
  #entryFor (row: ApiKeyRow, keyFingerprint: string, at: number): CachedKey {
    return {
      key: Object.freeze({ id: row.id, tenant: row.tenant, ...this.#options.toKeyRecord(row) }),
      // Most keys were never rotated: their lineage is their id, held once.
      lineage: row.lineage === row.id ? row.id : row.lineage,
      notAfter: notAfterOf(row),
      deprecation: deprecationOf(row),
      credits: creditsOf(row),
      fingerprint: retainable(keyFingerprint),
      hashDigest: retainable(this.#options.fingerprint(row.hash)),
      freshUntil: at + this.#options.cacheTtl
    }
  }

  /**
   * Keeps what a read found in this process, unless a key was evicted since the read began (the
   * eviction stands) or this one is remembered as deleted. True when it was kept.
   */
  #keep (keyId: string, entry: CachedKey, generation: number): boolean {
    if (generation < this.#floor) return false
    const eviction = this.#evicted.get(keyId)
    if (eviction !== undefined && (generation < eviction.generation || (eviction.deleted && this.#options.now() < eviction.until))) return false
    this.#local.set(keyId, entry)
    return true
  }

  /** Keeps it here and, under the same rule, in the shared level. */
  async #store (keyId: string, entry: CachedKey, generation: number): Promise<void> {
    if (this.#keep(keyId, entry, generation)) await this.#options.shared?.set(keyId, entry)
  }

  #isDeleted (keyId: string, at: number): boolean {
    const eviction = this.#evicted.get(keyId)
    return eviction !== undefined && eviction.deleted && at < eviction.until
  }

  /** A delete or a change (keyId) or a loss of messages (null): the next generation, and what must be forgotten. */
  #evict (keyId: string | null, reason: Invalidation = 'deleted'): void {
    const generation = ++this.#generation
    if (keyId === null) {
      this.#floor = generation
      this.#local.clear()
      return
    }
    this.#local.delete(keyId)
    // Long enough to outlive any entry read before the eviction, stale-if-error grace included.
    const until = this.#options.now() + this.#options.cacheTtl + this.#options.staleIfError
    this.#evicted.set(keyId, { generation, until, deleted: reason === 'deleted' })
    this.#guard.forget(keyId)
  }

  #noteFreshHit (keyId: string, entry: CachedKey, at: number): void {
    const batch = this.#renewal.noteFreshHit(keyId, entry, at)
    if (batch === undefined) return
    const run = this.#renew(batch).finally(() => {
      this.#renewal.done(batch)
      this.#running.delete(run)
    })
    this.#running.add(run)
  }

  /**
   * Re-reads a batch of keys in steady use (one query: the reads of one turn share it) and renews
   * each whose row is live and whose stored hash is unchanged. Anything else is left for the
   * request path to decide when its freshness ends. Nothing it does can fail a request.
   */
  async #renew (batch: Map<string, CachedKey>): Promise<void> {
    const generation = this.#generation
    // Freshness counts from before the read, as on the request path.
    const at = this.#options.now()
    try {
      const ids = [...batch.keys()]
      const rows = await Promise.all(ids.map(async (keyId) => await this.#options.reader.read(keyId)))
      const kept: Array<[string, CachedKey]> = []
      ids.forEach((keyId, i) => {
        const row = rows[i]
        const queued = batch.get(keyId) as CachedKey
        if (row === undefined || !isLiveAt(row, at) || this.#options.fingerprint(row.hash) !== queued.hashDigest) return
        const entry = this.#entryFor(row, queued.fingerprint, at)
        if (this.#keep(keyId, entry, generation)) kept.push([keyId, entry])
      })
      // All in one write where the shared level can (with Redis, a write per key cost a busy
      // instance more than its requests' own counting); else side by side, so a slow shared
      // level costs one timeout, not one per key.
      const shared = this.#options.shared
      if (shared?.setMany !== undefined) await shared.setMany(kept)
      else if (shared !== undefined) await Promise.all(kept.map(async ([keyId, entry]) => await shared.set(keyId, entry)))
    } catch (error) {
      this.#warn(error, 'keygate: renewing cached keys failed; they will be re-read when their freshness ends')
    }
  }
}
