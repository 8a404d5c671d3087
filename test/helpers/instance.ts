import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance, type HTTPMethods, type LightMyRequestResponse } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import keygate, { type KeygateOptions, RedisKeyCache } from '../../lib/index.js'
import { countingHasher, countingSelects, TEST_SECRET } from './app.js'
import { openTestDatabase, type TestDatabase } from './database.js'
import { REDIS_URL } from './redis.js'

/** One app instance of several sharing a database (and, with `withRedis`, the live Redis). */
export interface Instance {
  app: FastifyInstance
  counts: { hash: number, verify: number }
  /** SELECTs run so far on this instance's connection. */
  selects: () => number
  /** A request with `Authorization: Bearer <key>`; GET /data by default, which answers the key's scopes. */
  call: (key: string | undefined, method?: HTTPMethods, url?: string, payload?: object) => Promise<LightMyRequestResponse>
}

export interface InstanceOptions extends Partial<KeygateOptions> {
  withRedis?: boolean
  /** A client (a Cluster, say) to register with @fastify/redis, which closes it with the app. */
  fastifyRedisClient?: Redis | Cluster
  hostRoutes?: (app: FastifyInstance) => void
}

export async function instance (t: Test, database: TestDatabase, options: InstanceOptions = {}): Promise<Instance> {
  const { withRedis = false, fastifyRedisClient, hostRoutes, ...keygateOptions } = options
  const { hasher, counts } = countingHasher()
  const { db, selects } = countingSelects(database.db)
  const app = Fastify()
  t.teardown(async () => await app.close())
  if (withRedis) await app.register(fastifyRedis, { url: REDIS_URL, closeClient: true })
  if (fastifyRedisClient !== undefined) await app.register(fastifyRedis, { client: fastifyRedisClient, closeClient: true })
  await app.register(keygate, { db, schema: database.schema, hasher, secret: TEST_SECRET, ...keygateOptions })
  app.get('/data', async (request) => ({ scopes: request.apiKey?.scopes }))
  app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))
  hostRoutes?.(app)
  await app.ready()
  if (app.keygateCache instanceof RedisKeyCache) await app.keygateCache.listening
  const call: Instance['call'] = async (key, method = 'GET', url = '/data', payload) => await app.inject({
    method,
    url,
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    ...(payload === undefined ? {} : { payload })
  })
  return { app, counts, selects, call }
}

/** A database (schema) of the test's own, dropped when it ends. */
export async function database (t: Test): Promise<TestDatabase> {
  const opened = await openTestDatabase()
  t.teardown(opened.close)
  return opened
}

/** Resolves when `app` hears that `keyId` was deleted or changed. */
export function heard (app: FastifyInstance, keyId: string): Promise<void> {
  return new Promise((resolve) => app.keygateCache!.onInvalidate((id) => { if (id === keyId) resolve() }))
}
