import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { KeygateDatabase } from './schema.js'
import type { ResolvedOptions } from '../options.js'

export interface Database {
  db: Kysely<KeygateDatabase>
  /** True when the plugin built the connection and so must close it. */
  owned: boolean
}

// Bounded waits, so a database that is down answers 503 instead of hanging requests.
const POOL_DEFAULTS: pg.PoolConfig = {
  max: 10,
  connectionTimeoutMillis: 5_000,
  query_timeout: 10_000,
  idleTimeoutMillis: 30_000
}

/** The host's Kysely as it is, or a pg pool the plugin owns, built from a connection string. */
export function openDatabase (option: ResolvedOptions['db'], onPoolError: (error: Error) => void): Database {
  if (option instanceof Kysely) return { db: option as Kysely<KeygateDatabase>, owned: false }
  if (!('connectionString' in option)) return { db: option as Kysely<KeygateDatabase>, owned: false }
  const pool = new pg.Pool({ ...POOL_DEFAULTS, ...option.pool, connectionString: option.connectionString })
  // A client that loses its server emits 'error': on the pool while idle, on the client itself while
  // checked out (Kysely does not listen there). Unhandled, either would end the process; the query
  // in flight fails on its own and becomes a 503.
  pool.on('error', onPoolError)
  pool.on('connect', (client) => client.on('error', onPoolError))
  return { db: new Kysely<KeygateDatabase>({ dialect: new PostgresDialect({ pool }) }), owned: true }
}
