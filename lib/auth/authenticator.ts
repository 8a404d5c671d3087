import type { KeyInfo } from '../api/key-info.js'
import type { CachedKey, KeyCache } from '../cache/key-cache.js'
import type { ApiKeyRow } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import { ServiceUnavailableError } from '../errors.js'
import type { KeyHasher } from '../keys/hasher.js'
import { isPromise, type MaybePromise } from '../maybe-promise.js'
import { type ParsedKey, parseKey } from '../keys/key-text.js'
import type { KeyReader } from './key-reader.js'
import type { AbuseGuard } from './abuse-guard.js'
import type { KeyRenewal } from './renewal.js'
import type { EntryFor } from './cache-entry.js'
import { type Fingerprint, sameFingerprint } from './fingerprint.js'

/** `request.apiKey`: the key a request authenticated with. */
export interface AuthenticatedKey extends KeyInfo {
  /** The 8-character key id. */
  id: string
}

/** Synchronous on the hot path (a fresh key in this process's cache), a promise otherwise. */
export type Authenticate = (keyText: string) => MaybePromise<AuthenticatedKey | null>

export interface AuthenticatorDeps {
  /** Reads keys by id, batched. */
  reader: Pick<KeyReader, 'read'>
  hasher: KeyHasher
  prefixes: readonly string[]
  cache: KeyCache
  guard: AbuseGuard
  fingerprint: Fingerprint
  entryFor: EntryFor
  /** Renews keys in steady use ahead of their freshness. */
  renewal: Pick<KeyRenewal, 'noteFreshHit'>
  now: () => number
  /**
   * How many evictions (deletes here, invalidations from elsewhere) there have been so far. A
   * read that began before one does not cache what it found: it may have read a key just deleted.
   */
  evictions: () => number
  /** How long past its freshness a record keeps serving while the database is down, in ms. */
  staleIfError: number
}

/**
 * Checks key text. Format and checksum first (no I/O); then the cache, where a verified key is
 * known by its fingerprint; only a key never verified here reaches argon2, once.
 */
export function createAuthenticator (deps: AuthenticatorDeps): Authenticate {
  const { reader, hasher, cache, guard, fingerprint, entryFor, renewal, now, evictions, staleIfError } = deps
  const accepted = new Set(deps.prefixes)
  const inFlight = new Map<string, Promise<AuthenticatedKey | null>>()

  /** Caches what a read found, unless a key was evicted since the read began: the eviction stands. */
  async function remember (keyId: string, entry: CachedKey, evictionsBefore: number): Promise<void> {
    if (evictions() === evictionsBefore) await cache.set(keyId, entry)
  }

  async function verify (parsed: ParsedKey, keyFingerprint: string, at: number, evictionsBefore = evictions()): Promise<AuthenticatedKey | null> {
    const row = await whileAvailable(() => reader.read(parsed.keyId))
    if (row === undefined || row.prefix !== parsed.prefix) {
      guard.rememberMissing(parsed.keyId, at)
      return null
    }
    if (!(await hasher.verify(row.hash, parsed.text))) {
      guard.recordFailure(parsed.keyId, keyFingerprint, at)
      return null
    }
    guard.forget(parsed.keyId)
    const entry = entryFor(row, keyFingerprint, at)
    await remember(parsed.keyId, entry, evictionsBefore)
    return entry.key
  }

  async function refresh (parsed: ParsedKey, cached: CachedKey, at: number): Promise<AuthenticatedKey | null> {
    const evictionsBefore = evictions()
    let row: ApiKeyRow | undefined
    try {
      row = await whileAvailable(() => reader.read(parsed.keyId))
    } catch (error) {
      // The database is down: a record verified recently enough keeps serving for a while.
      if (error instanceof ServiceUnavailableError && at < cached.freshUntil + staleIfError) return cached.key
      throw error
    }
    if (row === undefined) {
      await cache.delete(parsed.keyId)
      guard.rememberMissing(parsed.keyId, at)
      return null
    }
    // The hash changed (the key was re-issued): the cached fingerprint proves nothing any more.
    if (fingerprint(row.hash) !== cached.hashDigest) return await verify(parsed, cached.fingerprint, at, evictionsBefore)
    const entry = entryFor(row, cached.fingerprint, at)
    await remember(parsed.keyId, entry, evictionsBefore)
    return entry.key
  }

  /** Everything past a fresh cache hit: a refresh, a verification, or a refusal. */
  async function resolveSlowly (parsed: ParsedKey, keyFingerprint: string, cached: CachedKey | undefined, at: number): Promise<AuthenticatedKey | null> {
    if (cached !== undefined && sameFingerprint(cached.fingerprint, keyFingerprint)) return await refresh(parsed, cached, at)
    if (guard.isRefused(parsed.keyId, keyFingerprint, at)) return null
    return await verify(parsed, keyFingerprint, at)
  }

  /** A fresh cache hit answers at once; everything else goes the slow way, one flight per key. */
  function decide (parsed: ParsedKey, keyFingerprint: string, cached: CachedKey | undefined, at: number): MaybePromise<AuthenticatedKey | null> {
    if (cached !== undefined && at < cached.freshUntil && sameFingerprint(cached.fingerprint, keyFingerprint)) {
      void renewal.noteFreshHit(parsed.keyId, cached, at)
      return cached.key
    }
    // Concurrent requests with the same key share one database read and one argon2 run.
    const flightKey = `${parsed.keyId}:${keyFingerprint}`
    let flight = inFlight.get(flightKey)
    if (flight === undefined) {
      flight = resolveSlowly(parsed, keyFingerprint, cached, at).finally(() => inFlight.delete(flightKey))
      inFlight.set(flightKey, flight)
    }
    return flight
  }

  return (keyText) => {
    const parsed = parseKey(keyText, accepted)
    if (parsed === null) return null
    const at = now()
    if (guard.isKnownMissing(parsed.keyId, at)) return null
    const keyFingerprint = fingerprint(keyText)
    const cached = cache.get(parsed.keyId)
    if (isPromise(cached)) return cached.then((entry) => decide(parsed, keyFingerprint, entry, at))
    return decide(parsed, keyFingerprint, cached, at)
  }
}
