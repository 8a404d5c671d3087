import { type Kysely, type Transaction, sql } from 'kysely'
import type { ApiKeyRow, KeygateDatabase, KeyType, NewApiKeyRow } from '../db/schema.js'

type Db = Kysely<KeygateDatabase>

/** What a listing shows: never the hash. */
export type ApiKeyListing = Omit<ApiKeyRow, 'hash' | 'deleted_at' | 'seq' | 'sunset_at' | 'expiry_recorded'>

const LISTING_COLUMNS = [
  'id', 'prefix', 'name', 'key_for', 'created_at', 'scopes', 'plan', 'rate_limit_per_minute', 'rate_limit_per_hour',
  'expires_at', 'lineage', 'last_used_at', 'requests',
  'credits_remaining', 'credits_refill_amount', 'credits_refill_interval', 'credits_set_at',
  'tenant', 'owner'
] as const

/**
 * Where a management call acts: one tenant's keys, in one schema. `lockSpace` names the schema in
 * the advisory locks, which PostgreSQL holds for the whole database.
 */
export interface KeySpace {
  tenant: string
  lockSpace: string
}

async function advisoryLock (trx: Transaction<KeygateDatabase>, name: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(trx)
}

/**
 * Takes the create lock of one tenant for the rest of the transaction, so its key limit and its
 * name check cannot race; creates for other tenants go on meanwhile.
 */
export async function lockForCreate (trx: Transaction<KeygateDatabase>, space: KeySpace): Promise<void> {
  await advisoryLock(trx, `fastify-keygate:create:${space.lockSpace}:${space.tenant}`)
}

/**
 * Takes the lock of one key name for the rest of the transaction: changes to one key (update,
 * rotation, delete) run one after another, each reading what the one before it left.
 */
export async function lockKeyName (trx: Transaction<KeygateDatabase>, space: KeySpace, name: string): Promise<void> {
  await advisoryLock(trx, `fastify-keygate:name:${space.lockSpace}:${space.tenant}:${name}`)
}

/** A tenant's live keys now; under its create lock, a number no other create can change meanwhile. */
export async function countLiveKeys (db: Db, tenant: string): Promise<number> {
  const { count } = await db
    .selectFrom('keygate_api_keys')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('tenant', '=', tenant)
    .where('deleted_at', 'is', null)
    .executeTakeFirstOrThrow()
  return Number(count)
}

export async function liveNameExists (db: Db, tenant: string, name: string): Promise<boolean> {
  const row = await db
    .selectFrom('keygate_api_keys')
    .select('id')
    .where('tenant', '=', tenant)
    .where('name', '=', name)
    .where('deleted_at', 'is', null)
    .executeTakeFirst()
  return row !== undefined
}

/** Inserts a key unless its id is taken; returns false on an id collision so the caller can draw again. */
export async function insertKey (trx: Transaction<KeygateDatabase>, row: NewApiKeyRow): Promise<boolean> {
  const result = await trx
    .insertInto('keygate_api_keys')
    .values(row)
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst()
  return result.numInsertedOrUpdatedRows === 1n
}

/** The live keys among these ids, hashes included: for authentication only, many keys in one read. */
export async function findKeysToAuthenticate (db: Db, ids: readonly string[]): Promise<ApiKeyRow[]> {
  if (ids.length === 0) return []
  return await db
    .selectFrom('keygate_api_keys')
    .selectAll()
    .where('id', 'in', ids)
    .where((eb) => eb.or([eb('deleted_at', 'is', null), eb('sunset_at', 'is not', null)]))
    .execute()
}

export async function listLiveKeys (db: Db, tenant: string, filter: { keyFor?: KeyType, name?: string, owner?: string, newestFirst?: boolean } = {}): Promise<ApiKeyListing[]> {
  const direction = filter.newestFirst === true ? 'desc' : 'asc'
  let query = db
    .selectFrom('keygate_api_keys')
    .select(LISTING_COLUMNS)
    .where('tenant', '=', tenant)
    .where('deleted_at', 'is', null)
    .orderBy('created_at', direction)
    .orderBy('seq', direction)
  if (filter.keyFor !== undefined) query = query.where('key_for', '=', filter.keyFor)
  if (filter.name !== undefined) query = query.where('name', '=', filter.name)
  if (filter.owner !== undefined) query = query.where('owner', '=', filter.owner)
  return await query.execute()
}

/** The live key of this name, locked until the transaction ends: a change checks it, then makes it. */
export async function findLiveKeyForUpdate (trx: Transaction<KeygateDatabase>, tenant: string, name: string): Promise<ApiKeyRow | undefined> {
  return await trx
    .selectFrom('keygate_api_keys')
    .selectAll()
    .where('tenant', '=', tenant)
    .where('name', '=', name)
    .where('deleted_at', 'is', null)
    .forUpdate()
    .executeTakeFirst()
}

/** A key rotated away whose grace period lasts past `at`, by the name it shares with its successor. */
export interface RotatingKey {
  name: string
  prefix: string
  id: string
  sunset_at: Date
}

export async function listRotatingKeys (db: Db, tenant: string, at: Date): Promise<RotatingKey[]> {
  return await db
    .selectFrom('keygate_api_keys')
    .select(['name', 'prefix', 'id', 'sunset_at as sunset_at'])
    .where('tenant', '=', tenant)
    .where('deleted_at', 'is not', null)
    .where('sunset_at', '>', at)
    .$narrowType<{ sunset_at: Date }>()
    .execute()
}

/**
 * Marks a key deleted: its name is free, and it never authenticates again; or, given a sunset,
 * not after that (a rotation's grace period).
 */
export async function markDeleted (trx: Transaction<KeygateDatabase>, id: string, at: Date, sunset: Date | null = null): Promise<void> {
  await trx.updateTable('keygate_api_keys').set({ deleted_at: at, sunset_at: sunset }).where('id', '=', id).execute()
}

/** Ends now the grace of every key rotated away from this name; returns their ids. */
export async function endGracePeriods (trx: Transaction<KeygateDatabase>, tenant: string, name: string, at: Date): Promise<string[]> {
  const rows = await trx
    .updateTable('keygate_api_keys')
    .set({ sunset_at: at })
    .where('tenant', '=', tenant)
    .where('name', '=', name)
    .where('deleted_at', 'is not', null)
    .where('sunset_at', '>', at)
    .returning('id')
    .execute()
  return rows.map((row) => row.id)
}

export type KeyChanges = Partial<Pick<ApiKeyRow, 'name' | 'scopes' | 'plan' | 'rate_limit_per_minute' | 'rate_limit_per_hour' | 'expires_at' | 'expiry_recorded' | 'owner' |
  'credits_remaining' | 'credits_refill_amount' | 'credits_refill_interval' | 'credits_set_at'>>

/**
 * Changes the live key of this name and, so they stay the same key, any text rotated away from
 * it whose grace lasts past `at`. Returns the ids changed.
 */
export async function updateKeys (trx: Transaction<KeygateDatabase>, tenant: string, name: string, at: Date, changes: KeyChanges): Promise<string[]> {
  const rows = await trx
    .updateTable('keygate_api_keys')
    .set(changes)
    .where('tenant', '=', tenant)
    .where('name', '=', name)
    .where((eb) => eb.or([eb('deleted_at', 'is', null), eb('sunset_at', '>', at)]))
    .returning('id')
    .execute()
  return rows.map((row) => row.id)
}
