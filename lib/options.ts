import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { PoolConfig } from 'pg'
import { InvalidOptionError } from './errors.js'
import { type Argon2Options, OWASP_ARGON2 } from './keys/hasher.js'
import { MAX_PREFIX_LENGTH } from './keys/key-text.js'

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
   * Server secret for key fingerprints (HMAC-SHA256), at least 32 bytes. Instances that share a
   * cache must share it. Default: random per process.
   */
  secret?: string | Buffer
  /** argon2id parameters for new keys. Default OWASP's m=19456 KiB, t=2, p=1. */
  argon2?: Partial<Argon2Options>
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
  readonly secret: Buffer
  readonly argon2: Readonly<Argon2Options>
  readonly now: () => number
}

export const DEFAULTS = Object.freeze({
  migrate: true,
  prefixes: Object.freeze(['metlo', 'mlo']),
  routePrefix: '/api/v1/keys',
  routes: true,
  maxKeys: 50
})

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

function resolveBoolean (option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(option, 'expected true or false')
  return value
}

/** Validates the options once, at registration, and returns a frozen copy with every default filled in. */
export function resolveOptions (options: KeygateOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options', 'expected an object')
  const now = options.now ?? Date.now
  if (typeof now !== 'function') fail('now', 'expected a function returning milliseconds since the epoch')
  return Object.freeze({
    db: resolveDb(options.db),
    schema: resolveSchema(options.schema),
    migrate: resolveBoolean('migrate', options.migrate ?? DEFAULTS.migrate),
    prefixes: resolvePrefixes(options.prefixes ?? DEFAULTS.prefixes),
    routePrefix: resolveRoutePrefix(options.routePrefix ?? DEFAULTS.routePrefix),
    routes: resolveBoolean('routes', options.routes ?? DEFAULTS.routes),
    maxKeys: resolvePositiveInteger('maxKeys', options.maxKeys ?? DEFAULTS.maxKeys),
    secret: resolveSecret(options.secret),
    argon2: resolveArgon2(options.argon2),
    now
  })
}
