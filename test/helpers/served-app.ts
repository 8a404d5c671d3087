import type { AddressInfo } from 'node:net'
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import keygate, { type KeygateOptions, RedisKeyCache } from '../../lib/index.js'
import { FAST_ARGON2, TEST_SECRET, testClock } from './app.js'
import { openTestDatabase } from './database.js'
import { REDIS_URL } from './redis.js'

export interface ServedApp {
  app: FastifyInstance
  /** `http://127.0.0.1:<port>`: the app listening on a real port. */
  baseUrl: string
  /** The plugin's clock: 2026-03-03T12:00:00Z until advanced. */
  clock: ReturnType<typeof testClock>
}

/**
 * A host app with keygate listening on a port of loopback, for clients that speak HTTP to it:
 * on its own schema, with the live Redis when REDIS_URL is set, on a test clock. Closed when the
 * test ends.
 */
export async function serveApp (t: Test, options: Partial<KeygateOptions> = {}, routes?: (app: FastifyInstance) => void): Promise<ServedApp> {
  const database = await openTestDatabase()
  const clock = testClock()
  const app = Fastify()
  t.teardown(async () => {
    await app.close()
    await database.close()
  })
  if (REDIS_URL !== undefined) await app.register(fastifyRedis, { url: REDIS_URL, closeClient: true })
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, secret: TEST_SECRET, now: clock.now, ...options })
  routes?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  if (app.keygateCache instanceof RedisKeyCache) await app.keygateCache.listening
  const { port } = app.server.address() as AddressInfo
  return { app, baseUrl: `http://127.0.0.1:${port}`, clock }
}
