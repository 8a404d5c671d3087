import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createKeygateApi } from './api/keygate-api.js'
import { createAuthenticator } from './auth/authenticator.js'
import { createAuthHook } from './auth/hook.js'
import { validateRouteConfig } from './auth/route-config.js'
import { openDatabase } from './db/connect.js'
import { migrateToLatest } from './db/migrate.js'
import { argon2idHasher } from './keys/hasher.js'
import { type KeygateOptions, resolveOptions } from './options.js'
import { keyRoutes } from './routes/keys.routes.js'
import './types.js'

async function keygatePlugin (fastify: FastifyInstance, options: KeygateOptions): Promise<void> {
  const opts = resolveOptions(options)
  const { db: connection, owned } = openDatabase(opts.db, (error) => fastify.log.warn({ err: error }, 'keygate: database connection lost'))
  if (owned) fastify.addHook('onClose', async () => await connection.destroy())
  const db = opts.schema === undefined ? connection : connection.withSchema(opts.schema)

  const hasher = argon2idHasher(opts.argon2)
  const api = createKeygateApi({
    db,
    migrate: () => migrateToLatest(connection, opts.schema),
    hasher,
    prefixes: opts.prefixes,
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
  fastify.addHook('onRoute', validateRouteConfig)
  fastify.addHook('onRequest', createAuthHook(createAuthenticator({ db, hasher, prefixes: opts.prefixes })))

  if (opts.routes) await fastify.register(keyRoutes, { prefix: opts.routePrefix, api, prefixes: opts.prefixes })
}

/** API-key authentication for the whole app. Register once, before the routes it protects. */
export const keygate: FastifyPluginAsync<KeygateOptions> = fp(keygatePlugin, { fastify: '5.x', name: 'fastify-keygate' })
export default keygate

export type { CreatedKey, CreateKeyInput, KeygateApi, KeyInfo } from './api/keygate-api.js'
export type { AuthenticatedKey } from './auth/authenticator.js'
export type { RouteApiKeyConfig } from './auth/route-config.js'
export type { KeyType } from './db/schema.js'
export { KEY_TYPES } from './db/schema.js'
export { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './db/migrate.js'
export type { Argon2Options } from './keys/hasher.js'
export type { ConnectionOptions, KeygateOptions } from './options.js'
export * as errors from './errors.js'
