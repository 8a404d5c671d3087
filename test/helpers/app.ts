import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import keygate, { type KeygateOptions } from '../../lib/index.js'
import { openTestDatabase, type TestDatabase } from './database.js'

// Cheap argon2id so the suite stays fast; the production defaults are tested on their own.
export const FAST_ARGON2 = { memoryCost: 256, timeCost: 1, parallelism: 1 }

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
