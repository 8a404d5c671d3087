import type { CreditsInterval, KeyType } from '../db/schema.js'
import { keyIdentifier } from '../keys/key-text.js'
import { effectiveLimits, type Limits, type Plan } from '../ratelimit/plans.js'
import type { ApiKeyListing } from '../repositories/api-key.repository.js'

/** What a key is, wherever it is shown: in listings, in a create's answer, as `request.apiKey`. */
export interface KeyRecord {
  name: string
  /** `<prefix>.<key id>`: public. */
  identifier: string
  /** ISO 8601, UTC: when this key text was made (by create or by a rotation). */
  created: string
  for: KeyType
  /** `*` or the permissions the key holds. */
  scopes: string[]
  plan: string
  /** The limits in force: the key's own where set, its plan's otherwise; null is unlimited. */
  limits: Limits
  /** ISO 8601, UTC: when the key stops authenticating; null: never. */
  expires: string | null
  /** The host's user id of its owner; null: a service account, tied to no user. */
  owner: string | null
}

/** A key as listings show it: metadata only, never the key. */
export interface KeyInfo extends KeyRecord {
  /** True for a key with no owner. */
  serviceAccount: boolean
  /** True once the key text is older than the `rotateAfterDays` option. */
  rotationDue: boolean
  /** The text this key was rotated from, while its grace period lasts; null otherwise. */
  rotatingFrom: { identifier: string, sunset: string } | null
  /**
   * ISO 8601, UTC: the key's latest admitted request, across rotations; null: none yet. As of the
   * last usage flush (option `usageFlushMs`) of each instance.
   */
  lastUsed: string | null
  /** Admitted requests in all, across rotations, as of the last usage flush. */
  requests: number
  /** Usage credits: what is left now and how they refill; null when the key has none (unlimited). */
  credits: KeyCredits | null
}

/** A key's credits as listings show them. */
export interface KeyCredits {
  /** Credits left now: in the current period, what was set (or refilled) less what was used. */
  remaining: number
  /** At the start of each UTC day or month the credits left become `amount`; null: never. */
  refill: { amount: number, interval: CreditsInterval } | null
}

/** A key's requests per UTC day, as `GET {routePrefix}/:name/usage` answers them. */
export interface KeyUsage {
  name: string
  identifier: string
  /** Every day of the range, oldest first, ending today (UTC); days without requests have 0. */
  days: Array<{ date: string, requests: number }>
}

/** `request.apiKey`: the key a request authenticated with. Deeply frozen. */
export interface AuthenticatedKey extends KeyRecord {
  /** The 8-character key id. */
  id: string
  /** The tenant the key belongs to: management by this key acts there only. */
  tenant: string
}

export type ToKeyRecord = (row: ApiKeyListing) => KeyRecord

// Enough distinct plans, types, scope lists and limits for any real configuration.
const MAX_SHARED = 1000

/**
 * Turns rows into key records. Thousands of cached keys share a handful of plans, types, scope
 * lists and limits, so each distinct one is kept once, frozen, since every key with it holds the
 * same object. `planOf` returns a plan's limits (the default plan's for a plan removed from the
 * options).
 */
export function createKeyRecordMapper (planOf: (name: string) => Plan): ToKeyRecord {
  const shared = new Map<string, unknown>()
  function share<T> (id: string, make: () => T): T {
    let value = shared.get(id) as T | undefined
    if (value === undefined) {
      value = make()
      if (shared.size < MAX_SHARED) shared.set(id, value)
    }
    return value
  }

  return (row) => {
    const own = { perMinute: row.rate_limit_per_minute, perHour: row.rate_limit_per_hour }
    return {
      name: row.name,
      identifier: keyIdentifier(row.prefix, row.id),
      created: row.created_at.toISOString(),
      for: share(`for:${row.key_for}`, () => row.key_for),
      scopes: share(`scopes:${row.scopes.join(' ')}`, () => Object.freeze([...row.scopes]) as string[]),
      plan: share(`plan:${row.plan}`, () => row.plan),
      limits: share(`limits:${row.plan}:${String(own.perMinute)}:${String(own.perHour)}`, () => Object.freeze(effectiveLimits(planOf(row.plan), own))),
      expires: row.expires_at?.toISOString() ?? null,
      owner: row.owner
    }
  }
}
