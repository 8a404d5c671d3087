import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen in time: takes Kysely<any> and never imports the schema.
// Every key belongs to a tenant (existing keys to `default`) and may have an owner (none: a
// service account). Names are unique per tenant among live keys.
export const m004_tenants_and_owners: Migration = {
  async up (db: Kysely<any>) {
    await db.schema
      .alterTable('keygate_api_keys')
      .addColumn('tenant', 'text', (col) => col.notNull().defaultTo('default'))
      .addColumn('owner', 'text')
      .execute()
    await db.schema.dropIndex('keygate_api_keys_live_name').execute()
    await db.schema
      .createIndex('keygate_api_keys_live_name')
      .on('keygate_api_keys')
      .columns(['tenant', 'name'])
      .unique()
      .where(sql.ref('deleted_at'), 'is', null)
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropIndex('keygate_api_keys_live_name').execute()
    await db.schema
      .createIndex('keygate_api_keys_live_name')
      .on('keygate_api_keys')
      .column('name')
      .unique()
      .where(sql.ref('deleted_at'), 'is', null)
      .execute()
    await db.schema.alterTable('keygate_api_keys').dropColumn('tenant').dropColumn('owner').execute()
  }
}
