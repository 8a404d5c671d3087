import type { ApiKeyRow, CreditsInterval } from '../db/schema.js'

/** A key's credits as set by create or update: the count starts over from `setAt`. */
export interface Credits {
  /** Credits left at `setAt`. */
  remaining: number
  /** At the start of each UTC day or month, the credits left become `amount`. */
  refill: { amount: number, interval: CreditsInterval } | null
  /** ms since the epoch. */
  setAt: number
}

/** A key rotated away whose grace period still runs: its responses carry `Deprecation` and `Sunset`. */
export interface Deprecation {
  /** When it was rotated away, ms since the epoch. */
  at: number
  /** When its grace ends, ms since the epoch. */
  sunset: number
}

type LifecycleColumns = Pick<ApiKeyRow, 'deleted_at' | 'sunset_at' | 'expires_at'>

/** The moment the key stops authenticating (its expiry, or the end of its grace), or null: never. */
export function notAfterOf (row: LifecycleColumns): number | null {
  const expires = row.expires_at?.getTime() ?? null
  if (row.deleted_at === null) return expires
  // Rotated away: until its sunset; deleted outright: already over.
  const sunset = row.sunset_at?.getTime() ?? row.deleted_at.getTime()
  return expires === null ? sunset : Math.min(expires, sunset)
}

/** True while a key authenticates: not deleted (or in its grace period) and not expired. */
export function isLiveAt (row: LifecycleColumns, at: number): boolean {
  const notAfter = notAfterOf(row)
  return notAfter === null || at < notAfter
}

export function deprecationOf (row: LifecycleColumns): Deprecation | null {
  if (row.deleted_at === null || row.sunset_at === null) return null
  return { at: row.deleted_at.getTime(), sunset: row.sunset_at.getTime() }
}

export function creditsOf (row: Pick<ApiKeyRow, 'credits_remaining' | 'credits_refill_amount' | 'credits_refill_interval' | 'credits_set_at'>): Credits | null {
  if (row.credits_remaining === null || row.credits_set_at === null) return null
  const refill = row.credits_refill_amount === null || row.credits_refill_interval === null
    ? null
    : { amount: row.credits_refill_amount, interval: row.credits_refill_interval }
  return { remaining: row.credits_remaining, refill, setAt: row.credits_set_at.getTime() }
}
