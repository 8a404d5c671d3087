import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Redis } from 'ioredis'
import fp from 'fastify-plugin'
import { createKeygateApi } from './api/keygate-api.js'
import { createAuthenticator } from './auth/authenticator.js'
import { createAuthHook } from './auth/hook.js'
import { validateRouteConfig } from './auth/route-config.js'
import { grantableScopes } from './auth/scopes.js'
import { openDatabase } from './db/connect.js'
import { migrateToLatest } from './db/migrate.js'
import { argon2idHasher } from './keys/hasher.js'
import { type KeygateOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { createLimiter } from './ratelimit/limiter.js'
import { MemoryRateLimitStore } from './ratelimit/memory.store.js'
import type { Plan } from './ratelimit/plans.js'
import { RedisRateLimitStore } from './ratelimit/redis.store.js'
import type { RateLimitStore } from './ratelimit/store.js'
import { keyRoutes } from './routes/keys.routes.js'
import './types.js'

async function keygatePlugin (fastify: FastifyInstance, options: KeygateOptions): Promise<void> {
  const opts = resolveOptions(options)
  const { db: connection, owned } = openDatabase(opts.db, (error) => fastify.log.warn({ err: error }, 'keygate: database connection lost'))
  if (owned) fastify.addHook('onClose', async () => await connection.destroy())
  const db = opts.schema === undefined ? connection : connection.withSchema(opts.schema)

  const hasher = argon2idHasher(opts.argon2)
  // A plan removed from the options falls back to the default plan for keys that still name it.
  const planOf = (name: string): Plan => opts.plans[name] ?? (opts.plans[opts.defaultPlan] as Plan)
  const choices = { prefixes: opts.prefixes, grantableScopes: grantableScopes(opts.scopes), plans: Object.keys(opts.plans) }
  const api = createKeygateApi({
    db,
    migrate: () => migrateToLatest(connection, opts.schema),
    hasher,
    choices,
    defaultPlan: opts.defaultPlan,
    planOf,
    maxKeys: opts.maxKeys,
    now: opts.now
  })
  if (opts.migrate) {
    try {
      await api.migrate()
    } catch (error) {
      if (owned) await connection.destroy()
      throw error
    }
  }

  fastify.decorate('keygate', api)
  fastify.decorateRequest('apiKey', null)
  fastify.addHook('onRoute', (routeOptions) => validateRouteConfig(routeOptions, opts.scopes))
  fastify.addHook('onRequest', createAuthHook({
    authenticate: createAuthenticator({ db, hasher, prefixes: opts.prefixes, planOf }),
    limit: createLimiter({ store: rateLimitStore(fastify, opts), now: opts.now, onStoreError: opts.onStoreError, log: fastify.log }),
    headers: opts.headers,
    now: opts.now
  }))

  if (opts.routes) await fastify.register(keyRoutes, { prefix: opts.routePrefix, api, choices })
}

/** The host's store if it gave one, Redis when a client is at hand, this process's memory otherwise. */
function rateLimitStore (fastify: FastifyInstance, opts: ResolvedOptions): RateLimitStore {
  if (opts.rateLimitStore !== undefined) return opts.rateLimitStore
  const client = opts.redis ?? (fastify.hasDecorator('redis') ? (fastify as unknown as { redis: Redis }).redis : undefined)
  if (client !== undefined) return new RedisRateLimitStore({ client, timeoutMs: opts.redisTimeout })
  return new MemoryRateLimitStore()
}

/** API-key authentication for the whole app. Register once, before the routes it protects. */
export const keygate: FastifyPluginAsync<KeygateOptions> = fp(keygatePlugin, { fastify: '5.x', name: 'fastify-keygate' })
export default keygate

export type { CreatedKey, CreateKeyInput, CreateKeyOptions, KeygateApi, KeyInfo } from './api/keygate-api.js'
export type { AuthenticatedKey } from './auth/authenticator.js'
export type { RouteApiKeyConfig } from './auth/route-config.js'
export type { KeyType } from './db/schema.js'
export { KEY_TYPES } from './db/schema.js'
export { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './db/migrate.js'
export type { Argon2Options } from './keys/hasher.js'
export type { ConnectionOptions, KeygateOptions } from './options.js'
export { DEFAULT_SCOPES } from './auth/scopes.js'
export type { HeaderStyle } from './ratelimit/headers.js'
export type { OnStoreError } from './ratelimit/limiter.js'
export { DEFAULT_PLANS, type Limits, type Plan } from './ratelimit/plans.js'
export { MemoryRateLimitStore } from './ratelimit/memory.store.js'
export { RedisRateLimitStore, type RedisRateLimitStoreOptions } from './ratelimit/redis.store.js'
export type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './ratelimit/store.js'
export * as errors from './errors.js'
