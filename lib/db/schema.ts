import type { ColumnType, Generated, Insertable, Selectable } from 'kysely'

export const KEY_TYPES = ['GCP', 'AWS', 'GENERIC', 'ONBOARDING'] as const
export type KeyType = typeof KEY_TYPES[number]

export interface ApiKeyTable {
  /** The 8-character key id from the key text; public. */
  id: string
  prefix: string
  name: string
  key_for: KeyType
  /** argon2id PHC string of the whole key text. Never the key, never a fast hash. */
  hash: string
  created_at: ColumnType<Date, Date, never>
  /** Set by delete; a deleted key never authenticates again and frees its name. */
  deleted_at: Date | null
  /** Row sequence: orders keys created within the same millisecond. */
  seq: Generated<string>
  /** `*` or scopes of the vocabulary (`namespace:*` allowed). */
  scopes: string[]
  plan: string
  /** Per-key limits; null takes the plan's. */
  rate_limit_per_minute: number | null
  rate_limit_per_hour: number | null
  /** When the key stops authenticating on its own; null: never. */
  expires_at: Date | null
  /** Set on a key rotated away with a grace period (deleted_at is the rotation): it works until then. */
  sunset_at: Date | null
  /** The id of the key this one was rotated from, first to last: rotation keeps it. Counters and usage are per lineage. */
  lineage: string
  /** Written by the usage flush, never per request. */
  last_used_at: Date | null
  requests: ColumnType<string, string | undefined, string>
  /** Credits left when they were last set (null: the key has no credits), and how they refill. */
  credits_remaining: number | null
  credits_refill_amount: number | null
  credits_refill_interval: CreditsInterval | null
  /** When credits were last set: their count starts over from here. */
  credits_set_at: Date | null
  /** Chosen by the host; names, listings and the key limit are per tenant. A key never moves. */
  tenant: ColumnType<string, string | undefined, never>
  /** The host's user id of the key's owner; null: a service account. */
  owner: string | null
  /** Set when the key's expiry has its `key.expired` audit event. */
  expiry_recorded: Generated<boolean>
}

export const CREDITS_INTERVALS = ['day', 'month'] as const
export type CreditsInterval = typeof CREDITS_INTERVALS[number]

/** Requests per key lineage per UTC day. */
export interface KeyUsageTable {
  lineage: string
  day: ColumnType<Date, string, string>
  requests: ColumnType<string, number | string, string>
}

/** One audit event; see lib/audit/audit-event.ts for its public shape. Never anything secret. */
export interface AuditEventTable {
  /** bigserial: pg hands it over as a string. Orders events, newest last. */
  id: Generated<string>
  at: ColumnType<Date, Date, never>
  tenant: string
  action: string
  actor: ColumnType<Record<string, unknown>, string, never>
  target: ColumnType<Record<string, unknown> | null, string | null, never>
  ip: string | null
  request_id: string | null
}

export interface KeygateDatabase {
  keygate_api_keys: ApiKeyTable
  keygate_key_usage: KeyUsageTable
  keygate_audit_events: AuditEventTable
}

export type ApiKeyRow = Selectable<ApiKeyTable>
export type NewApiKeyRow = Insertable<ApiKeyTable>
