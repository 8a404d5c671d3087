import type { Kysely } from 'kysely'
import { FULL_ACCESS, firstMissing } from '../auth/scopes.js'
import type { KeygateDatabase, KeyType } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import {
  CreditsExceedCallerError,
  ExpiryExceedsCallerError,
  ExpiryInvalidError,
  GracePeriodInvalidError,
  insufficientScope,
  InvalidRequestError,
  KeyLimitReachedError,
  KeyNameTakenError,
  KeyNotFoundError,
  KeyRenameTakenError,
  LimitExceedsCallerError,
  RateLimitRequiredError
} from '../errors.js'
import type { KeyHasher } from '../keys/hasher.js'
import { type GeneratedKey, generateKey, keyIdentifier } from '../keys/key-text.js'
import { effectiveLimits, hasLimits, type Limits, type Plan } from '../ratelimit/plans.js'
import { creditsWindowAt } from '../ratelimit/credits.js'
import type { CreditsReader } from '../ratelimit/limiter.js'
import type { KeyCredits, KeyInfo, KeyUsage, ToKeyRecord } from '../records/key-info.js'
import { creditsOf } from '../records/lifecycle.js'
import {
  type ApiKeyListing,
  countLiveKeys,
  endGracePeriods,
  findLiveKeyForUpdate,
  insertKey,
  type KeyChanges,
  type KeySpace,
  listLiveKeys,
  listRotatingKeys,
  liveNameExists,
  lockForCreate,
  lockKeyName,
  markDeleted,
  updateKeys
} from '../repositories/api-key.repository.js'
import { dailyUsage, lockTotalsForCopy } from '../repositories/usage.repository.js'
import { AUDIT_ACTIONS, type AuditAction, type AuditContext, type AuditEvent, type AuditTarget, CODE_ACTOR } from '../audit/audit-event.js'
import { type AuditFilter, listEvents, type NewAuditEvent, recordEvent } from '../repositories/audit.repository.js'
import {
  type CreateKeyChoices,
  createKeyBodySchema,
  createKeyValidationError,
  createStrictAjv,
  isValidName,
  parseDateTime,
  rotateKeyBodySchema,
  shownName,
  updateKeyBodySchema,
  updateKeyValidationError
} from './create-key.schema.js'

export type { KeyCredits, KeyInfo, KeyUsage }

/** Usage credits as create and update take them. */
export interface CreditsInput {
  /** Credits the key has now; each admitted request uses one. An integer, 0 or more. */
  remaining: number
  /** At the start of each UTC day or month, the credits left become `amount` (an integer, 1 or more). */
  refill?: { amount: number, interval: 'day' | 'month' }
}

/** The tenant a key belongs to when none is named. */
export const DEFAULT_TENANT = 'default'

export interface CreateKeyInput {
  /** Unique among the tenant's live keys; 1 to 128 characters, no control characters. */
  name: string
  /**
   * The tenant the key belongs to, chosen by the host (1 to 128 characters). Default `default`.
   * Code only: the routes create keys in the caller's tenant, and refuse this field.
   */
  tenant?: string
  /** The host's user id of the key's owner, 1 to 128 characters. Default: none, a service account. */
  owner?: string
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
  /** When the key stops working: an ISO 8601 date-time in the future. Not with `expiresInDays`. */
  expiresAt?: string
  /** The key stops working this many days from now. Not with `expiresAt`. */
  expiresInDays?: number
  /** Usage credits. Default: none (only the rate limits apply). */
  credits?: CreditsInput
}

/**
 * What an update may change: any of these, at least one. `null` clears `rateLimit`, `expiresAt` or
 * `credits`. Credits given here start over: what was used before no longer counts.
 */
export interface UpdateKeyInput {
  name?: string
  /** `null`: no owner, a service account. */
  owner?: string | null
  scopes?: string[]
  plan?: string
  rateLimit?: Partial<Limits> | null
  expiresAt?: string | null
  credits?: CreditsInput | null
}

export interface RotateKeyInput {
  /** How long the old text keeps working, in seconds. Default 0: it stops at once. */
  gracePeriodSeconds?: number
}

/** The key a management call acts for. Management never exceeds its caller. */
export interface Caller {
  /** The caller's tenant: every call it makes acts there, whatever tenant the call names. Default `default`. */
  tenant?: string
  /** A person signed in through the host: the keys they create are theirs unless `owner` is given. */
  user?: string
  scopes: readonly string[]
  limits: Limits
  /** ISO 8601; a caller without `*` cannot make a key outlive it. Default: never expires. */
  expires?: string | null
  /**
   * The caller's own credits as set (not what is left of them); a caller without `*` that has
   * them cannot make a key with none, more remaining, or a larger refill. Default: none.
   */
  credits?: KeyCredits | null
}

/** Which tenant's keys a call acts on: the caller's when there is one, else `tenant`, else `default`. */
export interface TenantOptions {
  tenant?: string
}

/** Who asks for a change, for the audit event written with it. */
export interface AuditedOptions {
  /** Default: actor `{ system: 'code' }`, no ip, no request id. */
  audit?: AuditContext
}

export interface CreateKeyOptions extends AuditedOptions {
  /**
   * The key asking for the new one: it cannot grant a permission it lacks, nor, without `*`, a
   * rate limit above its own (403).
   */
  requestedBy?: Caller
}

export interface DeleteKeyOptions extends TenantOptions, AuditedOptions {
  /** The key asking for the delete: it may delete only keys whose permissions it holds (403). */
  requestedBy?: Caller
}

export interface ChangeKeyOptions extends TenantOptions, AuditedOptions {
  /**
   * The key asking for the update or rotation: it may change only keys whose permissions it
   * holds, and an update stays within them as a create does (403).
   */
  requestedBy?: Caller
}

export interface ListKeysOptions extends TenantOptions {
  /** The key listing: its tenant is the one listed. */
  requestedBy?: Caller
  /** Only the keys of this owner. */
  owner?: string
}

export interface UsageOptions extends TenantOptions {
  /** The key asking: its tenant is the one read. */
  requestedBy?: Caller
  /** How many days, ending today (UTC): an integer from 1 to 366. Default 30. */
  days?: number
}

export interface AuditQuery extends TenantOptions {
  /** The key reading: its tenant is the one read. */
  requestedBy?: Caller
  /** `next` of the page before. */
  cursor?: string
  /** An integer from 1 to 500. Default 100. (The export ignores it.) */
  limit?: number
  /** One of the six actions. */
  action?: string
  /** ISO 8601 date-times: events at or after `since`, before `until`. */
  since?: string
  until?: string
  /** The target's identifier or name. */
  target?: string
}

export interface AuditPage {
  /** Newest first. */
  events: AuditEvent[]
  /** The cursor of the next (older) page; null on the last one. */
  next: string | null
}

export interface CreatedKey extends KeyInfo {
  /** The full key. Returned here once and never again. */
  apiKey: string
}

/** `fastify.keygate`: what the management routes call, for hosts that provision keys from code. */
export interface KeygateApi {
  createKey (input: CreateKeyInput, options?: CreateKeyOptions): Promise<CreatedKey>
  /** Every live key of the tenant, oldest first. */
  listKeys (options?: ListKeysOptions): Promise<KeyInfo[]>
  /** Live ONBOARDING keys of the tenant, newest first. */
  listOnboardingKeys (options?: TenantOptions & { requestedBy?: Caller }): Promise<KeyInfo[]>
  /** Deletes the live key with this name; it stops authenticating at once, on every instance. */
  deleteKey (name: string, options?: DeleteKeyOptions): Promise<void>
  /** Changes the live key with this name; every instance applies it at the key's next request. */
  updateKey (name: string, changes: UpdateKeyInput, options?: ChangeKeyOptions): Promise<KeyInfo>
  /**
   * A new key text for the key with this name, with all its settings; the old text works for the
   * grace period, then gets 401. An earlier text still in its grace stops at once.
   */
  rotateKey (name: string, input?: RotateKeyInput, options?: ChangeKeyOptions): Promise<CreatedKey>
  /**
   * The requests per UTC day of the key with this name, across its rotations, as of the last usage
   * flush of each instance. Any caller that may list keys may read any key's usage.
   */
  usage (name: string, options?: UsageOptions): Promise<KeyUsage>
  /** One page of the tenant's audit events, newest first. */
  listAuditEvents (query?: AuditQuery): Promise<AuditPage>
  /** Every one of the tenant's audit events that match, newest first, read page by page: memory stays flat. */
  exportAuditEvents (query?: AuditQuery): AsyncIterable<AuditEvent>
  /**
   * Records the `key.expired` events of keys that expired, and removes events past
   * `auditRetentionDays`, now rather than at the job's next run (every `auditJobMs`). Never rejects.
   */
  runAuditJob (): Promise<void>
  /** Writes the usage this instance counted now, rather than at the next flush (every `usageFlushMs`, and at close). */
  flushUsage (): Promise<void>
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
  toKeyRecord: ToKeyRecord
  maxKeys: number
  /** Names the schema in the advisory locks, which PostgreSQL holds for the whole database. */
  lockSpace: string
  maxLifetimeDays: number | undefined
  rotateAfterDays: number
  maxGracePeriodSeconds: number
  now: () => number
  /** What is left of credits now, from the rate-limit store. Default: as if none had been used this period. */
  creditsLeft?: CreditsReader
  /** Writes this instance's usage counts now. */
  flushUsage: () => Promise<void>
  /** Runs the audit job now. */
  runAuditJob: () => Promise<void>
  /** Called after a delete (or a rotation without grace), so authentication forgets the key at once, everywhere. */
  onDeleted?: (keyId: string) => Promise<void>
  /** Called after an update (or a rotation with grace), so authentication re-reads the key at its next request, everywhere. */
  onChanged?: (keyId: string) => Promise<void>
}

// Eight characters of base62 make a collision rare; a few draws make it irrelevant.
const MAX_ID_DRAWS = 5
const DAY_MS = 86_400_000
export const DEFAULT_USAGE_DAYS = 30
// A year, leap day included.
export const MAX_USAGE_DAYS = 366
export const USAGE_DAYS_INVALID = `days must be an integer from 1 to ${MAX_USAGE_DAYS}.`
export const MAX_AUDIT_LIMIT = 500
export const DEFAULT_AUDIT_LIMIT = 100
// Rows per read of an export: large enough to be quick, small enough to stay flat.
const EXPORT_PAGE = 1000
const CURSOR_TEXT = /^[1-9][0-9]{0,18}$/
// Ids are bigserial: a larger number would be a database error, not a page.
const MAX_ID = 2n ** 63n - 1n

/** The opaque cursor of the page after the one ending at this id. */
function cursorOf (id: string): string {
  return Buffer.from(id).toString('base64url')
}

/** The filter an audit query asks for; anything malformed is a 400, never ignored. */
function auditFilterOf (query: AuditQuery, limit: number): AuditFilter {
  const filter: AuditFilter = { limit }
  if (query.cursor !== undefined) {
    const id = typeof query.cursor === 'string' ? Buffer.from(query.cursor, 'base64url').toString() : ''
    if (!CURSOR_TEXT.test(id) || BigInt(id) > MAX_ID || cursorOf(id) !== query.cursor) throw new InvalidRequestError('cursor is not one this log gave.')
    filter.before = id
  }
  if (query.action !== undefined) {
    if (!(AUDIT_ACTIONS as readonly unknown[]).includes(query.action)) throw new InvalidRequestError(`action must be one of ${AUDIT_ACTIONS.join(', ')}.`)
    filter.action = query.action as AuditFilter['action']
  }
  for (const bound of ['since', 'until'] as const) {
    const text = query[bound]
    if (text === undefined) continue
    const date = typeof text === 'string' ? parseDateTime(text) : undefined
    if (date === undefined) throw new InvalidRequestError(`${bound} must be an ISO 8601 date-time.`)
    filter[bound] = date
  }
  if (query.target !== undefined) {
    if (!isValidName(query.target)) throw new InvalidRequestError('target must be a key identifier or name.')
    filter.target = query.target
  }
  return filter
}

/** `YYYY-MM-DD` of a UTC day number (days since the epoch). */
function isoDay (day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10)
}

export function createKeygateApi (deps: KeygateApiDeps): KeygateApi {
  const { db, hasher, choices, maxKeys, now, planOf, toKeyRecord } = deps
  const ajv = createStrictAjv()
  const validateCreate = ajv.compile(createKeyBodySchema(choices))
  const validateUpdate = ajv.compile(updateKeyBodySchema(choices))
  const validateRotate = ajv.compile(rotateKeyBodySchema(deps.maxGracePeriodSeconds))

  /**
   * The listing shape of a row, as of `at`; `rotating` is the text rotated away from it, if any
   * still works; `left` what is left of its credits (see `creditsLeftOf`).
   */
  function info (row: ApiKeyListing, at: number, rotating: KeyInfo['rotatingFrom'] | undefined, left: number | undefined): KeyInfo {
    const credits = creditsOf(row)
    return {
      ...toKeyRecord(row),
      serviceAccount: row.owner === null,
      rotationDue: at - row.created_at.getTime() >= deps.rotateAfterDays * DAY_MS,
      rotatingFrom: rotating ?? null,
      lastUsed: row.last_used_at?.toISOString() ?? null,
      // bigint: pg hands it over as a string. A number is exact up to 2^53 requests.
      requests: Number(row.requests),
      credits: credits === null ? null : { remaining: left ?? credits.remaining, refill: credits.refill }
    }
  }

  /** What is left now of each row's credits (undefined for a row without): one store read for all. */
  async function creditsLeftOf (rows: readonly ApiKeyListing[]): Promise<Array<number | undefined>> {
    const left = new Array<number | undefined>(rows.length)
    const entries = []
    const at = now()
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as ApiKeyListing
      const credits = creditsOf(row)
      if (credits === null) continue
      entries.push({ lineage: row.lineage, credits, index: i })
      left[i] = creditsWindowAt(credits, at).limit
    }
    if (entries.length === 0 || deps.creditsLeft === undefined) return left
    const counted = await deps.creditsLeft(entries)
    for (let j = 0; j < entries.length; j++) left[(entries[j] as { index: number }).index] = counted[j]
    return left
  }

  /**
   * When a key made or changed at `at` expires: `expiresAt` or `expiresInDays` (not both), at most
   * `maxLifetimeDays` ahead. Undefined on an update that leaves it alone; on a create without
   * either, the longest lifetime allowed (none, by default).
   */
  function expiryOf (input: { expiresAt?: string | null, expiresInDays?: number }, at: number, creating: boolean): Date | null | undefined {
    const { expiresAt, expiresInDays } = input
    const max = deps.maxLifetimeDays
    if (expiresAt !== undefined && expiresInDays !== undefined) throw new ExpiryInvalidError('Give expiresAt or expiresInDays, not both.')
    let expires: Date | null | undefined
    if (expiresInDays !== undefined) expires = new Date(at + expiresInDays * DAY_MS)
    else if (typeof expiresAt === 'string') {
      expires = parseDateTime(expiresAt)
      if (expires === undefined) throw new ExpiryInvalidError(`expiresAt is not a date and time that exist: ${expiresAt}.`)
      if (expires.getTime() <= at) throw new ExpiryInvalidError('expiresAt must be in the future.')
    } else if (expiresAt === null) expires = null
    else if (!creating) return undefined
    else expires = max === undefined ? null : new Date(at + max * DAY_MS)
    if (max !== undefined && (expires === null || expires.getTime() > at + max * DAY_MS)) {
      throw new ExpiryInvalidError(`A key may live at most ${max} days (option maxLifetimeDays).`)
    }
    return expires
  }

  /** The tenant a call acts in: its caller's when it has one (management never leaves it), else the one named. */
  function spaceOf (options: TenantOptions & { requestedBy?: Caller }): KeySpace {
    const tenant = options.requestedBy?.tenant ?? options.tenant ?? DEFAULT_TENANT
    if (!isValidName(tenant)) throw new InvalidRequestError('tenant must be a string of 1 to 128 characters without control characters.')
    return { tenant, lockSpace: deps.lockSpace }
  }

  /** The event of a change, to write in the change's own transaction. */
  function eventOf (action: AuditAction, tenant: string, target: AuditTarget, at: number, audit: AuditContext = {}): NewAuditEvent {
    return { at: new Date(at), tenant, action, actor: audit.actor ?? CODE_ACTOR, target, ip: audit.ip ?? null, requestId: audit.requestId ?? null }
  }

  /** A new key text with its argon2 hash, drawn and hashed outside any transaction. */
  async function drawKey (prefix: string): Promise<{ key: GeneratedKey, hash: string }> {
    const key = generateKey(prefix)
    return { key, hash: await hasher.hash(key.text) }
  }

  async function createKey (input: CreateKeyInput, options: CreateKeyOptions = {}): Promise<CreatedKey> {
    const isObject = typeof input === 'object' && input !== null
    const space = spaceOf({ tenant: isObject ? input.tenant : undefined, requestedBy: options.requestedBy })
    // Validate a copy, as a route body (which has no tenant): Ajv fills in defaults, and the caller's object is theirs.
    const { tenant: _tenant, ...fields } = isObject ? input : {} as CreateKeyInput
    const body = isObject ? fields : input
    if (!validateCreate(body)) throw createKeyValidationError(body, validateCreate.errors ?? [], choices)
    const {
      name,
      keyFor = 'GENERIC',
      prefix = choices.prefixes[0] as string,
      scopes = [FULL_ACCESS],
      plan = deps.defaultPlan,
      rateLimit = {},
      credits = null,
      owner = options.requestedBy?.user ?? null
    } = body as CreateKeyInput
    const at = now()
    const expires = expiryOf(body as CreateKeyInput, at, true) as Date | null
    const limits = effectiveLimits(planOf(plan), rateLimit)
    const caller = options.requestedBy
    if (caller !== undefined) scopesWithinCaller(caller, scopes)
    if (!hasLimits(limits)) throw new RateLimitRequiredError(plan)
    if (caller !== undefined) {
      limitsWithinCaller(caller, limits)
      expiryWithinCaller(caller, expires)
      creditsWithinCaller(caller, credits === null ? null : { remaining: credits.remaining, refill: credits.refill ?? null })
    }
    // Checked before argon2, so a create refused for its name or the limit costs no hashing...
    await whileAvailable(async () => await checkRoomFor(db, space.tenant, name))

    const row = {
      tenant: space.tenant,
      owner,
      prefix,
      name,
      key_for: keyFor,
      created_at: new Date(at),
      scopes,
      plan,
      rate_limit_per_minute: rateLimit.perMinute ?? null,
      rate_limit_per_hour: rateLimit.perHour ?? null,
      expires_at: expires,
      ...creditColumns(credits, at)
    }
    // ...and argon2 runs outside the transaction: it takes tens of milliseconds and must not hold
    // the lock. An id already taken (eight base62 characters make it rare) means a new draw, hashed
    // outside the lock again.
    for (let draw = 1; ; draw++) {
      const { key, hash } = await drawKey(prefix)
      const inserted = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
        await lockForCreate(trx, space)
        // Again under the lock: another create may have taken the name or the last place meanwhile.
        await checkRoomFor(trx, space.tenant, name)
        if (!await insertKey(trx, { ...row, id: key.keyId, lineage: key.keyId, hash })) return false
        await recordEvent(trx, eventOf('key.created', space.tenant, { identifier: keyIdentifier(prefix, key.keyId), name }, at, options.audit))
        return true
      }))
      // A new lineage has used nothing: its credits are what was set.
      if (inserted) return { apiKey: key.text, ...info(newListing({ ...row, id: key.keyId, lineage: key.keyId }), at, null, credits?.remaining) }
      if (draw === MAX_ID_DRAWS) throw new Error('Could not draw an unused key id')
    }
  }

  /** A name's live key for a change, or 404 without a database call for a name no key can have. */
  function checkedName (name: unknown): string {
    if (!isValidName(name)) throw new KeyNotFoundError(typeof name === 'string' ? shownName(name) : String(name))
    return name
  }

  async function updateKey (name: string, input: UpdateKeyInput, options: ChangeKeyOptions = {}): Promise<KeyInfo> {
    checkedName(name)
    const body = typeof input === 'object' && input !== null ? { ...input } : input
    if (!validateUpdate(body)) throw updateKeyValidationError(body, validateUpdate.errors ?? [], choices)
    const changes = body as UpdateKeyInput
    const space = spaceOf(options)
    const at = now()
    const expires = expiryOf(changes, at, false)
    const caller = options.requestedBy
    const { row, ids } = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
      // A rename takes the create lock: a create of the same name must not slip in between.
      if (changes.name !== undefined && changes.name !== name) await lockForCreate(trx, space)
      await lockKeyName(trx, space, name)
      const key = await findLiveKeyForUpdate(trx, space.tenant, name)
      if (key === undefined) throw new KeyNotFoundError(name)
      const plan = changes.plan ?? key.plan
      const own = changes.rateLimit === undefined
        ? { perMinute: key.rate_limit_per_minute, perHour: key.rate_limit_per_hour }
        : { perMinute: changes.rateLimit?.perMinute ?? null, perHour: changes.rateLimit?.perHour ?? null }
      const limits = effectiveLimits(planOf(plan), own)
      if (caller !== undefined) {
        // It may change only a key whose permissions it holds, and only within them.
        scopesWithinCaller(caller, key.scopes)
        if (changes.scopes !== undefined) scopesWithinCaller(caller, changes.scopes)
      }
      if (!hasLimits(limits)) throw new RateLimitRequiredError(plan)
      // Credits set again start over: their version (credits_set_at) only ever moves forward, so
      // the new ones get counters of their own even when set twice in one millisecond. Clearing
      // them keeps credits_set_at for the same reason (no credits_remaining means no credits).
      const credits = changes.credits === undefined
        ? {}
        : changes.credits === null
          ? { credits_remaining: null, credits_refill_amount: null, credits_refill_interval: null }
          : creditColumns(changes.credits, Math.max(at, (key.credits_set_at?.getTime() ?? -Infinity) + 1))
      if (caller !== undefined) {
        limitsWithinCaller(caller, limits)
        expiryWithinCaller(caller, expires === undefined ? key.expires_at : expires)
        creditsWithinCaller(caller, creditsOf({ ...key, ...credits }))
      }
      if (changes.name !== undefined && changes.name !== name && await liveNameExists(trx, space.tenant, changes.name)) {
        throw new KeyRenameTakenError(changes.name)
      }
      const set: KeyChanges = {
        ...(changes.name === undefined || changes.name === name ? {} : { name: changes.name }),
        ...(changes.owner === undefined ? {} : { owner: changes.owner }),
        ...(changes.scopes === undefined ? {} : { scopes: changes.scopes }),
        ...(changes.plan === undefined ? {} : { plan: changes.plan }),
        ...(changes.rateLimit === undefined ? {} : { rate_limit_per_minute: own.perMinute, rate_limit_per_hour: own.perHour }),
        ...(expires === undefined ? {} : { expires_at: expires }),
        ...credits
      }
      // `{ name: <its own name> }` changes nothing, and says so by answering the key as it is (no event).
      if (Object.keys(set).length === 0) return { row: key, ids: [] }
      // A new expiry is one still to come, with its own event when it does.
      const ids = await updateKeys(trx, space.tenant, name, new Date(at), expires === undefined ? set : { ...set, expiry_recorded: false })
      await recordEvent(trx, eventOf('key.updated', space.tenant, { identifier: keyIdentifier(key.prefix, key.id), name: set.name ?? name }, at, options.audit))
      return { row: { ...key, ...set }, ids }
    }))
    await Promise.all(ids.map(async (id) => await deps.onChanged?.(id)))
    const [rotating, [left]] = await Promise.all([rotatingFrom(space.tenant, row.name, at), creditsLeftOf([row])])
    return info(row, at, rotating, left)
  }

  async function rotateKey (name: string, input: RotateKeyInput = {}, options: ChangeKeyOptions = {}): Promise<CreatedKey> {
    checkedName(name)
    const body = typeof input === 'object' && input !== null ? { ...input } : input
    if (!validateRotate(body)) throw new GracePeriodInvalidError(deps.maxGracePeriodSeconds)
    const grace = (body as RotateKeyInput).gracePeriodSeconds ?? 0
    // Looked up before argon2, so rotating a name nobody has costs no hashing.
    const space = spaceOf(options)
    const current = await whileAvailable(async () => (await listLiveKeys(db, space.tenant, { name }))[0])
    if (current === undefined) throw new KeyNotFoundError(name)
    for (let draw = 1; ; draw++) {
      const { key, hash } = await drawKey(current.prefix)
      const at = now()
      const rotated = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
        await lockKeyName(trx, space, name)
        // The new row starts with the old one's usage totals: no flush may add to them meanwhile.
        await lockTotalsForCopy(trx)
        const old = await findLiveKeyForUpdate(trx, space.tenant, name)
        if (old === undefined) throw new KeyNotFoundError(name)
        if (options.requestedBy !== undefined) scopesWithinCaller(options.requestedBy, old.scopes)
        // One old text at a time: an earlier one still in its grace stops now.
        const ended = await endGracePeriods(trx, space.tenant, name, new Date(at))
        const sunset = grace === 0 ? null : new Date(at + grace * 1000)
        await markDeleted(trx, old.id, new Date(at), sunset)
        const { id: _id, hash: _hash, seq: _seq, deleted_at: _deleted, sunset_at: _sunset, ...kept } = old
        const row = { ...kept, id: key.keyId, created_at: new Date(at), prefix: old.prefix }
        if (!await insertKey(trx, { ...row, hash })) return undefined
        const target = { identifier: keyIdentifier(row.prefix, row.id), name, from: keyIdentifier(old.prefix, old.id) }
        await recordEvent(trx, eventOf('key.rotated', space.tenant, target, at, options.audit))
        return { row, old, ended, sunset }
      }))
      if (rotated !== undefined) {
        const { row, old, ended, sunset } = rotated
        await Promise.all([
          ...ended.map(async (id) => await deps.onDeleted?.(id)),
          sunset === null ? deps.onDeleted?.(old.id) : deps.onChanged?.(old.id)
        ])
        const from = sunset === null ? null : { identifier: keyIdentifier(old.prefix, old.id), sunset: sunset.toISOString() }
        // The lineage, and so what is left of the credits, carries over.
        const [left] = await creditsLeftOf([row])
        return { apiKey: key.text, ...info(row, at, from, left) }
      }
      if (draw === MAX_ID_DRAWS) throw new Error('Could not draw an unused key id')
    }
  }

  /** The text rotated away from the live key of this name, while its grace lasts. */
  async function rotatingFrom (tenant: string, name: string, at: number): Promise<KeyInfo['rotatingFrom']> {
    return (await rotatingByName(tenant, at)).get(name) ?? null
  }

  async function rotatingByName (tenant: string, at: number): Promise<Map<string, NonNullable<KeyInfo['rotatingFrom']>>> {
    const rows = await whileAvailable(() => listRotatingKeys(db, tenant, new Date(at)))
    return new Map(rows.map((row) => [row.name, { identifier: keyIdentifier(row.prefix, row.id), sunset: row.sunset_at.toISOString() }]))
  }

  async function listed (tenant: string, filter: Parameters<typeof listLiveKeys>[2]): Promise<KeyInfo[]> {
    const at = now()
    const [rows, rotating] = await Promise.all([whileAvailable(() => listLiveKeys(db, tenant, filter)), rotatingByName(tenant, at)])
    const left = await creditsLeftOf(rows)
    return rows.map((row, i) => info(row, at, rotating.get(row.name), left[i]))
  }

  /** Throws when the name is taken among live keys or no place is left. */
  async function checkRoomFor (on: Kysely<KeygateDatabase>, tenant: string, name: string): Promise<void> {
    if (await liveNameExists(on, tenant, name)) throw new KeyNameTakenError(name)
    if (await countLiveKeys(on, tenant) >= maxKeys) throw new KeyLimitReachedError(maxKeys)
  }

  async function deleteKey (name: string, options: DeleteKeyOptions = {}): Promise<void> {
    // A name create would refuse names no key: no database call for it.
    if (!isValidName(name)) throw new KeyNotFoundError(typeof name === 'string' ? shownName(name) : String(name))
    const space = spaceOf(options)
    const ids = await whileAvailable(async () => await db.transaction().execute(async (trx) => {
      await lockKeyName(trx, space, name)
      const key = await findLiveKeyForUpdate(trx, space.tenant, name)
      if (key === undefined) throw new KeyNotFoundError(name)
      if (options.requestedBy !== undefined) {
        scopesWithinCaller(options.requestedBy, key.scopes)
      }
      const at = new Date(now())
      // A text rotated away from it stops with it.
      const ended = await endGracePeriods(trx, space.tenant, name, at)
      await markDeleted(trx, key.id, at)
      await recordEvent(trx, eventOf('key.deleted', space.tenant, { identifier: keyIdentifier(key.prefix, key.id), name }, at.getTime(), options.audit))
      return [key.id, ...ended]
    }))
    await Promise.all(ids.map(async (id) => await deps.onDeleted?.(id)))
  }

  async function usage (name: string, options: UsageOptions = {}): Promise<KeyUsage> {
    checkedName(name)
    const days = options.days ?? DEFAULT_USAGE_DAYS
    if (!Number.isInteger(days) || days < 1 || days > MAX_USAGE_DAYS) throw new InvalidRequestError(USAGE_DAYS_INVALID)
    const today = Math.floor(now() / DAY_MS)
    const first = today - days + 1
    const { tenant } = spaceOf(options)
    const key = await whileAvailable(async () => (await listLiveKeys(db, tenant, { name }))[0])
    if (key === undefined) throw new KeyNotFoundError(name)
    // By lineage: the usage of the texts it was rotated from is its own.
    const counted = new Map((await whileAvailable(() => dailyUsage(db, key.lineage, isoDay(first)))).map((row) => [row.day, row.requests]))
    const answer: KeyUsage['days'] = []
    for (let day = first; day <= today; day++) {
      const date = isoDay(day)
      answer.push({ date, requests: counted.get(date) ?? 0 })
    }
    return { name: key.name, identifier: keyIdentifier(key.prefix, key.id), days: answer }
  }

  async function listAuditEvents (query: AuditQuery = {}): Promise<AuditPage> {
    const limit = query.limit ?? DEFAULT_AUDIT_LIMIT
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) throw new InvalidRequestError(`limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}.`)
    const filter = auditFilterOf(query, limit)
    const { tenant } = spaceOf(query)
    const events = await whileAvailable(() => listEvents(db, tenant, filter))
    const last = events[events.length - 1]
    return { events, next: events.length === limit && last !== undefined ? cursorOf(last.id) : null }
  }

  function exportAuditEvents (query: AuditQuery = {}): AsyncIterable<AuditEvent> {
    // Checked now, so a bad query fails before anything is sent.
    const filter = auditFilterOf(query, EXPORT_PAGE)
    const { tenant } = spaceOf(query)
    return (async function * () {
      // Keyset pages: one page of rows in memory at a time, however long the log.
      for (let before = filter.before; ;) {
        const page = await listEvents(db, tenant, { ...filter, ...(before === undefined ? {} : { before }) })
        yield * page
        if (page.length < EXPORT_PAGE) return
        before = (page[page.length - 1] as AuditEvent).id
      }
    })()
  }

  return {
    createKey,
    listAuditEvents,
    exportAuditEvents,
    listKeys: async (options = {}) => await listed(spaceOf(options).tenant, options.owner === undefined ? {} : { owner: options.owner }),
    listOnboardingKeys: async (options = {}) => await listed(spaceOf(options).tenant, { keyFor: 'ONBOARDING', newestFirst: true }),
    deleteKey,
    updateKey,
    rotateKey,
    usage,
    flushUsage: deps.flushUsage,
    runAuditJob: deps.runAuditJob,
    migrate: () => whileAvailable(deps.migrate)
  }
}

const WINDOW_NAMES = { perMinute: 'per minute', perHour: 'per hour' } as const

/** A new key's columns the listing shows that a create leaves at their start. */
function newListing (row: Omit<ApiKeyListing, 'last_used_at' | 'requests'>): ApiKeyListing {
  return { ...row, last_used_at: null, requests: '0' }
}

/** The credit columns of credits set at `at` (none: all null). */
function creditColumns (credits: CreditsInput | null, at: number): Pick<ApiKeyListing, 'credits_remaining' | 'credits_refill_amount' | 'credits_refill_interval' | 'credits_set_at'> {
  return {
    credits_remaining: credits?.remaining ?? null,
    credits_refill_amount: credits?.refill?.amount ?? null,
    credits_refill_interval: credits?.refill?.interval ?? null,
    credits_set_at: credits === null ? null : new Date(at)
  }
}

/**
 * Nor does a key without `*` that has credits make a key with none, with more remaining than its
 * own, or with a refill larger than its own (a refill where it has none, a larger amount, or
 * daily where its own is monthly). Checked against its credits as set, not what is left of them.
 */
function creditsWithinCaller (caller: Caller, asked: Pick<KeyCredits, 'remaining' | 'refill'> | null): void {
  const own = caller.credits
  if (caller.scopes.includes(FULL_ACCESS) || own == null) return
  if (asked === null) throw new CreditsExceedCallerError(`no credits, which is unlimited (its own: ${own.remaining} remaining)`)
  if (asked.remaining > own.remaining) throw new CreditsExceedCallerError(`${asked.remaining} remaining (its own: ${own.remaining})`)
  const refill = asked.refill
  if (refill === null) return
  const ownRefill = own.refill
  if (ownRefill === null || refill.amount > ownRefill.amount || (refill.interval === 'day' && ownRefill.interval === 'month')) {
    throw new CreditsExceedCallerError(`a refill of ${refill.amount} a ${refill.interval} (its own: ${ownRefill === null ? 'none' : `${ownRefill.amount} a ${ownRefill.interval}`})`)
  }
}

/** Nor does a key without `*` that expires make a key that outlives it. */
function expiryWithinCaller (caller: Caller, expires: Date | null): void {
  if (caller.scopes.includes(FULL_ACCESS) || caller.expires == null) return
  if (expires === null || expires.getTime() > Date.parse(caller.expires)) {
    throw new ExpiryExceedsCallerError(caller.expires)
  }
}

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
