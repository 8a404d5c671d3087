// The client's own types: the JSON the management routes send and take, as it is on the wire.
// Nothing here is imported from the server, so the client runs without fastify, kysely or pg.
// Dates stay ISO 8601 strings, exactly as the server sends them; only the rate-limit reset,
// which the server sends as a number, is turned into a Date.

export type KeyType = 'GCP' | 'AWS' | 'GENERIC' | 'ONBOARDING'

export type CreditsInterval = 'day' | 'month'

/** Requests per window; null is an unlimited window. */
export interface Limits {
  perMinute: number | null
  perHour: number | null
}

/** A key's credits as listings show them. */
export interface KeyCredits {
  /** Credits left now. */
  remaining: number
  /** At the start of each UTC day or month the credits left become `amount`; null: never. */
  refill: { amount: number, interval: CreditsInterval } | null
}

/** A key as the listings show it: metadata only, never the key text. */
export interface KeyInfo {
  name: string
  /** `<prefix>.<key id>`: public. */
  identifier: string
  /** ISO 8601, UTC: when this key text was made (by create or by a rotation). */
  created: string
  for: KeyType
  /** `*` or the permissions the key holds. */
  scopes: string[]
  plan: string
  /** The limits in force. */
  limits: Limits
  /** ISO 8601, UTC: when the key stops working; null: never. */
  expires: string | null
  /** The host's user id of its owner; null: a service account. */
  owner: string | null
  /** True for a key with no owner. */
  serviceAccount: boolean
  /** True once the key text is older than the server's `rotateAfterDays`. */
  rotationDue: boolean
  /** The text this key was rotated from, while its grace period lasts (`sunset` ISO 8601). */
  rotatingFrom: { identifier: string, sunset: string } | null
  /** ISO 8601, UTC: the key's latest counted request; null: none yet. */
  lastUsed: string | null
  /** Counted requests in all. */
  requests: number
  /** What is left of its credits now; null: none. */
  credits: KeyCredits | null
}

/** The answer of create and rotate: the key, with its full text, shown this once. */
export interface CreatedKey extends KeyInfo {
  apiKey: string
}

/** Usage credits as create and update take them. */
export interface CreditsInput {
  /** A whole number, 0 or more. */
  remaining: number
  refill?: { amount: number, interval: CreditsInterval }
}

export interface CreateKeyInput {
  /** 1 to 128 characters, no control characters; unique among the tenant's live keys. */
  name: string
  owner?: string
  /** Default `GENERIC`. */
  keyFor?: KeyType
  /** One of the server's prefixes. Default: its first. */
  prefix?: string
  /** Default `['*']`. */
  scopes?: string[]
  plan?: string
  rateLimit?: Partial<Limits>
  /** ISO 8601 with a time zone, or a Date. Not with `expiresInDays`. */
  expiresAt?: string | Date
  expiresInDays?: number
  credits?: CreditsInput
}

/** Any of these, at least one; null clears `owner`, `rateLimit`, `expiresAt` or `credits`. */
export interface UpdateKeyInput {
  name?: string
  owner?: string | null
  scopes?: string[]
  plan?: string
  rateLimit?: Partial<Limits> | null
  expiresAt?: string | Date | null
  credits?: CreditsInput | null
}

export interface RotateKeyInput {
  /** How long the old text keeps working. Default 0: it stops at once. */
  gracePeriodSeconds?: number
}

export interface ListKeysQuery {
  /** Only the keys of this owner. */
  owner?: string | undefined
}

export interface UsageQuery {
  /** 1 to 366, ending today (UTC). Default (the server's): 30. */
  days?: number | undefined
}

/** A key's requests per UTC day. */
export interface KeyUsage {
  name: string
  identifier: string
  /** Oldest first; `date` is `YYYY-MM-DD`. */
  days: Array<{ date: string, requests: number }>
}

export type AuditAction = 'key.created' | 'key.updated' | 'key.rotated' | 'key.deleted' | 'key.expired' | 'access.denied'

/** A key (`identifier`), a signed-in person (`user`), or the server itself (`system`). */
export type AuditActor = { identifier: string } | { user: string } | { system: string }

export interface AuditTarget {
  identifier: string | null
  name: string | null
  /** A rotation's: the identifier it replaced. */
  from?: string
}

export interface AuditEvent {
  /** Opaque, increasing. */
  id: string
  /** ISO 8601. */
  at: string
  action: AuditAction
  actor: AuditActor
  target: AuditTarget | null
  ip: string | null
  requestId: string | null
}

/** Filters of the audit log. */
export interface AuditFilter {
  action?: AuditAction | undefined
  /** At or after; ISO 8601 or a Date. */
  since?: string | Date | undefined
  /** Before; ISO 8601 or a Date. */
  until?: string | Date | undefined
  /** A key's identifier or name. */
  target?: string | undefined
}

export interface AuditQuery extends AuditFilter {
  /** 1 to 500. Default (the server's): 100. */
  limit?: number | undefined
  /** `next` of the page before. */
  cursor?: string | undefined
}

export type AuditFormat = 'ndjson' | 'csv'

export interface AuditExportQuery extends AuditFilter {
  /** Default `ndjson`. */
  format?: AuditFormat | undefined
}

export interface AuditPage {
  /** Newest first. */
  events: AuditEvent[]
  /** The cursor of the next (older) page; null on the last one. */
  next: string | null
}

/**
 * The rate-limit window with the fewest requests left, from the response's headers
 * (`X-RateLimit-*`, or the IETF draft's `RateLimit` and `RateLimit-Policy`).
 */
export interface RateLimitState {
  /** Requests the window allows. */
  limit: number
  /** Requests left in it. */
  remaining: number
  /** When the window ends. */
  reset: Date
}

/**
 * The client's key was rotated away and works until `sunset`: the response's `Deprecation`
 * (RFC 9745) and `Sunset` (RFC 8594) headers. Switch to the new key before then.
 */
export interface KeyDeprecation {
  /** When the key was rotated away. */
  at: Date
  /** When it stops working; null when the response did not say. */
  sunset: Date | null
}

/** What every method answers: the body, and what the response said of the caller's rate limit. */
export interface KeygateResult<T> {
  data: T
  /** null when the response carried no rate-limit headers (a key without rate limits, a signed-in person). */
  rateLimit: RateLimitState | null
  /** Set while the client's key is in the grace period of a rotation; null otherwise. */
  deprecation: KeyDeprecation | null
  /** The HTTP status (200). */
  status: number
}
