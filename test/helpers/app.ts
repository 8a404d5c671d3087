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
