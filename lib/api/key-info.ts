import type { KeyType } from '../db/schema.js'
import { keyIdentifier } from '../keys/key-text.js'
import { effectiveLimits, type Limits, type Plan } from '../ratelimit/plans.js'
import type { ApiKeyListing } from '../repositories/api-key.repository.js'

/** A key as listings show it: metadata only. */
export interface KeyInfo {
  name: string
  /** `<prefix>.<key id>`: public. */
  identifier: string
  /** ISO 8601, UTC. */
  created: string
  for: KeyType
  /** `*` or the permissions the key holds. */
  scopes: string[]
  plan: string
  /** The limits in force: the key's own where set, its plan's otherwise; null is unlimited. */
  limits: Limits
}

/** `planOf` returns the plan's limits (the default plan's when a plan was removed from the options). */
export function toKeyInfo (row: ApiKeyListing, planOf: (name: string) => Plan): KeyInfo {
  return {
    name: row.name,
    identifier: keyIdentifier(row.prefix, row.id),
    created: row.created_at.toISOString(),
    for: row.key_for,
    scopes: row.scopes,
    plan: row.plan,
    limits: effectiveLimits(planOf(row.plan), { perMinute: row.rate_limit_per_minute, perHour: row.rate_limit_per_hour })
  }
}
