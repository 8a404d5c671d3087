import type { Kysely } from 'kysely'
import { FULL_ACCESS, firstMissing } from '../auth/scopes.js'
import type { KeygateDatabase, KeyType } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import {
  insufficientScope,
  KeyLimitReachedError,
  KeyNameTakenError,
  KeyNotFoundError,
  LimitExceedsCallerError,
  RateLimitRequiredError
} from '../errors.js'
import type { KeyHasher } from '../keys/hasher.js'
import { generateKey } from '../keys/key-text.js'
import { effectiveLimits, hasLimits, type Limits, type Plan } from '../ratelimit/plans.js'
import type { KeyInfo, ToKeyInfo } from '../records/key-info.js'
import {
  countLiveKeys,
  findLiveKeyForUpdate,
  insertKey,
  listLiveKeys,
  liveNameExists,
  lockForCreate,
  markDeleted
} from '../repositories/api-key.repository.js'
import {
  type CreateKeyChoices,
  createKeyBodySchema,
  createKeyValidationError,
  createStrictAjv,
  isValidName,
  shownName
} from './create-key.schema.js'

export type { KeyInfo }

export interface CreateKeyInput {
  /** Unique among live keys; 1 to 128 characters, no control characters. */
  name: string
  /** Default `GENERIC`. */
  keyFor?: KeyType
  /** One of the configured prefixes. Default: the first configured prefix. */
  prefix?: string
  /** `*`, scopes of the vocabulary, or `namespace:*`. Default `['*']` (full access). */
  scopes?: string[]
  /** One of the configured plans. Default: the `defaultPlan` option. */
  plan?: string
  /** This key's own limits, in place of its plan's. Required on a plan without limits. */
  rateLimit?: Partial<Limits>
}

/** The key a management call acts for. Management never exceeds its caller. */
export interface Caller {
  scopes: readonly string[]
  limits: Limits
}

export interface CreateKeyOptions {
  /**
   * The key asking for the new one: it cannot grant a permission it lacks, nor, without `*`, a
   * rate limit above its own (403).
   */
  requestedBy?: Caller
}

export interface DeleteKeyOptions {
  /** The key asking for the delete: it may delete only keys whose permissions it holds (403). */
  requestedBy?: Caller
}

export interface CreatedKey extends KeyInfo {
  /** The full key. Returned here once and never again. */
  apiKey: string
}

/** `fastify.keygate`: what the management routes call, for hosts that provision keys from code. */
export interface KeygateApi {
  createKey (input: CreateKeyInput, options?: CreateKeyOptions): Promise<CreatedKey>
  /** Every live key, oldest first. */
  listKeys (): Promise<KeyInfo[]>
  /** Live ONBOARDING keys, newest first. */
  listOnboardingKeys (): Promise<KeyInfo[]>
  /** Deletes the live key with this name; it stops authenticating at once, on every instance. */
  deleteKey (name: string, options?: DeleteKeyOptions): Promise<void>
  /** Brings the plugin's tables up to date (run at startup unless `migrate: false`). */
  migrate (): Promise<void>
}

export interface KeygateApiDeps {
  /** Scoped to the plugin's schema, when it has one. */
  db: Kysely<KeygateDatabase>
  /** Runs the migrations; it needs the unscoped connection and the schema name. */
  migrate: () => Promise<void>
  hasher: KeyHasher
  choices: CreateKeyChoices
  defaultPlan: string
  planOf: (name: string) => Plan
  toKeyInfo: ToKeyInfo
  maxKeys: number
  now: () => number
  /** Called after a delete, so authentication forgets the key at once, everywhere. */
  onDeleted?: (keyId: string) => Promise<void>
}

// Eight characters of base62 make a collision rare; a few draws make it irrelevant.
const MAX_ID_DRAWS = 5

export function createKeygateApi (deps: KeygateApiDeps): KeygateApi {
  const { db, hasher, choices, maxKeys, now, planOf, toKeyInfo: info } = deps
  const validateCreate = createStrictAjv().compile(createKeyBodySchema(choices))

  async function createKey (input: CreateKeyInput, options: CreateKeyOptions = {}): Promise<CreatedKey> {
    // Validate a copy: Ajv fills in defaults, and the caller's object is theirs.
    const body = typeof input === 'object' && input !== null ? { ...input } : input
    if (!validateCreate(body)) throw createKeyValidationError(body, validateCreate.errors ?? [], choices)
    const {
      name,
      keyFor = 'GENERIC',
      prefix = choices.prefixes[0] as string,
      scopes = [FULL_ACCESS],
      plan = deps.defaultPlan,
      rateLimit = {}
    } = body as CreateKeyInput
    const limits = effectiveLimits(planOf(plan), rateLimit)
    const caller = options.requestedBy
    if (caller !== undefined) scopesWithinCaller(caller, scopes)
    if (!hasLimits(limits)) throw new RateLimitRequiredError(plan)
    if (caller !== undefined) limitsWithinCaller(caller, limits)
    // Checked before argon2, so a create refused for its name or the limit costs no hashing...
    await whileAvailable(async () => await checkRoomFor(db, name))

    const row = {
      prefix,
      name,
      key_for: keyFor,
      created_at: new Date(now()),
      scopes,
      plan,
      rate_limit_per_minute: rateLimit.perMinute ?? null,
      rate_limit_per_hour: rateLimit.perHour ?? null
    }
    // ...and argon2 runs outside the transaction: it takes tens of milliseconds and must not hold
    // the lock. An id already taken (eight base62 characters make it rare) means a new draw, hashed
    // outside the lock again.
    for (let draw = 1; ; draw++) {
      const key = generateKey(prefix)
      const hash = await hasher.hash(key.text)
      const inserted = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
        await lockForCreate(trx)
        // Again under the lock: another create may have taken the name or the last place meanwhile.
        await checkRoomFor(trx, name)
        return await insertKey(trx, { ...row, id: key.keyId, hash })
      }))
      if (inserted) return { apiKey: key.text, ...info({ ...row, id: key.keyId }) }
      if (draw === MAX_ID_DRAWS) throw new Error('Could not draw an unused key id')
    }
  }

  /** Throws when the name is taken among live keys or no place is left. */
  async function checkRoomFor (on: Kysely<KeygateDatabase>, name: string): Promise<void> {
    if (await liveNameExists(on, name)) throw new KeyNameTakenError(name)
    if (await countLiveKeys(on) >= maxKeys) throw new KeyLimitReachedError(maxKeys)
  }

  async function deleteKey (name: string, options: DeleteKeyOptions = {}): Promise<void> {
    // A name create would refuse names no key: no database call for it.
    if (!isValidName(name)) throw new KeyNotFoundError(typeof name === 'string' ? shownName(name) : String(name))
    const id = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
      const key = await findLiveKeyForUpdate(trx, name)
      if (key === undefined) throw new KeyNotFoundError(name)
      if (options.requestedBy !== undefined) {
        scopesWithinCaller(options.requestedBy, key.scopes)
      }
      await markDeleted(trx, key.id, new Date(now()))
      return key.id
    }))
    await deps.onDeleted?.(id)
  }

  return {
    createKey,
    listKeys: async () => (await whileAvailable(() => listLiveKeys(db))).map(info),
    listOnboardingKeys: async () =>
      (await whileAvailable(() => listLiveKeys(db, { keyFor: 'ONBOARDING', newestFirst: true }))).map(info),
    deleteKey,
    migrate: () => whileAvailable(deps.migrate)
  }
}

const WINDOW_NAMES = { perMinute: 'per minute', perHour: 'per hour' } as const

/** Management never exceeds its caller: no key grants, or deletes, a permission it lacks. */
function scopesWithinCaller (caller: Caller, scopes: readonly string[]): void {
  const missing = firstMissing(caller.scopes, scopes)
  if (missing !== undefined) throw insufficientScope(missing)
}

/** Nor does a key without `*` grant a rate limit above its own, in either window (unlimited is above any number). */
function limitsWithinCaller (caller: Caller, limits: Limits): void {
  if (caller.scopes.includes(FULL_ACCESS)) return
  for (const window of ['perMinute', 'perHour'] as const) {
    const own = caller.limits[window]
    const asked = limits[window]
    if (own !== null && (asked === null || asked > own)) {
      throw new LimitExceedsCallerError(`${asked === null ? 'unlimited' : asked} ${WINDOW_NAMES[window]} (its own: ${own})`)
    }
  }
}
