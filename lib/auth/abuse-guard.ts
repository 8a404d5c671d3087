import { LRUCache } from 'lru-cache'

export interface AbuseGuardOptions {
  /** How long an unknown key id is remembered as unknown, in ms. */
  missTtlMs: number
  /** Failed argon2 verifications allowed per key id within `failureWindowMs`. */
  maxFailures: number
  failureWindowMs: number
  /** Key ids tracked at once, for misses and for failures each. */
  maxTracked: number
}

interface Failures {
  windowStart: number
  count: number
  /** Fingerprints of wrong secrets already seen: refused again without argon2. */
  fingerprints: Set<string>
}

// Enough to remember a handful of distinct wrong secrets per key without growing.
const MAX_REMEMBERED_FINGERPRINTS = 16

/**
 * Keeps garbage from reaching the database and wrong secrets from reaching argon2: unknown key ids
 * are remembered for a while, wrong secrets for a real key id are remembered by fingerprint, and
 * after `maxFailures` failures within a window a key id takes no new secrets until it ends.
 * In-process on purpose: what it protects is this process's CPU.
 */
export class AbuseGuard {
  readonly #missing: LRUCache<string, number>
  readonly #failures: LRUCache<string, Failures>
  readonly #options: AbuseGuardOptions

  constructor (options: AbuseGuardOptions) {
    this.#options = options
    this.#missing = new LRUCache({ max: options.maxTracked })
    this.#failures = new LRUCache({ max: options.maxTracked })
  }

  isKnownMissing (keyId: string, now: number): boolean {
    const until = this.#missing.get(keyId)
    return until !== undefined && now < until
  }

  rememberMissing (keyId: string, now: number): void {
    this.#missing.set(keyId, now + this.#options.missTtlMs)
  }

  /** True when this secret must be refused without running argon2. */
  isRefused (keyId: string, fingerprint: string, now: number): boolean {
    const failures = this.#current(keyId, now)
    if (failures === undefined) return false
    return failures.fingerprints.has(fingerprint) || failures.count >= this.#options.maxFailures
  }

  recordFailure (keyId: string, fingerprint: string, now: number): void {
    const failures = this.#current(keyId, now) ?? { windowStart: now, count: 0, fingerprints: new Set<string>() }
    failures.count++
    if (failures.fingerprints.size < MAX_REMEMBERED_FINGERPRINTS) failures.fingerprints.add(fingerprint)
    this.#failures.set(keyId, failures)
  }

  /** A key id that was just created, verified or deleted starts clean. */
  forget (keyId: string): void {
    this.#missing.delete(keyId)
    this.#failures.delete(keyId)
  }

  #current (keyId: string, now: number): Failures | undefined {
    const failures = this.#failures.get(keyId)
    if (failures !== undefined && now - failures.windowStart >= this.#options.failureWindowMs) {
      this.#failures.delete(keyId)
      return undefined
    }
    return failures
  }
}
