import * as kysely from 'kysely'
import type { MigrationResultSet, Migrator } from 'kysely/migration'
import { migrations } from './migrations/index.js'

// The plugin's own bookkeeping tables, so it never collides with the host's migrations.
export const MIGRATION_TABLE = 'keygate_migration'
export const MIGRATION_LOCK_TABLE = 'keygate_migration_lock'

async function migratorOf (db: kysely.Kysely<any>, schema: string | undefined): Promise<Migrator> {
  const KyselyMigrator = await migratorClass()
  return new KyselyMigrator({
    db: schema === undefined ? db : db.withSchema(schema),
    migrationTableSchema: schema,
    provider: { getMigrations: async () => migrations },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE
  })
}

/**
 * Brings the keygate tables up to date, in `schema` when one is given (created if missing).
 * Safe to run from many instances at once: Kysely's Migrator takes a lock.
 */
export async function migrateToLatest (db: kysely.Kysely<any>, schema: string | undefined): Promise<void> {
  const { error }: MigrationResultSet = await (await migratorOf(db, schema)).migrateToLatest()
  if (error !== undefined) throw error
}

/** The names of the migrations not yet run, oldest first. Reads only: creates nothing. */
export async function pendingMigrations (db: kysely.Kysely<any>, schema: string | undefined): Promise<string[]> {
  const all = await (await migratorOf(db, schema)).getMigrations()
  return all.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name)
}

/**
 * Kysely's Migrator, from where the host's Kysely has it: the package itself up to 0.28,
 * `kysely/migration` from 0.29 (which no longer exports it from the package).
 */
async function migratorClass (): Promise<typeof Migrator> {
  const fromPackage = (kysely as unknown as { Migrator?: typeof Migrator }).Migrator
  return fromPackage ?? (await import('kysely/migration')).Migrator
}
