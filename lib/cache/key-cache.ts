import type { AuthenticatedKey } from '../auth/authenticator.js'
import type { MaybePromise } from '../maybe-promise.js'

/**
 * What the cache holds for a key id once its text has been verified with argon2. Never the key
 * itself: only a fingerprint of it, keyed by the server secret (see auth/fingerprint.ts).
 */
export interface CachedKey {
  key: AuthenticatedKey
  /** Fingerprint (option `secret`) of the key text that was verified. */
  fingerprint: string
  /** Fingerprint of the stored argon2 hash: tells a refresh whether the hash changed. */
  hashDigest: string
  /** Trusted without reading the database until then (ms since the epoch). */
  freshUntil: number
}

/**
 * The cache in front of the database, as the authentication hook uses it. Implementations
 * never throw: a cache that cannot answer is a miss.
 */
export interface KeyCache {
  /** Synchronous when the answer is in this process (the hot path), a promise otherwise. */
  get (keyId: string): MaybePromise<CachedKey | undefined>
  set (keyId: string, entry: CachedKey): Promise<void>
  /** Forgets a key here and wherever else the cache reaches (other instances too). */
  delete (keyId: string): Promise<void>
  /**
   * Registers a listener for evictions decided elsewhere: another instance deleted `keyId`, or
   * (null) everything must be dropped because messages may have been missed.
   */
  onInvalidate (listener: (keyId: string | null) => void): void
  /** Releases what the cache opened (a subscriber connection). */
  close (): Promise<void>
}
