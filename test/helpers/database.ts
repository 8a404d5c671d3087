import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely'
import pg from 'pg'

/**
 * The database the tests run on: PostgreSQL through pg when DATABASE_URL is set, otherwise
 * PGlite in memory. Each test gets a schema of its own, so tests never see each other's keys.
 */
export const DATABASE_URL = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== ''
  ? process.env.DATABASE_URL
  : undefined

export const usingPostgres = DATABASE_URL !== undefined

// PGlite takes seconds to start, so one instance serves every test of a file.
let sharedPglite: Kysely<any> | undefined

export interface TestDatabase {
  db: Kysely<any>
  schema: string
  /** Drops the schema and closes what this helper opened. */
  close: () => Promise<void>
}

export function uniqueSchema (): string {
  return `keygate_test_${process.pid}_${randomBytes(4).toString('hex')}`
}

export async function openTestDatabase (): Promise<TestDatabase> {
  const schema = uniqueSchema()
  if (DATABASE_URL !== undefined) {
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: DATABASE_URL, max: 10 }) }) })
    return {
      db,
      schema,
      close: async () => {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
        await db.destroy()
      }
    }
  }
  sharedPglite ??= new Kysely<any>({ dialect: new PGliteDialect({ pglite: new PGlite() }) })
  const db = sharedPglite
  return { db, schema, close: async () => { await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db) } }
}
