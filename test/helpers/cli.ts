import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { PGlite } from '@electric-sql/pglite'
import Fastify, { type FastifyInstance } from 'fastify'
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import type { Test } from 'tap'
import keygate from '../../lib/index.js'
import { run } from '../../lib/cli/main.js'
import { DATABASE_URL, uniqueSchema } from './database.js'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** A stream that keeps what is written to it. */
export function captured (): { stream: Writable, text: () => string } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write (chunk: Buffer | string, _encoding, done) {
      chunks.push(Buffer.from(chunk))
      done()
    }
  })
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') }
}

/** Runs `keygate <argv>` in this process, with its own stdout, stderr and environment. */
export async function keygateCli (argv: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const stdout = captured()
  const stderr = captured()
  const code = await run(argv, { stdout: stdout.stream, stderr: stderr.stream, env })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

/** A database the command line works on, and a way to reach the same one from an app. */
export interface CliDatabase {
  /** `pglite` or `postgres`. */
  kind: string
  /** A folder of the test's own, removed when it ends. */
  dir: string
  /** The options that point the command at it: `--pglite <dir>`, or `--database-url <url> --schema <own>`. */
  args: string[]
  /**
   * A host app with keygate on the same database (routes on, migrations off), `GET /whoami`
   * answering the key's name; closed when the test ends. For PGlite, close it before the next
   * command: PGlite serves one instance at a time.
   */
  app: () => Promise<FastifyInstance>
}




export async function cliDatabase (t: Test, kind: string): Promise<CliDatabase> {
  const dir = await mkdtemp(join(tmpdir(), 'keygate-cli-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  if (kind === 'postgres') {
    const schema = uniqueSchema()
    const url = DATABASE_URL as string
    t.teardown(async () => {
      const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) })
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
      await db.destroy()
    })
    return {
      kind,
      dir,
      args: ['--database-url', url, '--schema', schema],
      app: async () => await hostApp(t, { connectionString: url }, schema)
    }
  }
  const data = join(dir, 'pglite')
  return {
    kind,
    dir,
    args: ['--pglite', data],
    app: async () => {
      const db = new Kysely<any>({ dialect: new PGliteDialect({ pglite: new PGlite(data) }) })
      return await hostApp(t, db, undefined, async () => await db.destroy())
    }
  }
}

async function hostApp (t: Test, db: Kysely<any> | { connectionString: string }, schema: string | undefined, onClose?: () => Promise<void>): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(async () => await app.close())
  // A Kysely handed to the plugin is the host's to close.
  if (onClose !== undefined) app.addHook('onClose', onClose)
  await app.register(keygate, { db, schema, migrate: false })
  app.get('/whoami', async (request) => ({ name: request.apiKey?.name ?? null }))
  await app.ready()
  return app
}

/** What `GET /whoami` answers to this key: the status and the key's name. */
export async function whoami (app: FastifyInstance, key: string): Promise<{ status: number, body: unknown }> {
  const response = await app.inject({ method: 'GET', url: '/whoami', headers: { authorization: `Bearer ${key}` } })
  return { status: response.statusCode, body: response.json() }
}

/** How many times `text` occurs in `within`. */
export function occurrences (within: string, text: string): number {
  return within.split(text).length - 1
}
