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
}

export interface KeygateDatabase {
  keygate_api_keys: ApiKeyTable
}

export type ApiKeyRow = Selectable<ApiKeyTable>
export type NewApiKeyRow = Insertable<ApiKeyTable>
