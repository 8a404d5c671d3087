import { sql } from 'kysely'
import t from 'tap'
import { buildAppWithDatabase } from '../helpers/app.js'

t.test('migrations create the keygate_ tables in the schema, with their own bookkeeping tables, and run again harmlessly', async (t) => {
  const { app, database } = await buildAppWithDatabase(t)
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = ${database.schema} order by table_name`.execute(database.db)
  t.same(tables.rows.map((r) => r.table_name), ['keygate_api_keys', 'keygate_migration', 'keygate_migration_lock'])
  const applied = await database.db.withSchema(database.schema).selectFrom('keygate_migration').select('name').execute()
  t.same(applied.map((r) => r.name), ['001_api_keys'])

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
