import { Kysely, PGliteDialect } from 'kysely'
import { openDatabase } from '../db/connect.js'
import { CommandError } from './usage.js'

/** Where the command works: a PostgreSQL server, or a PGlite folder. */
export type DatabaseTarget = { url: string } | { pglite: string }

export interface Connection {
  db: Kysely<any>
  /** Closes the pool or the PGlite database; the process has nothing left to wait for after it. */
  close: () => Promise<void>
}

const PGLITE_PACKAGE = '@electric-sql/pglite'

// One command at a time needs few connections; the 5 s connect timeout of connect.ts stays, so an
// unreachable server fails within it rather than hanging.
const CLI_POOL = { max: 2 }

/** Opens the database; nothing connects until the first query. */
export async function openConnection (target: DatabaseTarget): Promise<Connection> {
  if ('url' in target) {
    // A client that loses its server also fails its query, which is what the command reports.
    const { db } = openDatabase({ connectionString: target.url, pool: CLI_POOL }, () => {})
    return { db, close: async () => await db.destroy() }
  }
  const { PGlite } = await importPglite()
  const pglite = new PGlite(target.pglite)
  const db = new Kysely<any>({ dialect: new PGliteDialect({ pglite }) })
  try {
    await pglite.waitReady
  } catch (error) {
    await db.destroy().catch(() => {})
    throw new CommandError(`cannot open the PGlite database in ${target.pglite}: ${messageOf(error)}`)
  }
  return { db, close: async () => await db.destroy() }
}

/** PGlite is an optional dependency: loaded only for --pglite, with a clear word when it is missing. */
async function importPglite (): Promise<typeof import('@electric-sql/pglite')> {
  try {
    return await import(PGLITE_PACKAGE) as typeof import('@electric-sql/pglite')
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && messageOf(error).includes(PGLITE_PACKAGE)) {
      throw new CommandError(`--pglite needs the package ${PGLITE_PACKAGE}, which is not installed: npm install ${PGLITE_PACKAGE}`)
    }
    throw error
  }
}

export function messageOf (error: unknown): string {
  if (error instanceof AggregateError && error.message === '' && error.errors.length > 0) return messageOf(error.errors[0])
  if (error instanceof Error) return error.message
  // PGlite's file-system errors are plain objects that carry an errno.
  if (typeof error === 'object' && error !== null) {
    const { message, code, errno } = error as { message?: unknown, code?: unknown, errno?: unknown }
    if (typeof message === 'string' && message !== '') return message
    if (typeof code === 'string') return code
    if (typeof errno === 'number') return `file system error ${errno}`
  }
  return String(error)
}
