import { LRUCache } from 'lru-cache'
import type { KeyDenial } from './denial.js'

export interface AbuseGuardOptions {
  /** How long an identifier that the database does not hold is remembered as missing, in ms. */
  missTtlMs: number
  /** argon2 verifications allowed per key id within `windowMs`, counting those still running. */
  maxVerifications: number
  windowMs: number
  /** Identifiers and key ids tracked at once, for misses and for verifications each. */
  maxTracked: number
}

/** Wrong secrets seen for a key id within its window: refused again without argon2. */
interface WrongSecrets {
  windowStart: number
  fingerprints: Set<string>
}

/** Why an identifier is remembered: nothing by that name, or a row that can no longer pass. */
export type MissingReason = Extract<KeyDenial, 'unknown' | 'deleted' | 'expired'>
// Kept in the same number as the time it is remembered until (until × 4 + reason): no object per miss.
const MISSING_REASONS: readonly MissingReason[] = ['unknown', 'deleted', 'expired']
const REASON_SPAN = 4

// Enough to remember a handful of distinct wrong secrets per key without growing.
const MAX_REMEMBERED_FINGERPRINTS = 16
// A window's start and its count share one number (start × COUNT_SPAN + count): every verified
// key has one, so it must stay small. Exact while start × COUNT_SPAN < 2^53, until the year 2255.
const COUNT_SPAN = 1024

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
  /** Per key id: its window's start and the verifications started in it, packed. */
  readonly #started: LRUCache<string, number>
  /** Per key id with a wrong secret this window: the fingerprints (few keys have any). */
  readonly #wrong: LRUCache<string, WrongSecrets>
  readonly #options: AbuseGuardOptions

  constructor (options: AbuseGuardOptions) {
    if (options.maxVerifications >= COUNT_SPAN) throw new RangeError(`maxVerifications must be below ${COUNT_SPAN}`)
    this.#options = options
    this.#missing = new LRUCache({ max: options.maxTracked })
    this.#started = new LRUCache({ max: options.maxTracked })
    this.#wrong = new LRUCache({ max: options.maxTracked })
  }

  isKnownMissing (identifier: string, now: number): boolean {
    return this.missing(identifier, now) !== null
  }

  /** Why this identifier is remembered as one that cannot pass, or null. */
  missing (identifier: string, now: number): MissingReason | null {
    const packed = this.#missing.get(identifier)
    if (packed === undefined) return null
    const until = Math.floor(packed / REASON_SPAN)
    return now < until ? MISSING_REASONS[packed - until * REASON_SPAN] as MissingReason : null
  }

  rememberMissing (identifier: string, now: number, reason: MissingReason = 'unknown'): void {
    this.#missing.set(identifier, (now + this.#options.missTtlMs) * REASON_SPAN + MISSING_REASONS.indexOf(reason))
  }

  /** True when this secret must be refused without running argon2. */
  isRefused (keyId: string, fingerprint: string, now: number): boolean {
    return this.refusal(keyId, fingerprint, now) !== null
  }

  /**
   * Why this secret must be refused without running argon2 (a wrong secret seen this window, or
   * the key id's budget spent), or null.
   */
  refusal (keyId: string, fingerprint: string, now: number): 'wrong_secret' | 'throttled' | null {
    const window = this.#window(keyId, now)
    if (window === undefined) return null
    if (this.#wrong.get(keyId)?.fingerprints.has(fingerprint) === true) return 'wrong_secret'
    return window.count >= this.#options.maxVerifications ? 'throttled' : null
  }

  /** Counts a verification about to start. False when it must not: refuse without argon2. */
  begin (keyId: string, fingerprint: string, now: number): boolean {
    if (this.isRefused(keyId, fingerprint, now)) return false
    const window = this.#window(keyId, now) ?? { start: now, count: 0 }
    this.#started.set(keyId, window.start * COUNT_SPAN + window.count + 1)
    return true
  }

  /** A verification that never ran (argon2 was too busy) gives its turn back. */
  abandon (keyId: string, now: number): void {
    const window = this.#window(keyId, now)
    if (window !== undefined && window.count > 0) this.#started.set(keyId, window.start * COUNT_SPAN + window.count - 1)
  }

  /** A wrong secret: this fingerprint is refused without argon2 for the rest of the window. */
  failed (keyId: string, fingerprint: string, now: number): void {
    const window = this.#window(keyId, now)
    if (window === undefined) return
    let wrong = this.#wrong.get(keyId)
    if (wrong?.windowStart !== window.start) this.#wrong.set(keyId, wrong = { windowStart: window.start, fingerprints: new Set() })
    if (wrong.fingerprints.size < MAX_REMEMBERED_FINGERPRINTS) wrong.fingerprints.add(fingerprint)
  }

  /** A key id just deleted starts clean (it can never come back, and its memory is of no use). */
  forget (keyId: string): void {
    this.#started.delete(keyId)
    this.#wrong.delete(keyId)
  }

  /** The key id's current window, or undefined (and forgotten) once it has ended. */
  #window (keyId: string, now: number): { start: number, count: number } | undefined {
    const packed = this.#started.get(keyId)
    if (packed === undefined) return undefined
    const start = Math.floor(packed / COUNT_SPAN)
    // Callers' clocks may lag a little behind the window's start (a read ago); only a window
    // ended, or a clock stepped back by more than a window, starts a new one.
    const age = now - start
    if (age >= this.#options.windowMs || age <= -this.#options.windowMs) {
      this.forget(keyId)
      return undefined
    }
    return { start, count: packed - start * COUNT_SPAN }
  }
}
