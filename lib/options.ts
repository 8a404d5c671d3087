import { randomBytes } from 'node:crypto'
import type { RedisClient } from './redis/client.js'
import type { Kysely } from 'kysely'
import type { PoolConfig } from 'pg'
import { AUDIT_EXPORT, AUDIT_READ, DEFAULT_SCOPES, KEYS_READ, KEYS_WRITE, SCOPE_PATTERN } from './auth/scopes.js'
import type { AuthenticateManagement } from './auth/management-sign-in.js'
import type { ErrorResponse } from './http/send-error.js'
import type { KeyCache } from './cache/key-cache.js'
import { DEFAULTS } from './defaults.js'
import { InvalidOptionError } from './errors.js'
import { type Argon2Options, type KeyHasher, OWASP_ARGON2 } from './keys/hasher.js'
import { MAX_PREFIX_LENGTH } from './keys/key-text.js'
import { HEADER_STYLES, type HeaderStyle } from './ratelimit/headers.js'
import type { OnStoreError } from './ratelimit/limiter.js'
import { DEFAULT_PLANS, hasLimits, type Plan } from './ratelimit/plans.js'
import type { RateLimitStore } from './ratelimit/store.js'

// The defaults live in defaults.ts; exported here too, beside the options they fill in.
export { DEFAULTS }

/** A connection string the plugin turns into a pg pool that it owns and closes. */
export interface ConnectionOptions {
  connectionString: string
  /** Extra pg pool settings. The plugin's defaults bound every wait (see README). */
  pool?: Omit<PoolConfig, 'connectionString'>
}

export interface KeygateOptions {
  /**
   * Where keys live: a `Kysely` instance the host owns (the plugin never closes it), or
   * `{ connectionString }`, from which the plugin builds a pg pool that it owns and closes.
   */
  db: Kysely<any> | ConnectionOptions
  /**
   * PostgreSQL schema for the plugin's tables (created by the migrations if missing).
   * Default: none, so the connection's search_path decides (usually `public`).
   */
  schema?: string
  /** Run the plugin's migrations at startup. Default `true`. */
  migrate?: boolean
  /** Accepted key prefixes; the first is issued unless a create asks for another. Default `['metlo', 'mlo']`. */
  prefixes?: readonly string[]
  /** Where the management routes are mounted. Default `/api/v1/keys`. */
  routePrefix?: string
  /** `false` registers no management routes (the programmatic API still works). Default `true`. */
  routes?: boolean
  /** Most live keys at once. Default `50`. */
  maxKeys?: number
  /**
   * Longest a key may live, in days: caps `expiresAt` and `expiresInDays`, and a key created
   * without either expires after this long. Default: none (keys live until deleted).
   */
  maxLifetimeDays?: number
  /** Keys older than this many days are listed with `rotationDue: true`. Default 90. */
  rotateAfterDays?: number
  /**
   * Audit events older than this many days are removed, in batches, by a job off the request
   * path. Default: none (events are kept until the host removes them).
   */
  auditRetentionDays?: number
  /** How often each instance records key expiries and applies `auditRetentionDays`, in ms. Default 60000. */
  auditJobMs?: number
  /** Longest grace period a rotation may give the old key text, in seconds. Default 604800 (7 days). */
  maxGracePeriodSeconds?: number
  /** How often each instance writes the usage it counted to the database, in ms. Default 10000. */
  usageFlushMs?: number
  /**
   * Server secret for key fingerprints (keyed SHA-256), at least 32 bytes. Required when Redis is
   * used, since instances must agree on fingerprints. Default: random per process.
   */
  secret?: string | Buffer
  /** argon2id parameters for new keys. Default OWASP's m=19456 KiB, t=2, p=1. */
  argon2?: Partial<Argon2Options>
  /** Another way to hash and verify keys (it must stay slow: this is what stands between a stolen table and the keys). Default argon2id. */
  hasher?: KeyHasher
  /**
   * The level instances share, behind each process's own cache: replaces the built-in Redis one.
   * Default: Redis when Redis is used, none otherwise.
   */
  cache?: KeyCache
  /** Most verified keys held in this process (and deletes, misses and refusals remembered). Default 10,000. */
  cacheSize?: number
  /** How long a verified record is trusted without reading the database, in ms. Default 5000. */
  cacheTtl?: number
  /** How long past `cacheTtl` a cached record keeps serving while the database is down, in ms. Default 30000. */
  staleIfError?: number
  /**
   * The permission vocabulary. Keys hold `*`, scopes from it, or `<namespace>:*`. `keys:read` and
   * `keys:write` are always added (the management routes need them).
   * Default: query, federate, connector:read, connector:write, audit:read, audit:export, keys:read, keys:write.
   */
  scopes?: readonly string[]
  /**
   * Plans by name, each `{ perMinute?, perHour? }`. A plan with neither takes its limits from each key.
   * Default: free 60/min and 1,000/h; pro 300/min and 10,000/h; enterprise per key.
   */
  plans?: Record<string, Plan>
  /** The plan of a key created without one. It must set limits. Default `free`. */
  defaultPlan?: string
  /** Rate-limit fields on responses: `x-ratelimit`, `ietf` (the IETF draft's) or `both`. Default `x-ratelimit`. */
  headers?: HeaderStyle
  /** When the rate-limit store fails or times out: `allow` the request (logged at most once a minute) or `deny` it with 503. Default `allow`. */
  onStoreError?: OnStoreError
  /**
   * An ioredis client (`Redis` or `Cluster`) for the rate-limit counters and the shared key cache.
   * Default: `fastify.redis` when @fastify/redis is registered before this plugin; otherwise
   * counters stay in this process.
   */
  redis?: RedisClient
  /** Longest wait for Redis, in ms, before `onStoreError` applies. Default 250. */
  redisTimeout?: number
  /**
   * Most argon2 hashes and verifications running at once in this process. Default: libuv's
   * thread-pool size (UV_THREADPOOL_SIZE, else 4), where argon2 runs.
   */
  hashConcurrency?: number
  /** Most first uses waiting for argon2 beyond those; one more is answered 503 with Retry-After. Default 100. */
  hashQueue?: number
  /** Another rate-limit store; replaces both built-in ones. */
  rateLimitStore?: RateLimitStore
  /**
   * The host's sign-in for people on the management routes (SSO): answers `{ tenant, user, scopes }`
   * for a person it recognises, or null to fall back to an API key. Default: keys only.
   */
  authenticateManagement?: AuthenticateManagement
  /**
   * `false` registers no global `onRequest` hook: host routes are guarded only where the host puts
   * `fastify.keygate.verify` (or `verifyWith`), e.g. with @fastify/auth. The management routes keep
   * their guard. Default `true`.
   */
  hook?: boolean
  /**
   * The host's body for a refusal (401, 403, 429 and 503) of the hook and of `verify`:
   * `(error, request) => body` (or a promise of it), like @fastify/rate-limit's
   * `errorResponseBuilder`. Status and headers stay the plugin's. Default: the error contract's bodies.
   */
  errorResponse?: ErrorResponse
  /**
   * The key-management console: a web page, served by the plugin, where people sign in (with a key
   * holding `keys:read`, or through `authenticateManagement`) and list, create, rotate and revoke
   * keys, see their usage and read and export the audit log. `true` serves it at `/keys-console`;
   * `{ path }` elsewhere. It needs the management routes (`routes: true`). Default `false`.
   */
  console?: boolean | { path?: string }
  /** The clock, in milliseconds since the epoch. Default `Date.now`. For tests. */
  now?: () => number
}

export interface ResolvedOptions {
  readonly db: Kysely<any> | Readonly<ConnectionOptions>
  readonly schema: string | undefined
  readonly migrate: boolean
  readonly prefixes: readonly string[]
  readonly routePrefix: string
  readonly routes: boolean
  readonly maxKeys: number
  readonly maxLifetimeDays: number | undefined
  readonly auditRetentionDays: number | undefined
  readonly auditJobMs: number
  readonly rotateAfterDays: number
  readonly maxGracePeriodSeconds: number
  readonly usageFlushMs: number
  readonly secret: Buffer
  /** False when `secret` was drawn at random here (fine for one process, not for a shared cache). */
  readonly secretGiven: boolean
  readonly argon2: Readonly<Argon2Options>
  readonly hasher: KeyHasher | undefined
  readonly cache: KeyCache | undefined
  readonly cacheSize: number
  readonly cacheTtl: number
  readonly staleIfError: number
  readonly scopes: readonly string[]
  readonly plans: Readonly<Record<string, Readonly<Plan>>>
  readonly defaultPlan: string
  readonly headers: HeaderStyle
  readonly onStoreError: OnStoreError
  readonly redis: RedisClient | undefined
  readonly redisTimeout: number
  readonly hashConcurrency: number
  readonly hashQueue: number
  readonly rateLimitStore: RateLimitStore | undefined
  readonly authenticateManagement: AuthenticateManagement | undefined
  readonly hook: boolean
  readonly errorResponse: ErrorResponse | undefined
  /** Where the console is served, or false when it is off. */
  readonly console: Readonly<{ path: string }> | false
  readonly now: () => number
}

const PREFIX_PATTERN = new RegExp(`^[a-z][a-z0-9]{0,${MAX_PREFIX_LENGTH - 1}}$`)
const MIN_SECRET_BYTES = 32
// An unquoted PostgreSQL identifier of at most 63 bytes.
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/

function fail (option: string, reason: string): never {
  throw new InvalidOptionError(option, reason)
}

function isKysely (db: unknown): db is Kysely<any> {
  return typeof db === 'object' && db !== null &&
    typeof (db as Kysely<any>).selectFrom === 'function' &&
    typeof (db as Kysely<any>).transaction === 'function'
}

function resolveDb (db: unknown): ResolvedOptions['db'] {
  if (isKysely(db)) return db
  if (typeof db === 'object' && db !== null && typeof (db as ConnectionOptions).connectionString === 'string' &&
    (db as ConnectionOptions).connectionString !== '') {
    return Object.freeze({ ...(db as ConnectionOptions) })
  }
  return fail('db', 'expected a Kysely instance or { connectionString }')
}

function resolvePrefixes (prefixes: unknown): readonly string[] {
  if (!Array.isArray(prefixes) || prefixes.length === 0) fail('prefixes', 'expected a non-empty array of strings')
  for (const prefix of prefixes) {
    if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
      fail('prefixes', `"${String(prefix)}" must be 1 to ${MAX_PREFIX_LENGTH} lower-case letters and digits, starting with a letter`)
    }
  }
  if (new Set(prefixes).size !== prefixes.length) fail('prefixes', 'contains a duplicate')
  return Object.freeze([...prefixes])
}

function resolveRoutePrefix (routePrefix: unknown): string {
  if (typeof routePrefix !== 'string' || !routePrefix.startsWith('/') || routePrefix.endsWith('/')) {
    fail('routePrefix', 'expected a path that starts with "/" and does not end with one')
  }
  return routePrefix
}

function resolveSchema (schema: unknown): string | undefined {
  if (schema === undefined) return undefined
  if (typeof schema !== 'string' || !SCHEMA_PATTERN.test(schema)) {
    fail('schema', 'expected a lower-case PostgreSQL identifier: letters, digits and _, at most 63')
  }
  return schema
}

function resolvePositiveInteger (option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(option, 'expected a positive integer')
  return value
}

function resolveSecret (secret: unknown): Buffer {
  if (secret === undefined) return randomBytes(MIN_SECRET_BYTES)
  const bytes = typeof secret === 'string' ? Buffer.from(secret) : secret
  if (!Buffer.isBuffer(bytes) || bytes.length < MIN_SECRET_BYTES) fail('secret', `expected a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
  return bytes
}

function resolveArgon2 (argon2: unknown): Readonly<Argon2Options> {
  if (argon2 === undefined) return OWASP_ARGON2
  if (typeof argon2 !== 'object' || argon2 === null) fail('argon2', 'expected { memoryCost, timeCost, parallelism }')
  const merged = { ...OWASP_ARGON2, ...argon2 }
  for (const name of ['memoryCost', 'timeCost', 'parallelism'] as const) {
    resolvePositiveInteger(`argon2.${name}`, merged[name])
  }
  // argon2 itself requires at least 8 KiB per lane.
  if (merged.memoryCost < 8 * merged.parallelism) fail('argon2.memoryCost', 'must be at least 8 × parallelism')
  return Object.freeze(merged)
}

function resolveScopes (scopes: unknown): readonly string[] {
  if (!Array.isArray(scopes)) fail('scopes', 'expected an array of scope names')
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_PATTERN.test(scope)) {
      fail('scopes', `"${String(scope)}" must be lower-case words joined by ":", like connector:read`)
    }
  }
  return Object.freeze([...new Set([...scopes as string[], KEYS_READ, KEYS_WRITE, AUDIT_READ, AUDIT_EXPORT])])
}

const PLAN_NAME = /^[a-z][a-z0-9_-]*$/

function resolvePlans (plans: unknown): Readonly<Record<string, Readonly<Plan>>> {
  if (typeof plans !== 'object' || plans === null || Object.keys(plans).length === 0) fail('plans', 'expected { name: { perMinute?, perHour? } }')
  const resolved: Record<string, Readonly<Plan>> = {}
  for (const [name, plan] of Object.entries(plans)) {
    if (!PLAN_NAME.test(name)) fail('plans', `plan name "${name}" must be lower-case letters, digits, - and _`)
    if (typeof plan !== 'object' || plan === null) fail(`plans.${name}`, 'expected { perMinute?, perHour? }')
    for (const property of Object.keys(plan)) {
      if (property !== 'perMinute' && property !== 'perHour') fail(`plans.${name}`, `unknown property "${property}"`)
      resolvePositiveInteger(`plans.${name}.${property}`, (plan as Record<string, unknown>)[property])
    }
    resolved[name] = Object.freeze({ ...plan as Plan })
  }
  return Object.freeze(resolved)
}

function resolveDefaultPlan (defaultPlan: unknown, plans: Readonly<Record<string, Readonly<Plan>>>): string {
  if (typeof defaultPlan !== 'string' || !Object.hasOwn(plans, defaultPlan)) fail('defaultPlan', `expected one of ${Object.keys(plans).join(', ')}`)
  if (!hasLimits(plans[defaultPlan] as Plan)) fail('defaultPlan', `plan "${defaultPlan}" sets no limits; a default plan must`)
  return defaultPlan
}

function resolveOneOf<T extends string> (option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) fail(option, `expected one of ${allowed.join(', ')}`)
  return value as T
}

function resolveRedis (redis: unknown): RedisClient | undefined {
  if (redis === undefined) return undefined
  if (typeof redis !== 'object' || redis === null || typeof (redis as RedisClient).defineCommand !== 'function') fail('redis', 'expected an ioredis client')
  return redis as RedisClient
}

function resolveStore (store: unknown): RateLimitStore | undefined {
  if (store === undefined) return undefined
  if (typeof store !== 'object' || store === null || typeof (store as RateLimitStore).consume !== 'function') fail('rateLimitStore', 'expected an object with consume()')
  return store as RateLimitStore
}

function resolveHasher (hasher: unknown): KeyHasher | undefined {
  if (hasher === undefined) return undefined
  if (typeof hasher !== 'object' || hasher === null || typeof (hasher as KeyHasher).hash !== 'function' || typeof (hasher as KeyHasher).verify !== 'function') {
    fail('hasher', 'expected { hash(text), verify(hash, text) }')
  }
  return hasher as KeyHasher
}

const CACHE_METHODS = ['get', 'set', 'delete', 'onInvalidate', 'close'] as const

function resolveCache (cache: unknown): KeyCache | undefined {
  if (cache === undefined) return undefined
  if (typeof cache !== 'object' || cache === null || CACHE_METHODS.some((m) => typeof (cache as Record<string, unknown>)[m] !== 'function')) {
    fail('cache', `expected an object with ${CACHE_METHODS.join(', ')}`)
  }
  return cache as KeyCache
}

function resolveNonNegativeInteger (option: string, value: unknown, reason = 'expected a whole number of milliseconds, 0 or more'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(option, reason)
  return value
}

function resolveFunction<T> (option: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function') fail(option, 'expected a function')
  return value
}

function resolveBoolean (option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(option, 'expected true or false')
  return value
}

// Path segments of unreserved characters only: the path is written into the page's HTML.
const CONSOLE_PATH_PATTERN = /^(\/[A-Za-z0-9._~-]+)+$/

function resolveConsole (value: unknown, routes: boolean, routePrefix: string): ResolvedOptions['console'] {
  if (value === undefined || value === false) return false
  let path: unknown = DEFAULTS.consolePath
  if (value !== true) {
    if (typeof value !== 'object' || value === null || Object.keys(value).some((name) => name !== 'path')) fail('console', 'expected true, false or { path }')
    path = (value as { path?: unknown }).path ?? DEFAULTS.consolePath
  }
  if (typeof path !== 'string' || !CONSOLE_PATH_PATTERN.test(path)) {
    fail('console.path', 'expected a path like /keys-console: segments of letters, digits, ".", "_", "~" and "-", no trailing "/"')
  }
  if (!routes) fail('console', 'needs the management routes (routes: true): the page calls them')
  if (path === routePrefix || path.startsWith(`${routePrefix}/`) || routePrefix.startsWith(`${path}/`)) {
    fail('console.path', `must not be the management routes' prefix (${routePrefix}), inside it, or around it`)
  }
  return Object.freeze({ path })
}

/** Validates the options once, at registration, and returns a frozen copy with every default filled in. */
export function resolveOptions (options: KeygateOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options', 'expected an object')
  const now = options.now ?? Date.now
  if (typeof now !== 'function') fail('now', 'expected a function returning milliseconds since the epoch')
  const plans = resolvePlans(options.plans ?? DEFAULT_PLANS)
  const routes = resolveBoolean('routes', options.routes ?? DEFAULTS.routes)
  const routePrefix = resolveRoutePrefix(options.routePrefix ?? DEFAULTS.routePrefix)
  return Object.freeze({
    db: resolveDb(options.db),
    schema: resolveSchema(options.schema),
    migrate: resolveBoolean('migrate', options.migrate ?? DEFAULTS.migrate),
    prefixes: resolvePrefixes(options.prefixes ?? DEFAULTS.prefixes),
    routePrefix,
    routes,
    maxKeys: resolvePositiveInteger('maxKeys', options.maxKeys ?? DEFAULTS.maxKeys),
    maxLifetimeDays: options.maxLifetimeDays === undefined ? undefined : resolvePositiveInteger('maxLifetimeDays', options.maxLifetimeDays),
    rotateAfterDays: resolvePositiveInteger('rotateAfterDays', options.rotateAfterDays ?? DEFAULTS.rotateAfterDays),
    auditRetentionDays: options.auditRetentionDays === undefined ? undefined : resolvePositiveInteger('auditRetentionDays', options.auditRetentionDays),
    auditJobMs: resolvePositiveInteger('auditJobMs', options.auditJobMs ?? DEFAULTS.auditJobMs),
    maxGracePeriodSeconds: resolveNonNegativeInteger('maxGracePeriodSeconds', options.maxGracePeriodSeconds ?? DEFAULTS.maxGracePeriodSeconds, 'expected a whole number of seconds, 0 or more'),
    usageFlushMs: resolvePositiveInteger('usageFlushMs', options.usageFlushMs ?? DEFAULTS.usageFlushMs),
    secret: resolveSecret(options.secret),
    secretGiven: options.secret !== undefined,
    argon2: resolveArgon2(options.argon2),
    hasher: resolveHasher(options.hasher),
    cache: resolveCache(options.cache),
    cacheSize: resolvePositiveInteger('cacheSize', options.cacheSize ?? DEFAULTS.cacheSize),
    cacheTtl: resolveNonNegativeInteger('cacheTtl', options.cacheTtl ?? DEFAULTS.cacheTtl),
    staleIfError: resolveNonNegativeInteger('staleIfError', options.staleIfError ?? DEFAULTS.staleIfError),
    scopes: resolveScopes(options.scopes ?? DEFAULT_SCOPES),
    plans,
    defaultPlan: resolveDefaultPlan(options.defaultPlan ?? DEFAULTS.defaultPlan, plans),
    headers: resolveOneOf('headers', options.headers ?? DEFAULTS.headers, HEADER_STYLES),
    onStoreError: resolveOneOf<OnStoreError>('onStoreError', options.onStoreError ?? DEFAULTS.onStoreError, ['allow', 'deny']),
    redis: resolveRedis(options.redis),
    redisTimeout: resolvePositiveInteger('redisTimeout', options.redisTimeout ?? DEFAULTS.redisTimeout),
    hashConcurrency: resolvePositiveInteger('hashConcurrency', options.hashConcurrency ?? DEFAULTS.hashConcurrency),
    hashQueue: resolveNonNegativeInteger('hashQueue', options.hashQueue ?? DEFAULTS.hashQueue, 'expected a whole number, 0 or more'),
    rateLimitStore: resolveStore(options.rateLimitStore),
    authenticateManagement: resolveFunction('authenticateManagement', options.authenticateManagement),
    hook: resolveBoolean('hook', options.hook ?? DEFAULTS.hook),
    errorResponse: resolveFunction('errorResponse', options.errorResponse),
    console: resolveConsole(options.console, routes, routePrefix),
    now
  })
}
