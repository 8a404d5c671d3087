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
}

export interface KeygateDatabase {
  keygate_api_keys: ApiKeyTable
}

export type ApiKeyRow = Selectable<ApiKeyTable>
export type NewApiKeyRow = Insertable<ApiKeyTable>
