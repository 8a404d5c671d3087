import { LRUCache } from 'lru-cache'

export interface AbuseGuardOptions {
  /** How long an identifier that the database does not hold is remembered as missing, in ms. */
  missTtlMs: number
  /** argon2 verifications allowed per key id within `windowMs`, counting those still running. */
  maxVerifications: number
  windowMs: number
  /** Identifiers and key ids tracked at once, for misses and for verifications each. */
  maxTracked: number
}

interface Verifications {
  windowStart: number
  /** Started in this window, finished or not. */
  count: number
  /** Fingerprints of wrong secrets already seen: refused again without argon2. */
  wrong: Set<string>
}

// Enough to remember a handful of distinct wrong secrets per key without growing.
const MAX_REMEMBERED_FINGERPRINTS = 16

/**
 * Keeps garbage from reaching the database and wrong secrets from reaching argon2. Identifiers
 * (prefix and key id: what was looked up) that the database does not hold are remembered for a
 * while; a key id gets at most `maxVerifications` argon2 runs per window, counted when they start,
 * so a burst of distinct wrong secrets sent at once costs no more than the same burst sent slowly.
 * Nothing here is consulted for a key text whose fingerprint is already cached: a verified key
 * is never refused because of what others sent. In-process on purpose: it protects this
 * process's CPU.
 */
export class AbuseGuard {
  readonly #missing: LRUCache<string, number>
  readonly #verifications: LRUCache<string, Verifications>
  readonly #options: AbuseGuardOptions

  constructor (options: AbuseGuardOptions) {
    this.#options = options
    this.#missing = new LRUCache({ max: options.maxTracked })
    this.#verifications = new LRUCache({ max: options.maxTracked })
  }

  isKnownMissing (identifier: string, now: number): boolean {
    const until = this.#missing.get(identifier)
    return until !== undefined && now < until
  }

  rememberMissing (identifier: string, now: number): void {
    this.#missing.set(identifier, now + this.#options.missTtlMs)
  }

  /** True when this secret must be refused without running argon2. */
  isRefused (keyId: string, fingerprint: string, now: number): boolean {
    const verifications = this.#current(keyId, now)
    if (verifications === undefined) return false
    return verifications.wrong.has(fingerprint) || verifications.count >= this.#options.maxVerifications
  }

  /** Counts a verification about to start. False when it must not: refuse without argon2. */
  begin (keyId: string, fingerprint: string, now: number): boolean {
    if (this.isRefused(keyId, fingerprint, now)) return false
    const verifications = this.#current(keyId, now) ?? { windowStart: now, count: 0, wrong: new Set<string>() }
    verifications.count++
    this.#verifications.set(keyId, verifications)
    return true
  }

  /** A verification that never ran (argon2 was too busy) gives its turn back. */
  abandon (keyId: string, now: number): void {
    const verifications = this.#current(keyId, now)
    if (verifications !== undefined && verifications.count > 0) verifications.count--
  }

  /** A wrong secret: this fingerprint is refused without argon2 for the rest of the window. */
  failed (keyId: string, fingerprint: string, now: number): void {
    const verifications = this.#current(keyId, now)
    if (verifications !== undefined && verifications.wrong.size < MAX_REMEMBERED_FINGERPRINTS) verifications.wrong.add(fingerprint)
  }

  /** A key id just deleted starts clean (it can never come back, and its memory is of no use). */
  forget (keyId: string): void {
    this.#verifications.delete(keyId)
  }

  #current (keyId: string, now: number): Verifications | undefined {
    const verifications = this.#verifications.get(keyId)
    // Callers' clocks may lag a little behind the window's start (a read ago); only a window
    // ended, or a clock stepped back by more than a window, starts a new one.
    const age = verifications === undefined ? 0 : now - verifications.windowStart
    if (verifications !== undefined && (age >= this.#options.windowMs || age <= -this.#options.windowMs)) {
      this.#verifications.delete(keyId)
      return undefined
    }
    return verifications
  }
}
