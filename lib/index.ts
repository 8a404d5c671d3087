import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { RedisClient } from './redis/client.js'
import fp from 'fastify-plugin'
import { createKeygateApi } from './api/keygate-api.js'
import { createFingerprinter } from './auth/fingerprint.js'
import { notedRoutes } from './auth/early-routes.js'
import { createAuthHook, createConsoleGate, createVerifiers, kVerifiedKey } from './auth/hook.js'
import { KeyReader } from './auth/key-reader.js'
import { kSignedInUser } from './auth/management-sign-in.js'
import { RouteConfigs } from './auth/route-config.js'
import { grantableScopes } from './auth/scopes.js'
import { VerifiedKeys } from './auth/verified-keys.js'
import type { KeyCache } from './cache/key-cache.js'
import { RedisKeyCache } from './cache/redis.cache.js'
import { openDatabase } from './db/connect.js'
import { migrateToLatest } from './db/migrate.js'
import { InvalidOptionError, isRefusal } from './errors.js'
import { createRefusalSender } from './http/send-error.js'
import { boundedHasher } from './keys/bounded-hasher.js'
import { argon2idHasher } from './keys/hasher.js'
import { safeError } from './log/safe-error.js'
import { type KeygateOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { createCreditsReader, createLimiter } from './ratelimit/limiter.js'
import { MemoryRateLimitStore } from './ratelimit/memory.store.js'
import type { Plan } from './ratelimit/plans.js'
import { RedisRateLimitStore } from './ratelimit/redis.store.js'
import type { RateLimitStore } from './ratelimit/store.js'
import { createKeyRecordMapper } from './records/key-info.js'
import { keyRoutes } from './routes/keys.routes.js'
import { UsageCounter } from './usage/usage-counter.js'
import { documentRouteSecurity, documentsOpenapi } from './openapi/security.js'
import { AuditJob } from './audit/audit-job.js'
import { AUDIT_ACTIONS, type AuditContext, type AuditTarget, CODE_ACTOR } from './audit/audit-event.js'
import { recordEvent } from './repositories/audit.repository.js'
import { throttledWarning } from './log/throttled-warning.js'
import { consoleRoutes } from './console/console.routes.js'
import { commonPath, createConsoleSessions } from './console/session-cookie.js'
import { KEY_TYPES } from './db/schema.js'
import './types.js'

async function keygatePlugin (fastify: FastifyInstance, options: KeygateOptions): Promise<void> {
  const opts = resolveOptions(options)
  const redis = opts.redis ?? (fastify.hasDecorator('redis') ? (fastify as unknown as { redis: RedisClient }).redis : undefined)
  if (redis !== undefined && opts.cache === undefined && !opts.secretGiven) {
    throw new InvalidOptionError('secret', 'required when Redis is used: every instance must compute the same key fingerprints')
  }

  const { db: connection, owned } = openDatabase(opts.db, (error) => fastify.log.warn({ err: safeError(error) }, 'keygate: database connection lost'))
  if (owned) fastify.addHook('onClose', async () => await connection.destroy())
  const db = opts.schema === undefined ? connection : connection.withSchema(opts.schema)

  const hasher = boundedHasher(opts.hasher ?? argon2idHasher(opts.argon2), { concurrency: opts.hashConcurrency, queue: opts.hashQueue })
  const shared = opts.cache ?? sharedKeyCache(fastify, opts, redis)
  // Only what the plugin built is the plugin's to close.
  if (opts.cache === undefined && shared !== undefined) fastify.addHook('onClose', async () => await shared.close())
  // A plan removed from the options falls back to the default plan for keys that still name it.
  const planOf = (name: string): Plan => opts.plans[name] ?? (opts.plans[opts.defaultPlan] as Plan)
  const toKeyRecord = createKeyRecordMapper(planOf)
  const verifiedKeys = new VerifiedKeys({
    reader: new KeyReader(db),
    hasher,
    prefixes: opts.prefixes,
    fingerprint: createFingerprinter(opts.secret),
    toKeyRecord,
    shared,
    cacheSize: opts.cacheSize,
    cacheTtl: opts.cacheTtl,
    staleIfError: opts.staleIfError,
    now: opts.now,
    log: fastify.log
  })
  const store = rateLimitStore(opts, redis)
  const usage = new UsageCounter({
    db,
    flushMs: opts.usageFlushMs,
    // Lineages in use are about the live keys (rotation keeps the lineage); the margin covers
    // keys made and deleted while the database is down. Each held lineage is a few dozen bytes.
    maxLineages: Math.max(opts.cacheSize, opts.maxKeys) * 4,
    now: opts.now,
    log: fastify.log
  })
  const auditJob = new AuditJob({ db, intervalMs: opts.auditJobMs, retentionDays: opts.auditRetentionDays, now: opts.now, log: fastify.log })
  const choices = { prefixes: opts.prefixes, grantableScopes: grantableScopes(opts.scopes), plans: Object.keys(opts.plans) }
  const api = createKeygateApi({
    db,
    migrate: () => migrateToLatest(connection, opts.schema),
    hasher,
    choices,
    defaultPlan: opts.defaultPlan,
    planOf,
    toKeyRecord,
    maxKeys: opts.maxKeys,
    lockSpace: opts.schema ?? '',
    maxLifetimeDays: opts.maxLifetimeDays,
    rotateAfterDays: opts.rotateAfterDays,
    maxGracePeriodSeconds: opts.maxGracePeriodSeconds,
    now: opts.now,
    creditsLeft: createCreditsReader(store, opts.now),
    flushUsage: async () => await usage.flush(),
    runAuditJob: async () => await auditJob.tick(),
    onDeleted: async (keyId) => await verifiedKeys.deleted(keyId),
    onChanged: async (keyId) => await verifiedKeys.changed(keyId)
  })
  if (opts.migrate) {
    try {
      await api.migrate()
    } catch (error) {
      if (owned) await connection.destroy()
      throw error
    }
  }

  // The console's sessions are accepted on the management routes, so the cookie goes to both paths.
  const consoleSessions = opts.console === false
    ? undefined
    : createConsoleSessions({ secret: opts.secret, path: commonPath(opts.console.path, opts.routePrefix), now: opts.now })
  const authDeps = {
    authenticate: verifiedKeys.authenticate,
    limit: createLimiter({ store, now: opts.now, onStoreError: opts.onStoreError, log: fastify.log }),
    headers: opts.headers,
    now: opts.now,
    recordUse: usage.record,
    routeConfigs: new RouteConfigs(opts.scopes),
    authenticateManagement: opts.authenticateManagement,
    ...(consoleSessions === undefined ? {} : { consoleSessions }),
    ...(opts.errorResponse === undefined ? {} : { errorResponse: opts.errorResponse }),
    log: fastify.log
  }
  const routeConfigs = authDeps.routeConfigs
  fastify.decorate('keygate', Object.assign(api, createVerifiers(authDeps)))
  fastify.decorate('keygateCache', shared ?? null)
  fastify.decorateRequest('apiKey', null)
  fastify.decorateRequest('apiKeyDenial', null)
  // Declared here so every request has the same shape; the hook sets it with `apiKey`.
  fastify.decorateRequest(kVerifiedKey, null)
  fastify.decorateRequest(kSignedInUser, null)
  fastify.addHook('onRoute', routeConfigs.onRoute)
  // With @fastify/swagger, each route's schema states what it asks of a key (see lib/openapi).
  if (documentsOpenapi(fastify, opts.routes)) fastify.addHook('onRoute', documentRouteSecurity)
  // Routes registered before the plugin: startup fails for a bad setting there too.
  fastify.addHook('onReady', async () => {
    for (const { setting, where } of notedRoutes(fastify) ?? []) routeConfigs.check(setting, where)
  })
  // Close hooks run last-registered first (avvio unshifts them): a renewal still reading finishes
  // before the pool closes...
  fastify.addHook('onClose', async () => await verifiedKeys.idle())
  fastify.addHook('onReady', async () => usage.start())
  // ...and so does the last flush of usage: a clean shutdown writes what was counted.
  fastify.addHook('onClose', async () => await usage.stop())
  fastify.addHook('onReady', async () => auditJob.start())
  fastify.addHook('onClose', async () => await auditJob.stop())
  const deniedWriteFailed = throttledWarning(fastify.log, opts.now)
  const authHook = createAuthHook(authDeps)
  if (opts.hook) fastify.addHook('onRequest', authHook)
  // What `verify` reports with done(error) reaches the error handler: a refusal gets the contract's
  // body (or the host's errorResponse); anything else goes on to the handler before this one
  // (Fastify's default unless the host set one earlier). A handler the host sets after the plugin
  // sees refusals first, and hands them back here with `reply.send(error)`.
  const sendRefusal = createRefusalSender(opts.errorResponse, fastify.log)
  fastify.setErrorHandler(function keygateRefusals (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (!isRefusal(error)) return reply.send(error)
    sendRefusal(reply, request, error)
  })

  // An access.denied event changes nothing else: its own write, which the answer does not wait for.
  const deniedWrites = new Set<Promise<void>>()
  const recordDenied = (tenant: string, target: AuditTarget | null, audit: AuditContext): void => {
    const write = recordEvent(db, { at: new Date(opts.now()), tenant, action: 'access.denied', actor: audit.actor ?? CODE_ACTOR, target, ip: audit.ip ?? null, requestId: audit.requestId ?? null })
      .catch((error) => deniedWriteFailed(error, 'keygate: an access.denied audit event could not be written'))
      .finally(() => deniedWrites.delete(write))
    deniedWrites.add(write)
  }
  // Before the pool closes (close hooks run last-registered first): a clean shutdown writes them.
  fastify.addHook('onClose', async () => { await Promise.all(deniedWrites) })
  if (opts.routes) {
    const routesOptions = { prefix: opts.routePrefix, api, recordDenied, choices, maxGracePeriodSeconds: opts.maxGracePeriodSeconds }
    if (opts.hook) {
      await fastify.register(keyRoutes, routesOptions)
    } else {
      // Without the global hook the management routes keep their own: they are never unguarded.
      await fastify.register(async function guardedKeyRoutes (scope) {
        scope.addHook('onRequest', authHook)
        await scope.register(keyRoutes, routesOptions)
      })
    }
  }
  if (opts.console !== false && consoleSessions !== undefined) {
    await fastify.register(consoleRoutes, {
      prefix: opts.console.path,
      path: opts.console.path,
      gate: createConsoleGate(authDeps),
      sessions: consoleSessions,
      sendRefusal,
      settings: {
        routePrefix: opts.routePrefix,
        scopes: opts.scopes,
        plans: Object.keys(opts.plans),
        defaultPlan: opts.defaultPlan,
        keyTypes: KEY_TYPES,
        maxGracePeriodSeconds: opts.maxGracePeriodSeconds,
        auditActions: AUDIT_ACTIONS
      }
    })
  }
}

/** The host's store if it gave one, Redis when a client is at hand, this process's memory otherwise. */
function rateLimitStore (opts: ResolvedOptions, redis: RedisClient | undefined): RateLimitStore {
  if (opts.rateLimitStore !== undefined) return opts.rateLimitStore
  if (redis !== undefined) return new RedisRateLimitStore({ client: redis, timeoutMs: opts.redisTimeout })
  return new MemoryRateLimitStore()
}

/** Redis behind this process's cache when a client is at hand; nothing shared otherwise. */
function sharedKeyCache (fastify: FastifyInstance, opts: ResolvedOptions, redis: RedisClient | undefined): KeyCache | undefined {
  if (redis === undefined) return undefined
  return new RedisKeyCache({
    client: redis,
    secret: opts.secret,
    cacheTtl: opts.cacheTtl,
    // Past freshness plus the stale-if-error grace an entry is of no use to anyone.
    entryTtlMs: opts.cacheTtl + opts.staleIfError,
    timeoutMs: opts.redisTimeout,
    log: fastify.log,
    now: opts.now
  })
}

/** API-key authentication for the whole app. Register once, before the routes it protects. */
export const keygate: FastifyPluginAsync<KeygateOptions> = fp(keygatePlugin, { fastify: '5.x', name: 'fastify-keygate' })
export default keygate

export type { Caller, ChangeKeyOptions, CreatedKey, CreateKeyInput, CreateKeyOptions, CreditsInput, DeleteKeyOptions, KeyCredits, KeygateApi, KeyInfo, KeyUsage, ListKeysOptions, RotateKeyInput, TenantOptions, UpdateKeyInput, UsageOptions } from './api/keygate-api.js'
export { DEFAULT_TENANT } from './api/keygate-api.js'
export type { AuditPage, AuditQuery, AuditedOptions } from './api/keygate-api.js'
export type { AuditAction, AuditActor, AuditContext, AuditEvent, AuditTarget } from './audit/audit-event.js'
export { AUDIT_ACTIONS } from './audit/audit-event.js'
export type { AuthenticatedKey, KeyRecord } from './records/key-info.js'
export type { RouteApiKeyConfig } from './auth/route-config.js'
export { API_KEY_DENIALS, type ApiKeyDenial } from './auth/denial.js'
export type { KeygateVerifiers } from './auth/hook.js'
export type { ErrorResponse } from './http/send-error.js'
export type { RefusalError } from './errors.js'
export { CHANNELS, type Argon2Message, type CacheMessage, type DenialMessage, type StoreErrorMessage, type VerificationMessage } from './diagnostics/channels.js'
export { signedInUserOf, type AuthenticateManagement, type SignedInUser } from './auth/management-sign-in.js'
export type { KeyType } from './db/schema.js'
export { KEY_TYPES } from './db/schema.js'
export { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './db/migrate.js'
export type { Argon2Options, KeyHasher } from './keys/hasher.js'
export type { CachedKey, Invalidation, KeyCache } from './cache/key-cache.js'
export { MemoryKeyCache, type MemoryKeyCacheOptions } from './cache/memory.cache.js'
export { RedisKeyCache, type RedisKeyCacheOptions } from './cache/redis.cache.js'
export type { ConnectionOptions, KeygateOptions } from './options.js'
export type { RedisClient } from './redis/client.js'
export { DEFAULT_SCOPES } from './auth/scopes.js'
export type { HeaderStyle } from './ratelimit/headers.js'
export type { OnStoreError } from './ratelimit/limiter.js'
export { DEFAULT_PLANS, type Limits, type Plan } from './ratelimit/plans.js'
export { MemoryRateLimitStore } from './ratelimit/memory.store.js'
export { RedisRateLimitStore, type RedisRateLimitStoreOptions } from './ratelimit/redis.store.js'
export type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './ratelimit/store.js'
export * as errors from './errors.js'
export { SECURITY_SCHEME, SECURITY_SCHEME_NAME } from './openapi/security.js'
