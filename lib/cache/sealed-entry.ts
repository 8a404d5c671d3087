import { createHmac, timingSafeEqual } from 'node:crypto'
import { deriveKey } from '../keys/derived-key.js'
import { type CachedKey, cachedKeyOfShape } from '../records/cached-key.js'
import type { Invalidation } from './key-cache.js'

// Another use of the secret, another key: an entry's tag can never pass for a fingerprint.
const ENTRY_LABEL = 'fastify-keygate cache entry v1'
const MESSAGE_LABEL = 'fastify-keygate invalidation v1'
const VERSION = 'v1'

/**
 * Cache entries and invalidation messages as they travel through Redis, tagged with an HMAC
 * whose key is derived from `secret` and which covers the key id they are for. Anyone who can
 * write Redis can still delete what is there; they cannot write an entry or a message that an
 * instance accepts, nor move a genuine entry to another key id. Messages carry their sending time,
 * so one collected long ago cannot be replayed to any effect.
 */
export interface Seal {
  /** `v1.<tag>.<json>` for this key id. */
  entry (keyId: string, entry: CachedKey): string
  /** The entry, deeply frozen, or undefined when the tag or the shape is wrong. */
  openEntry (keyId: string, text: string): CachedKey | undefined
  /** `<key id>.<sent at>.<reason>.<tag>`: a delete or a change, told to every instance. */
  message (keyId: string, sentAt: number, reason: Invalidation): string
  /**
   * The key id, sending time and reason of a genuine message, or undefined. A message of the
   * earlier form, `<key id>.<sent at>.<tag>`, is a delete (instances of both versions may run
   * side by side while one is rolled out).
   */
  openMessage (text: string): { keyId: string, sentAt: number, reason: Invalidation } | undefined
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
      try {
        return cachedKeyOfShape(keyId, JSON.parse(json))
      } catch {
        return undefined
      }
    },
    message: (keyId, sentAt, reason) => reason === 'deleted'
      ? `${keyId}.${sentAt}.${tag(messageKey, keyId, String(sentAt))}`
      : `${keyId}.${sentAt}.${reason}.${tag(messageKey, keyId, String(sentAt), reason)}`,
    openMessage: (text) => {
      const parts = text.split('.')
      if (parts.length === 3) {
        const [keyId, sentAt, given] = parts as [string, string, string]
        return sameTag(given, tag(messageKey, keyId, sentAt)) ? { keyId, sentAt: Number(sentAt), reason: 'deleted' } : undefined
      }
      const [keyId, sentAt, reason, given] = parts as [string, string, string, string]
      if (parts.length !== 4 || reason !== 'changed') return undefined
      return sameTag(given, tag(messageKey, keyId, sentAt, reason)) ? { keyId, sentAt: Number(sentAt), reason } : undefined
    }
  }
}

function sameTag (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
