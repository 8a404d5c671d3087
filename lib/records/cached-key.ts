import { CREDITS_INTERVALS, KEY_TYPES } from '../db/schema.js'
import type { AuthenticatedKey } from './key-info.js'
import type { Credits, Deprecation } from './lifecycle.js'

/**
 * What a cache holds for a key id once its text has been verified with argon2. Never the key
 * itself: only a fingerprint of it, keyed by the server secret (see auth/fingerprint.ts).
 */
export interface CachedKey {
  /** Deeply frozen: it is what `request.apiKey` is set to. */
  key: AuthenticatedKey
  /** The key's lineage (rotation keeps it): its rate-limit counters, credits and usage go by it. */
  lineage: string
  /** Refused from then on, ms since the epoch (expiry, or the end of a rotation's grace); null: never. */
  notAfter: number | null
  /** Set while the key is in a rotation's grace period. */
  deprecation: Deprecation | null
  credits: Credits | null
  /** Fingerprint (option `secret`) of the key text that was verified. */
  fingerprint: string
  /** Fingerprint of the stored argon2 hash: tells a re-read whether the hash changed. */
  hashDigest: string
  /** Trusted without reading the database until then (ms since the epoch). */
  freshUntil: number
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isLimit = (value: unknown): boolean => value === null || (Number.isSafeInteger(value) && (value as number) > 0)
const isTime = (value: unknown): value is number => Number.isSafeInteger(value)
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
type Fields = Record<string, unknown>
const isObject = (value: unknown): value is Fields => typeof value === 'object' && value !== null

function deprecationOfShape (value: unknown): Deprecation | null | undefined {
  if (value === null) return null
  if (!isObject(value) || !isTime(value.at) || !isTime(value.sunset)) return undefined
  return Object.freeze({ at: value.at, sunset: value.sunset })
}

function creditsOfShape (value: unknown): Credits | null | undefined {
  if (value === null) return null
  if (!isObject(value) || !isCount(value.remaining) || !isTime(value.setAt)) return undefined
  const refill = value.refill
  if (refill === null) return Object.freeze({ remaining: value.remaining, refill: null, setAt: value.setAt })
  if (!isObject(refill) || !isCount(refill.amount) || !CREDITS_INTERVALS.includes(refill.interval as typeof CREDITS_INTERVALS[number])) return undefined
  return Object.freeze({
    remaining: value.remaining,
    refill: Object.freeze({ amount: refill.amount, interval: refill.interval as typeof CREDITS_INTERVALS[number] }),
    setAt: value.setAt
  })
}

/**
 * An entry from somewhere else (a shared cache), rebuilt field by field and deeply frozen, or
 * undefined when it is not the entry of this key id in every field's type. Nothing else gets
 * through, not even from an entry whose tag is good (another version of the plugin wrote it, say).
 */
export function cachedKeyOfShape (keyId: string, value: unknown): CachedKey | undefined {
  if (!isObject(value) || !isObject(value.key) || !isObject(value.key.limits)) return undefined
  const { key, key: { limits } } = value as { key: Fields & { limits: Fields } }
  if (key.id !== keyId || !isString(key.name) || !isString(key.identifier) || !key.identifier.endsWith(`.${keyId}`) ||
    !isString(key.created) || !KEY_TYPES.includes(key.for as typeof KEY_TYPES[number]) ||
    !Array.isArray(key.scopes) || !key.scopes.every(isString) || !isString(key.plan) ||
    !isLimit(limits.perMinute) || !isLimit(limits.perHour) || !(key.expires === null || isString(key.expires)) ||
    !isString(key.tenant) || !(key.owner === null || isString(key.owner)) ||
    !isString(value.lineage) || !(value.notAfter === null || isTime(value.notAfter)) ||
    !isString(value.fingerprint) || !isString(value.hashDigest) || !Number.isFinite(value.freshUntil)) {
    return undefined
  }
  const deprecation = deprecationOfShape(value.deprecation)
  const credits = creditsOfShape(value.credits)
  if (deprecation === undefined || credits === undefined) return undefined
  return {
    key: Object.freeze({
      id: keyId,
      tenant: key.tenant,
      name: key.name,
      identifier: key.identifier,
      created: key.created,
      for: key.for as typeof KEY_TYPES[number],
      scopes: Object.freeze([...key.scopes as string[]]) as string[],
      plan: key.plan,
      limits: Object.freeze({ perMinute: limits.perMinute as number | null, perHour: limits.perHour as number | null }),
      expires: key.expires,
      owner: key.owner
    }),
    lineage: value.lineage,
    notAfter: value.notAfter,
    deprecation,
    credits,
    fingerprint: value.fingerprint,
    hashDigest: value.hashDigest,
    freshUntil: value.freshUntil as number
  }
}
