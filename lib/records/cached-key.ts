import { KEY_TYPES } from '../db/schema.js'
import type { AuthenticatedKey } from './key-info.js'

/**
 * What a cache holds for a key id once its text has been verified with argon2. Never the key
 * itself: only a fingerprint of it, keyed by the server secret (see auth/fingerprint.ts).
 */
export interface CachedKey {
  /** Deeply frozen: it is what `request.apiKey` is set to. */
  key: AuthenticatedKey
  /** Fingerprint (option `secret`) of the key text that was verified. */
  fingerprint: string
  /** Fingerprint of the stored argon2 hash: tells a re-read whether the hash changed. */
  hashDigest: string
  /** Trusted without reading the database until then (ms since the epoch). */
  freshUntil: number
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isLimit = (value: unknown): boolean => value === null || (Number.isSafeInteger(value) && (value as number) > 0)

/**
 * An entry from somewhere else (a shared cache), rebuilt field by field and deeply frozen, or
 * undefined when it is not the entry of this key id in every field's type. Nothing else gets
 * through, not even from an entry whose tag is good (another version of the plugin wrote it, say).
 */
export function cachedKeyOfShape (keyId: string, value: unknown): CachedKey | undefined {
  const entry = value as Partial<Record<keyof CachedKey, unknown>>
  const key = entry?.key as Record<string, unknown> | undefined
  const limits = key?.limits as Record<string, unknown> | undefined
  if (typeof entry !== 'object' || entry === null || typeof key !== 'object' || key === null ||
    key.id !== keyId || !isString(key.name) || !isString(key.identifier) || !key.identifier.endsWith(`.${keyId}`) ||
    !isString(key.created) || !KEY_TYPES.includes(key.for as typeof KEY_TYPES[number]) ||
    !Array.isArray(key.scopes) || !key.scopes.every(isString) || !isString(key.plan) ||
    typeof limits !== 'object' || limits === null || !isLimit(limits.perMinute) || !isLimit(limits.perHour) ||
    !isString(entry.fingerprint) || !isString(entry.hashDigest) || !Number.isFinite(entry.freshUntil)) {
    return undefined
  }
  return {
    key: Object.freeze({
      id: keyId,
      name: key.name,
      identifier: key.identifier,
      created: key.created,
      for: key.for as typeof KEY_TYPES[number],
      scopes: Object.freeze([...key.scopes as string[]]) as string[],
      plan: key.plan,
      limits: Object.freeze({ perMinute: limits.perMinute as number | null, perHour: limits.perHour as number | null })
    }),
    fingerprint: entry.fingerprint,
    hashDigest: entry.hashDigest,
    freshUntil: entry.freshUntil as number
  }
}
