import type { AuthenticatedKey } from './key-info.js'

/**
 * What a cache holds for a key id once its text has been verified with argon2. Never the key
 * itself: only a fingerprint of it, keyed by the server secret (see auth/fingerprint.ts).
 */
export interface CachedKey {
  /** Deeply frozen: it is what `request.apiKey` is set to. */
  key: AuthenticatedKey
  /** Fingerprint (option `secret`) of the key text that was verified. */
  fingerprint: string
  /** Fingerprint of the stored argon2 hash: tells a re-read whether the hash changed. */
  hashDigest: string
  /** Trusted without reading the database until then (ms since the epoch). */
  freshUntil: number
}
