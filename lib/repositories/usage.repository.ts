import { type Kysely, type Transaction, sql } from 'kysely'
import type { KeygateDatabase } from '../db/schema.js'

type Db = Kysely<KeygateDatabase>

/** Requests one lineage made on one UTC day, counted by one instance since its last flush. */
export interface DayCount {
  lineage: string
  /** `YYYY-MM-DD`, UTC. */
  day: string
  requests: number
}

/** What one instance counted for one lineage since its last flush. */
export interface LineageTotal {
  lineage: string
  requests: number
  /** Its latest request. */
  lastUsed: Date
}

// A flush adds to every row of a lineage, and a rotation copies the old row's totals into a new
// row. Were a flush to start while a rotation holds the old row, its UPDATE would wait for that
// row, then add to it alone: the new row, committed after the UPDATE's snapshot, would miss the
// count. So a rotation holds this lock exclusively and flushes hold it shared (flushes of several
// instances do not wait for each other).
const TOTALS_LOCK = 'fastify-keygate:usage-totals'

/** Taken first in a flush: waits for a rotation copying totals to commit. */
export async function lockTotalsForFlush (trx: Transaction<KeygateDatabase>): Promise<void> {
  await sql`select pg_advisory_xact_lock_shared(hashtext(${TOTALS_LOCK}))`.execute(trx)
}

/** Taken first in a rotation, which copies a row's totals: no flush adds to them meanwhile. */
export async function lockTotalsForCopy (trx: Transaction<KeygateDatabase>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${TOTALS_LOCK}))`.execute(trx)
}

// Arrays bound as three parameters whatever the number of keys: a flush of 40,000 lineages stays
// one statement each, far below PostgreSQL's 65,535 parameters.

/** Adds each day's requests to the day's row of its lineage, creating the row on a first count. */
export async function addDailyUsage (trx: Transaction<KeygateDatabase>, counts: readonly DayCount[]): Promise<void> {
  if (counts.length === 0) return
  await trx
    .insertInto('keygate_key_usage')
    .columns(['lineage', 'day', 'requests'])
    .expression(sql`select * from unnest(
      ${counts.map((c) => c.lineage)}::text[], ${counts.map((c) => c.day)}::date[], ${counts.map((c) => String(c.requests))}::bigint[])`)
    .onConflict((oc) => oc.columns(['lineage', 'day']).doUpdateSet({
      requests: sql`${sql.ref('keygate_key_usage.requests')} + ${sql.ref('excluded.requests')}`
    }))
    .execute()
}

/**
 * Adds to the total and moves `last_used_at` forward on every row of each lineage: the live key
 * and the texts rotated away from it, so the total carries on whichever row a listing shows.
 * `greatest` keeps the latest of two instances' flushes, whichever commits last.
 */
export async function addKeyTotals (trx: Transaction<KeygateDatabase>, totals: readonly LineageTotal[]): Promise<void> {
  if (totals.length === 0) return
  await trx
    .updateTable('keygate_api_keys as k')
    .from(sql`unnest(
      ${totals.map((u) => u.lineage)}::text[], ${totals.map((u) => String(u.requests))}::bigint[], ${totals.map((u) => u.lastUsed.toISOString())}::timestamptz[])`
      .as(sql`used(lineage, requests, at)`))
    .set({
      requests: sql`${sql.ref('k.requests')} + ${sql.ref('used.requests')}`,
      last_used_at: sql`greatest(coalesce(${sql.ref('k.last_used_at')}, ${sql.ref('used.at')}), ${sql.ref('used.at')})`
    })
    .where(sql<boolean>`${sql.ref('k.lineage')} = ${sql.ref('used.lineage')}`)
    .execute()
}

/** One lineage's requests per day from `from` (`YYYY-MM-DD`, UTC) on; days without requests have no row. */
export async function dailyUsage (db: Db, lineage: string, from: string): Promise<Array<{ day: string, requests: number }>> {
  const rows = await db
    .selectFrom('keygate_key_usage')
    // As text: a `date` would come back as a local-time Date and shift across time zones.
    .select([sql<string>`to_char(day, 'YYYY-MM-DD')`.as('day'), 'requests'])
    .where('lineage', '=', lineage)
    .where('day', '>=', sql<Date>`cast(${from} as date)`)
    .orderBy('day')
    .execute()
  return rows.map((row) => ({ day: row.day, requests: Number(row.requests) }))
}
