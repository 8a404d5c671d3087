import { type Kysely, sql } from 'kysely'
import type { AuditAction, AuditActor, AuditEvent, AuditTarget } from '../audit/audit-event.js'
import type { KeygateDatabase } from '../db/schema.js'

type Db = Kysely<KeygateDatabase>

/** An event to write: in the transaction of the change it records, so neither is without the other. */
export interface NewAuditEvent {
  at: Date
  tenant: string
  action: AuditAction
  actor: AuditActor
  target: AuditTarget | null
  ip: string | null
  requestId: string | null
}

export async function recordEvent (db: Db, event: NewAuditEvent): Promise<void> {
  await db.insertInto('keygate_audit_events').values(columnsOf(event)).execute()
}

function columnsOf (event: NewAuditEvent) {
  return {
    at: event.at,
    tenant: event.tenant,
    action: event.action,
    actor: JSON.stringify(event.actor),
    target: event.target === null ? null : JSON.stringify(event.target),
    ip: event.ip,
    request_id: event.requestId
  }
}

export interface AuditFilter {
  /** Only events older than this id (the cursor). */
  before?: string
  limit: number
  action?: AuditAction
  since?: Date
  until?: Date
  /** The target's identifier or name. */
  target?: string
}

/** A page of one tenant's events, newest first (by id: keyset pagination, no offset). */
export async function listEvents (db: Db, tenant: string, filter: AuditFilter): Promise<AuditEvent[]> {
  let query = db
    .selectFrom('keygate_audit_events')
    .select(['id', 'at', 'action', 'actor', 'target', 'ip', 'request_id'])
    .where('tenant', '=', tenant)
    .orderBy('id', 'desc')
    .limit(filter.limit)
  if (filter.before !== undefined) query = query.where('id', '<', filter.before)
  if (filter.action !== undefined) query = query.where('action', '=', filter.action)
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since)
  if (filter.until !== undefined) query = query.where('at', '<', filter.until)
  if (filter.target !== undefined) {
    const target = filter.target
    query = query.where((eb) => eb.or([
      eb(sql`target->>'identifier'`, '=', target),
      eb(sql`target->>'name'`, '=', target)
    ]))
  }
  const rows = await query.execute()
  return rows.map((row) => ({
    id: String(row.id),
    at: row.at.toISOString(),
    action: row.action as AuditAction,
    actor: row.actor as AuditActor,
    target: targetOf(row.target as AuditTarget | null),
    ip: row.ip,
    requestId: row.request_id
  }))
}

/** In the documented key order (jsonb keeps its own), so an export reads the same as a page. */
function targetOf (target: AuditTarget | null): AuditTarget | null {
  if (target === null) return null
  const { identifier, name, from } = target
  return from === undefined ? { identifier, name } : { identifier, name, from }
}

/** Deletes up to `batch` events older than `date`; returns how many went. */
export async function deleteEventsBefore (db: Db, date: Date, batch: number): Promise<number> {
  const result = await db
    .deleteFrom('keygate_audit_events')
    .where('id', 'in', (eb) => eb.selectFrom('keygate_audit_events').select('id').where('at', '<', date).limit(batch))
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** A key past its expiry whose event is still to write. */
export interface ExpiredKey {
  id: string
  tenant: string
  prefix: string
  name: string
  expires_at: Date
}

/**
 * Records `key.expired` for up to `batch` keys that expired by `at` and have no such event yet,
 * each with its event in the same transaction as the mark that says it has one. Returns how many.
 */
export async function recordExpiries (db: Db, at: Date, batch: number, toEvent: (key: ExpiredKey) => NewAuditEvent): Promise<number> {
  return await db.transaction().execute(async (trx) => {
    const keys = await trx
      .selectFrom('keygate_api_keys')
      .select(['id', 'tenant', 'prefix', 'name', 'expires_at'])
      .where('expiry_recorded', '=', false)
      .where('expires_at', '<=', at)
      // Deleted or rotated away before it expired: it never expired as a key.
      .where('deleted_at', 'is', null)
      .orderBy('expires_at')
      .limit(batch)
      // Two instances running the job do not record the same expiry twice.
      .forUpdate()
      .skipLocked()
      .$narrowType<{ expires_at: Date }>()
      .execute()
    if (keys.length === 0) return 0
    await trx.updateTable('keygate_api_keys').set({ expiry_recorded: true }).where('id', 'in', keys.map((key) => key.id)).execute()
    await trx.insertInto('keygate_audit_events').values(keys.map((key) => columnsOf(toEvent(key)))).execute()
    return keys.length
  })
}
