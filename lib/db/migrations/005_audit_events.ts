import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen in time: takes Kysely<any> and never imports the schema.
// The audit log: one row per change to a key or refused management request, per tenant. Listed
// newest first by id within a tenant, hence the (tenant, id) index.
export const m005_audit_events: Migration = {
  async up (db: Kysely<any>) {
    await db.schema
      .createTable('keygate_audit_events')
      .addColumn('id', 'bigserial', (col) => col.primaryKey())
      .addColumn('at', 'timestamptz', (col) => col.notNull())
      .addColumn('tenant', 'text', (col) => col.notNull())
      .addColumn('action', 'text', (col) => col.notNull())
      .addColumn('actor', 'jsonb', (col) => col.notNull())
      .addColumn('target', 'jsonb')
      .addColumn('ip', 'text')
      .addColumn('request_id', 'text')
      .execute()
    await db.schema.createIndex('keygate_audit_events_tenant_id').on('keygate_audit_events').columns(['tenant', 'id']).execute()
    // Retention deletes by age across tenants.
    await db.schema.createIndex('keygate_audit_events_at').on('keygate_audit_events').column('at').execute()
    // Set once a key's expiry has its event, so the expiry job never records it twice.
    await db.schema
      .alterTable('keygate_api_keys')
      .addColumn('expiry_recorded', 'boolean', (col) => col.notNull().defaultTo(false))
      .execute()
    await db.schema
      .createIndex('keygate_api_keys_expiry_pending')
      .on('keygate_api_keys')
      .column('expires_at')
      .where(sql.ref('expiry_recorded'), '=', false)
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropIndex('keygate_api_keys_expiry_pending').execute()
    await db.schema.alterTable('keygate_api_keys').dropColumn('expiry_recorded').execute()
    await db.schema.dropTable('keygate_audit_events').execute()
  }
}
