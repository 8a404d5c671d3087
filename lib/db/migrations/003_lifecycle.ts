import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen in time: takes Kysely<any> and never imports the schema.
// Expiry, rotation with a grace period, usage and credits. Existing keys never expire, are their
// own lineage, have no usage recorded yet and no credits.
export const m003_lifecycle: Migration = {
  async up (db: Kysely<any>) {
    await db.schema
      .alterTable('keygate_api_keys')
      .addColumn('expires_at', 'timestamptz')
      // A rotated-away key: deleted_at is the rotation, sunset_at the end of its grace.
      .addColumn('sunset_at', 'timestamptz')
      .addColumn('lineage', 'text')
      .addColumn('last_used_at', 'timestamptz')
      .addColumn('requests', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('credits_remaining', 'integer')
      .addColumn('credits_refill_amount', 'integer')
      .addColumn('credits_refill_interval', 'text')
      .addColumn('credits_set_at', 'timestamptz')
      .execute()
    await db.updateTable('keygate_api_keys').set({ lineage: sql.ref('id') }).execute()
    await db.schema.alterTable('keygate_api_keys').alterColumn('lineage', (col) => col.setNotNull()).execute()
    await db.schema.createIndex('keygate_api_keys_lineage').on('keygate_api_keys').column('lineage').execute()
    // Listings look up the texts still in a rotation's grace: few rows among all the deleted ones.
    await db.schema
      .createIndex('keygate_api_keys_sunset')
      .on('keygate_api_keys')
      .column('sunset_at')
      .where(sql.ref('sunset_at'), 'is not', null)
      .execute()

    // Requests per key (lineage) per UTC day, added to by each instance's flush.
    await db.schema
      .createTable('keygate_key_usage')
      .addColumn('lineage', 'text', (col) => col.notNull())
      .addColumn('day', 'date', (col) => col.notNull())
      .addColumn('requests', 'bigint', (col) => col.notNull())
      .addPrimaryKeyConstraint('keygate_key_usage_pkey', ['lineage', 'day'])
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropTable('keygate_key_usage').execute()
    await db.schema.dropIndex('keygate_api_keys_sunset').execute()
    await db.schema.dropIndex('keygate_api_keys_lineage').execute()
    await db.schema
      .alterTable('keygate_api_keys')
      .dropColumn('expires_at')
      .dropColumn('sunset_at')
      .dropColumn('lineage')
      .dropColumn('last_used_at')
      .dropColumn('requests')
      .dropColumn('credits_remaining')
      .dropColumn('credits_refill_amount')
      .dropColumn('credits_refill_interval')
      .dropColumn('credits_set_at')
      .execute()
  }
}
