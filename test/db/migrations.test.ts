import { sql } from 'kysely'
import t from 'tap'
import { buildAppWithDatabase } from '../helpers/app.js'

t.test('migrations create the keygate_ tables in the schema, with their own bookkeeping tables, and run again harmlessly', async (t) => {
  const { app, database } = await buildAppWithDatabase(t)
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = ${database.schema} order by table_name`.execute(database.db)
  t.same(tables.rows.map((r) => r.table_name), ['keygate_api_keys', 'keygate_audit_events', 'keygate_key_usage', 'keygate_migration', 'keygate_migration_lock'])
  const applied = await database.db.withSchema(database.schema).selectFrom('keygate_migration').select('name').execute()
  t.same(applied.map((r) => r.name), ['001_api_keys', '002_scopes_and_plans', '003_lifecycle', '004_tenants_and_owners', '005_audit_events'])

  await app.keygate.createKey({ name: 'kept' })
  await app.keygate.migrate()
  t.same((await app.keygate.listKeys()).map((k) => k.name), ['kept'], 'a second run changes nothing')
})

t.test('migrate: false leaves the database alone', async (t) => {
  const { app, database } = await buildAppWithDatabase(t, { keygate: { migrate: false } })
  const tables = await sql<{ n: number }>`
    select count(*)::int as n from information_schema.tables where table_schema = ${database.schema}`.execute(database.db)
  t.equal(tables.rows[0]?.n, 0)
  await app.keygate.migrate()
  t.same(await app.keygate.listKeys(), [], 'migrate() on demand')
})

t.test('keys made before 002 keep full access on the free plan', async (t) => {
  const { Migrator } = await import('kysely/migration')
  const { migrations } = await import('../../lib/db/migrations/index.js')
  const { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } = await import('../../lib/db/migrate.js')
  const { openTestDatabase } = await import('../helpers/database.js')
  const database = await openTestDatabase()
  t.teardown(database.close)
  const db = database.db.withSchema(database.schema)
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
    migrationTableSchema: database.schema
  })
  t.equal((await migrator.migrateTo('001_api_keys')).error, undefined)
  await db.insertInto('keygate_api_keys').values({
    id: 'Old00001', prefix: 'metlo', name: 'old', key_for: 'GENERIC', hash: 'x', created_at: new Date(0)
  }).execute()
  t.equal((await migrator.migrateToLatest()).error, undefined)
  const row = await db.selectFrom('keygate_api_keys').selectAll().executeTakeFirstOrThrow()
  t.same([row.scopes, row.plan, row.rate_limit_per_minute, row.rate_limit_per_hour], [['*'], 'free', null, null])
  t.same([row.lineage, row.expires_at, row.sunset_at, row.requests, row.credits_remaining], ['Old00001', null, null, '0', null],
    'and after 003: never expires, its own lineage, no usage yet, no credits')
  t.same([row.tenant, row.owner], ['default', null], 'and after 004: in the default tenant, a service account')
})
