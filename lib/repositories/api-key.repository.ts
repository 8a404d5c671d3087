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

export async function countLiveKeys (trx: Transaction<KeygateDatabase>): Promise<number> {
  const { count } = await trx
    .selectFrom('keygate_api_keys')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('deleted_at', 'is', null)
    .executeTakeFirstOrThrow()
  return Number(count)
}

export async function liveNameExists (trx: Transaction<KeygateDatabase>, name: string): Promise<boolean> {
  const row = await trx
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

/** Marks the live key of this name deleted; returns its id, or undefined when there is none. */
export async function deleteLiveKeyByName (db: Db, name: string, at: Date): Promise<string | undefined> {
  const row = await db
    .updateTable('keygate_api_keys')
    .set({ deleted_at: at })
    .where('name', '=', name)
    .where('deleted_at', 'is', null)
    .returning('id')
    .executeTakeFirst()
  return row?.id
}
