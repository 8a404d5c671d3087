import type { OnStoreError } from './ratelimit/limiter.js'
import type { HeaderStyle } from './ratelimit/headers.js'

// libuv's thread pool, where argon2 runs: UV_THREADPOOL_SIZE threads, 4 unless it says otherwise.
const threadPoolSize = Number.parseInt(process.env.UV_THREADPOOL_SIZE ?? '', 10)

/** Every default of the plugin, in one place: the options' and those of the parts they set. */
export const DEFAULTS = Object.freeze({
  migrate: true,
  prefixes: Object.freeze(['metlo', 'mlo']),
  routePrefix: '/api/v1/keys',
  routes: true,
  /** Where the console is served with `console: true`. */
  consolePath: '/keys-console',
  hook: true,
  maxKeys: 50,
  defaultPlan: 'free',
  headers: 'x-ratelimit' as HeaderStyle,
  onStoreError: 'allow' as OnStoreError,
  redisTimeout: 250,
  cacheSize: 10_000,
  cacheTtl: 5_000,
  staleIfError: 30_000,
  hashConcurrency: threadPoolSize > 0 ? threadPoolSize : 4,
  hashQueue: 100,
  /** Keys older than this are listed with `rotationDue: true` (the Metalogue recommendation). */
  rotateAfterDays: 90,
  /** Longest grace period a rotation may give the old key text: 7 days. */
  maxGracePeriodSeconds: 604_800,
  /** How often counted usage is written to the database, in ms. */
  usageFlushMs: 10_000,
  /** How often key expiries are recorded and audit retention applied, in ms. */
  auditJobMs: 60_000,
  /** argon2 runs per key id per minute, counting those still running. */
  verificationsPerKeyId: 5,
  /** How long a key queued for renewal waits for others to be read with it, in ms. */
  renewalDelayMs: 100,
  /** Most keys renewed in one read. */
  renewalBatch: 500,
  /** Names in Redis. */
  rateLimitKeyPrefix: 'keygate:rl:',
  cacheKeyPrefix: 'keygate:key:'
})
