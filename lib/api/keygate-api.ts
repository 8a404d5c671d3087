import type { Kysely } from 'kysely'
import type { AuthenticatedKey } from '../auth/authenticator.js'
import { FULL_ACCESS, firstMissing } from '../auth/scopes.js'
import type { KeygateDatabase, KeyType } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import { KeyLimitReachedError, KeyNameTakenError, KeyNotFoundError, RateLimitRequiredError } from '../errors.js'
import { insufficientScope } from '../http/send-error.js'
import type { KeyHasher } from '../keys/hasher.js'
import { generateKey } from '../keys/key-text.js'
import { effectiveLimits, hasLimits, type Limits, type Plan } from '../ratelimit/plans.js'
import {
  countLiveKeys,
  deleteLiveKeyByName,
  insertKey,
  listLiveKeys,
  liveNameExists,
  lockForCreate
} from '../repositories/api-key.repository.js'
import { type CreateKeyChoices, createKeyBodySchema, createKeyValidationError, createStrictAjv } from './create-key.schema.js'
import type { KeyInfo, ToKeyInfo } from './key-info.js'

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

export interface CreateKeyOptions {
  /** The key asking for the new one: it cannot grant a permission it lacks (403). */
  requestedBy?: Pick<AuthenticatedKey, 'scopes'>
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
  /** Deletes the live key with this name; it stops authenticating at once. */
  deleteKey (name: string): Promise<void>
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
    if (options.requestedBy !== undefined) {
      const missing = firstMissing(options.requestedBy.scopes, scopes)
      if (missing !== undefined) throw insufficientScope(missing)
    }
    if (!hasLimits(effectiveLimits(planOf(plan), rateLimit))) throw new RateLimitRequiredError(plan)

    // Hash before the transaction: argon2 takes tens of milliseconds and must not hold the lock.
    let key = generateKey(prefix)
    let hash = await hasher.hash(key.text)
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
    await whileAvailable(() => db.transaction().execute(async (trx) => {
      await lockForCreate(trx)
      if (await liveNameExists(trx, name)) throw new KeyNameTakenError(name)
      if (await countLiveKeys(trx) >= maxKeys) throw new KeyLimitReachedError(maxKeys)
      for (let draw = 1; !(await insertKey(trx, { ...row, id: key.keyId, hash })); draw++) {
        if (draw === MAX_ID_DRAWS) throw new Error('Could not draw an unused key id')
        key = generateKey(prefix)
        hash = await hasher.hash(key.text)
      }
    }))
    return { apiKey: key.text, ...info({ ...row, id: key.keyId }) }
  }

  async function deleteKey (name: string): Promise<void> {
    const id = await whileAvailable(() => deleteLiveKeyByName(db, name, new Date(now())))
    if (id === undefined) throw new KeyNotFoundError(name)
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
