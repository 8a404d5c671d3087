import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import type { Kysely } from 'kysely'
import keygate, { type KeygateOptions } from '../../lib/index.js'
import { argon2idHasher } from '../../lib/keys/hasher.js'
import { openTestDatabase, type TestDatabase } from './database.js'

// Cheap argon2id so the suite stays fast; the production defaults are tested on their own.
export const FAST_ARGON2 = { memoryCost: 256, timeCost: 1, parallelism: 1 }

/** The secret instances share in tests that use Redis. */
export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123'

/** argon2id, counting its verifications. */
export function countingHasher () {
  const inner = argon2idHasher(FAST_ARGON2)
  const counts = { hash: 0, verify: 0 }
  return {
    counts,
    hasher: {
      hash: async (text: string) => { counts.hash++; return await inner.hash(text) },
      verify: async (hash: string, text: string) => { counts.verify++; return await inner.verify(hash, text) }
    }
  }
}

/** The same database, counting the SELECTs run on it. */
export function countingSelects (db: Kysely<any>) {
  let selects = 0
  const counted = db.withPlugin({
    transformQuery: (args) => {
      if (args.node.kind === 'SelectQueryNode') selects++
      return args.node
    },
    transformResult: async (args) => args.result
  })
  return { db: counted, selects: () => selects }
}

/** A write as the database sees it: the statement's kind and its table. */
export interface CountedWrite {
  kind: 'insert' | 'update' | 'delete' | 'raw'
  table: string
}

/**
 * The same database, counting the writes run on it (any statement that is not a SELECT; raw SQL
 * counts unless it starts with `select`) and the transactions begun, on it or on what
 * `withSchema` makes of it. `failing(true)` makes every write fail, as a database that is down would.
 */
export function countingWrites (db: Kysely<any>) {
  const writes: CountedWrite[] = []
  let transactions = 0
  let failing = false
  const counted = db.withPlugin({
    transformQuery: (args) => {
      const node = args.node as any
      const kind = { InsertQueryNode: 'insert', UpdateQueryNode: 'update', DeleteQueryNode: 'delete', RawNode: 'raw' }[node.kind as string] as CountedWrite['kind'] | undefined
      const rawSelect = kind === 'raw' && /^\s*select\b/i.test(node.sqlFragments?.[0] ?? '')
      if (kind !== undefined && !rawSelect) {
        let table = node.into ?? node.table ?? node.from?.froms?.[0]
        if (table?.kind === 'AliasNode') table = table.node
        writes.push({ kind, table: table?.table?.identifier?.name ?? '' })
        if (failing) throw new Error('the database is down (test)')
      }
      return args.node
    },
    transformResult: async (args) => args.result
  })
  // Kysely keeps its state in private fields: methods run on the real instance.
  const watch = (instance: Kysely<any>): Kysely<any> => new Proxy(instance, {
    get (target, property) {
      if (property === 'withSchema') return (schema: string) => watch(target.withSchema(schema))
      if (property === 'transaction') return () => { transactions++; return target.transaction() }
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  return {
    db: watch(counted),
    writes: () => [...writes],
    transactions: () => transactions,
    failing: (on: boolean) => { failing = on },
    reset: () => { writes.length = 0; transactions = 0 }
  }
}

export interface BuildOptions {
  keygate?: Partial<KeygateOptions>
  fastify?: FastifyServerOptions
  /** Host routes, registered after the plugin. */
  routes?: (app: FastifyInstance) => void
}

/** A host app with keygate on a schema of its own, closed when the test ends. */
export async function buildApp (t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  return (await buildAppWithDatabase(t, options)).app
}

/** The same, with the database, for tests that look at what is stored. */
export async function buildAppWithDatabase (t: Test, options: BuildOptions = {}): Promise<{ app: FastifyInstance, database: TestDatabase }> {
  const database = await openTestDatabase()
  const app = Fastify(options.fastify)
  t.teardown(async () => {
    await app.close()
    await database.close()
  })
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, ...options.keygate })
  options.routes?.(app)
  await app.ready()
  return { app, database }
}

/** Creates a key through the programmatic API and returns its full text. */
export async function createKey (app: FastifyInstance, name = 'test-key', prefix?: string): Promise<string> {
  const created = await app.keygate.createKey({ name, ...(prefix === undefined ? {} : { prefix }) })
  return created.apiKey
}

/** A fixed, advancing clock for tests. */
export function testClock (start = Date.UTC(2026, 2, 3, 12, 0, 0)) {
  let current = start
  return {
    now: () => current,
    advance: (ms: number) => { current += ms }
  }
}
