import { channel } from 'node:diagnostics_channel'
import type { ApiKeyDenial } from '../auth/denial.js'
import type { SafeError } from '../log/safe-error.js'

/**
 * The plugin's `node:diagnostics_channel` channels, for metrics and tracing. Every publish is
 * behind `channel.hasSubscribers`: with nobody subscribed no message is built. Messages carry a
 * key's public identifier at most, never key text, a fingerprint or a hash.
 */
export const CHANNELS = Object.freeze({
  /** Every request the hook or `verify` decided: {@link VerificationMessage}. */
  verification: 'keygate:verification',
  /** Every refusal, with its reason: {@link DenialMessage}. */
  denial: 'keygate:denial',
  /** Every lookup of a key in a cache level: {@link CacheMessage}. */
  cache: 'keygate:cache',
  /** Every argon2 verification run for a request: {@link Argon2Message}. */
  argon2: 'keygate:argon2',
  /** Every failure of the rate-limit store or of the Redis key cache: {@link StoreErrorMessage}. */
  storeError: 'keygate:store-error'
} as const)

export interface VerificationMessage {
  outcome: 'admitted' | 'denied'
  /** Why it was refused; null when admitted. */
  reason: ApiKeyDenial | null
  /** The key's public identifier (`metlo.a1B2c3D4`) once it is known; null before, and for a signed-in person. */
  identifier: string | null
}

export interface DenialMessage {
  reason: ApiKeyDenial
  /** The HTTP status the client gets (401, 403, 429 or 503). */
  statusCode: number
  /** As in {@link VerificationMessage}. */
  identifier: string | null
}

export interface CacheMessage {
  /** `local`: this process's cache; `shared`: the level instances share (Redis, or the `cache` option). */
  level: 'local' | 'shared'
  /** `stale`: found in this process, but past `cacheTtl`: re-read from the database. */
  result: 'hit' | 'stale' | 'miss'
}

export interface Argon2Message {
  /** `error`: argon2 failed (a full queue is not a run and is not reported here). */
  outcome: 'match' | 'mismatch' | 'error'
  /** Wall time of the verification, waiting for a thread included, in ms. */
  durationMs: number
}

export interface StoreErrorMessage {
  store: 'rate-limit' | 'redis-cache'
  /** What was being done: `consume` (counting a request), `peek`, `get`, `set`, `delete` or `subscribe`. */
  operation: 'consume' | 'peek' | 'get' | 'set' | 'delete' | 'subscribe'
  /** The error's type, message, code and stack only (what clients attach to errors is left out). */
  error: SafeError
}

export const verificationChannel = channel(CHANNELS.verification)
export const denialChannel = channel(CHANNELS.denial)
export const cacheChannel = channel(CHANNELS.cache)
export const argon2Channel = channel(CHANNELS.argon2)
export const storeErrorChannel = channel(CHANNELS.storeError)

// Cache lookups are the hot path: their messages are constants, built once.
export const LOCAL_HIT: CacheMessage = Object.freeze({ level: 'local', result: 'hit' })
export const LOCAL_STALE: CacheMessage = Object.freeze({ level: 'local', result: 'stale' })
export const LOCAL_MISS: CacheMessage = Object.freeze({ level: 'local', result: 'miss' })
export const SHARED_HIT: CacheMessage = Object.freeze({ level: 'shared', result: 'hit' })
export const SHARED_MISS: CacheMessage = Object.freeze({ level: 'shared', result: 'miss' })
