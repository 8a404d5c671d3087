import { createHmac, timingSafeEqual } from 'node:crypto'
import { KEY_TYPES } from '../db/schema.js'
import { deriveKey } from '../keys/derived-key.js'
import type { CachedKey } from '../records/cached-key.js'

// Another use of the secret, another key: an entry's tag can never pass for a fingerprint.
const ENTRY_LABEL = 'fastify-keygate cache entry v1'
const MESSAGE_LABEL = 'fastify-keygate invalidation v1'
const VERSION = 'v1'

/**
 * Cache entries and invalidation messages as they travel through Redis, tagged with an HMAC
 * whose key is derived from `secret` and which covers the key id they are for. Anyone who can
 * write Redis can still delete what is there; they cannot write an entry or a message that an
 * instance accepts, nor move a genuine entry to another key id.
 */
export interface Seal {
  /** `v1.<tag>.<json>` for this key id. */
  entry (keyId: string, entry: CachedKey): string
  /** The entry, deeply frozen, or undefined when the tag or the shape is wrong. */
  openEntry (keyId: string, text: string): CachedKey | undefined
  /** `<key id>.<tag>`: a delete, told to every instance. */
  message (keyId: string): string
  /** The key id of a genuine message, or undefined. */
  openMessage (text: string): string | undefined
}

export function createSeal (secret: Buffer): Seal {
  const entryKey = deriveKey(secret, ENTRY_LABEL)
  const messageKey = deriveKey(secret, MESSAGE_LABEL)
  const tag = (key: Buffer, ...parts: string[]): string => {
    const hmac = createHmac('sha256', key)
    // The parts are joined with a byte none of them holds (key ids are base62).
    for (const part of parts) hmac.update(part).update('\n')
    return hmac.digest('base64url')
  }

  return {
    entry: (keyId, entry) => {
      const json = JSON.stringify(entry)
      return `${VERSION}.${tag(entryKey, keyId, json)}.${json}`
    },
    openEntry: (keyId, text) => {
      const first = text.indexOf('.')
      const second = text.indexOf('.', first + 1)
      if (first === -1 || second === -1 || text.slice(0, first) !== VERSION) return undefined
      const json = text.slice(second + 1)
      if (!sameTag(text.slice(first + 1, second), tag(entryKey, keyId, json))) return undefined
      return entryOfShape(keyId, json)
    },
    message: (keyId) => `${keyId}.${tag(messageKey, keyId)}`,
    openMessage: (text) => {
      const dot = text.indexOf('.')
      if (dot === -1) return undefined
      const keyId = text.slice(0, dot)
      return sameTag(text.slice(dot + 1), tag(messageKey, keyId)) ? keyId : undefined
    }
  }
}

function sameTag (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isLimit = (value: unknown): boolean => value === null || (Number.isSafeInteger(value) && (value as number) > 0)

/**
 * Rebuilds an entry field by field, so nothing but the expected fields (of the expected types)
 * gets through, even from an entry with a good tag (another version of the plugin wrote it, say).
 */
function entryOfShape (keyId: string, json: string): CachedKey | undefined {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return undefined
  }
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
