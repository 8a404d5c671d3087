import type { Kysely } from 'kysely'
import type { KeygateDatabase, KeyType } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import { KeyLimitReachedError, KeyNameTakenError, KeyNotFoundError } from '../errors.js'
import type { KeyHasher } from '../keys/hasher.js'
import { generateKey, keyIdentifier } from '../keys/key-text.js'
import {
  type ApiKeyListing,
  countLiveKeys,
  deleteLiveKeyByName,
  insertKey,
  listLiveKeys,
  liveNameExists,
  lockForCreate
} from '../repositories/api-key.repository.js'
import { createKeyBodySchema, createKeyValidationError, createStrictAjv } from './create-key.schema.js'

export interface CreateKeyInput {
  /** Unique among live keys; 1 to 128 characters, no control characters. */
  name: string
  /** Default `GENERIC`. */
  keyFor?: KeyType
  /** One of the configured prefixes. Default: the first configured prefix. */
  prefix?: string
}

/** A key as listings show it: metadata only. */
export interface KeyInfo {
  name: string
  /** `<prefix>.<key id>`: public. */
  identifier: string
  /** ISO 8601, UTC. */
  created: string
  for: KeyType
}

export interface CreatedKey extends KeyInfo {
  /** The full key. Returned here once and never again. */
  apiKey: string
}

/** `fastify.keygate`: what the management routes call, for hosts that provision keys from code. */
export interface KeygateApi {
  createKey (input: CreateKeyInput): Promise<CreatedKey>
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
  prefixes: readonly string[]
  maxKeys: number
  now: () => number
  /** Called after a delete, so authentication forgets the key at once. */
  onDeleted?: (keyId: string) => void
}

// Eight characters of base62 make a collision rare; a few draws make it irrelevant.
const MAX_ID_DRAWS = 5

function toKeyInfo (row: ApiKeyListing): KeyInfo {
  return {
    name: row.name,
    identifier: keyIdentifier(row.prefix, row.id),
    created: row.created_at.toISOString(),
    for: row.key_for
  }
}

export function createKeygateApi (deps: KeygateApiDeps): KeygateApi {
  const { db, hasher, prefixes, maxKeys, now } = deps
  const validateCreate = createStrictAjv().compile(createKeyBodySchema(prefixes))

  async function createKey (input: CreateKeyInput): Promise<CreatedKey> {
    // Validate a copy: Ajv fills in defaults, and the caller's object is theirs.
    const body = typeof input === 'object' && input !== null ? { ...input } : input
    if (!validateCreate(body)) throw createKeyValidationError(body, validateCreate.errors ?? [], prefixes)
    const { name, keyFor = 'GENERIC', prefix = prefixes[0] as string } = body as CreateKeyInput

    // Hash before the transaction: argon2 takes tens of milliseconds and must not hold the lock.
    let key = generateKey(prefix)
    let hash = await hasher.hash(key.text)
    const created = new Date(now())
    await whileAvailable(() => db.transaction().execute(async (trx) => {
      await lockForCreate(trx)
      if (await liveNameExists(trx, name)) throw new KeyNameTakenError(name)
      if (await countLiveKeys(trx) >= maxKeys) throw new KeyLimitReachedError(maxKeys)
      for (let draw = 1; !(await insertKey(trx, { id: key.keyId, prefix, name, key_for: keyFor, hash, created_at: created })); draw++) {
        if (draw === MAX_ID_DRAWS) throw new Error('Could not draw an unused key id')
        key = generateKey(prefix)
        hash = await hasher.hash(key.text)
      }
    }))
    return { apiKey: key.text, name, identifier: key.identifier, created: created.toISOString(), for: keyFor }
  }

  async function deleteKey (name: string): Promise<void> {
    const id = await whileAvailable(() => deleteLiveKeyByName(db, name, new Date(now())))
    if (id === undefined) throw new KeyNotFoundError(name)
    deps.onDeleted?.(id)
  }

  return {
    createKey,
    listKeys: async () => (await whileAvailable(() => listLiveKeys(db))).map(toKeyInfo),
    listOnboardingKeys: async () =>
      (await whileAvailable(() => listLiveKeys(db, { keyFor: 'ONBOARDING', newestFirst: true }))).map(toKeyInfo),
    deleteKey,
    migrate: () => whileAvailable(deps.migrate)
  }
}
