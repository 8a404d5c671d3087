import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen in time: takes Kysely<any> and never imports the schema.
// Keys created before scopes existed keep full access and the free plan.
export const m002_scopes_and_plans: Migration = {
  async up (db: Kysely<any>) {
    await db.schema
      .alterTable('keygate_api_keys')
      .addColumn('scopes', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{*}'::text[]`))
      .addColumn('plan', 'text', (col) => col.notNull().defaultTo('free'))
      .addColumn('rate_limit_per_minute', 'integer')
      .addColumn('rate_limit_per_hour', 'integer')
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema
      .alterTable('keygate_api_keys')
      .dropColumn('scopes')
      .dropColumn('plan')
      .dropColumn('rate_limit_per_minute')
      .dropColumn('rate_limit_per_hour')
      .execute()
  }
}
