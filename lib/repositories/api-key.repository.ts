import { type Kysely, type Transaction, sql } from 'kysely'
import type { ApiKeyRow, KeygateDatabase, KeyType, NewApiKeyRow } from '../db/schema.js'

type Db = Kysely<KeygateDatabase>

/** What a listing shows: never the hash. */
export type ApiKeyListing = Omit<ApiKeyRow, 'hash' | 'deleted_at' | 'seq'>

const LISTING_COLUMNS = ['id', 'prefix', 'name', 'key_for', 'created_at', 'scopes', 'plan', 'rate_limit_per_minute', 'rate_limit_per_hour'] as const

// One advisory lock serialises every create, so the limit and the name check cannot race.
const CREATE_LOCK = sql`select pg_advisory_xact_lock(hashtext('fastify-keygate:create'))`

/** Takes the create lock for the rest of the transaction. */
export async function lockForCreate (trx: Transaction<KeygateDatabase>): Promise<void> {
  await CREATE_LOCK.execute(trx)
}

/** Live keys now; under the create lock, a number no other create can change meanwhile. */
export async function countLiveKeys (db: Db): Promise<number> {
  const { count } = await db
    .selectFrom('keygate_api_keys')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('deleted_at', 'is', null)
    .executeTakeFirstOrThrow()
  return Number(count)
}

export async function liveNameExists (db: Db, name: string): Promise<boolean> {
  const row = await db
    .selectFrom('keygate_api_keys')
    .select('id')
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
export async function findLiveKeysByIds (db: Db, ids: readonly string[]): Promise<ApiKeyRow[]> {
  if (ids.length === 0) return []
  return await db
    .selectFrom('keygate_api_keys')
    .selectAll()
    .where('id', 'in', ids)
    .where('deleted_at', 'is', null)
    .execute()
}

export async function listLiveKeys (db: Db, filter: { keyFor?: KeyType, newestFirst?: boolean } = {}): Promise<ApiKeyListing[]> {
  const direction = filter.newestFirst === true ? 'desc' : 'asc'
  let query = db
    .selectFrom('keygate_api_keys')
    .select(LISTING_COLUMNS)
    .where('deleted_at', 'is', null)
    .orderBy('created_at', direction)
    .orderBy('seq', direction)
  if (filter.keyFor !== undefined) query = query.where('key_for', '=', filter.keyFor)
  return await query.execute()
}

/** The live key of this name, locked until the transaction ends: a delete checks it, then deletes it. */
export async function findLiveKeyForUpdate (trx: Transaction<KeygateDatabase>, name: string): Promise<Pick<ApiKeyRow, 'id' | 'scopes'> | undefined> {
  return await trx
    .selectFrom('keygate_api_keys')
    .select(['id', 'scopes'])
    .where('name', '=', name)
    .where('deleted_at', 'is', null)
    .forUpdate()
    .executeTakeFirst()
}

/** Marks a key deleted: it never authenticates again, and its name is free. */
export async function markDeleted (trx: Transaction<KeygateDatabase>, id: string, at: Date): Promise<void> {
  await trx.updateTable('keygate_api_keys').set({ deleted_at: at }).where('id', '=', id).execute()
}
