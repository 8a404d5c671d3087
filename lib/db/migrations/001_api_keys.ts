import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen in time: takes Kysely<any> and never imports the schema.
export const m001_api_keys: Migration = {
  async up (db: Kysely<any>) {
    await db.schema
      .createTable('keygate_api_keys')
      .addColumn('id', 'text', (col) => col.primaryKey())
      .addColumn('prefix', 'text', (col) => col.notNull())
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('key_for', 'text', (col) => col.notNull())
      .addColumn('hash', 'text', (col) => col.notNull())
      .addColumn('created_at', 'timestamptz', (col) => col.notNull())
      .addColumn('deleted_at', 'timestamptz')
      .addColumn('seq', 'bigserial', (col) => col.notNull())
      .execute()

    // Names are unique among live keys; a deleted key frees its name.
    await db.schema
      .createIndex('keygate_api_keys_live_name')
      .on('keygate_api_keys')
      .column('name')
      .unique()
      .where(sql.ref('deleted_at'), 'is', null)
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropTable('keygate_api_keys').execute()
  }
}
