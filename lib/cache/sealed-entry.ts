import { createHmac, timingSafeEqual } from 'node:crypto'
import { deriveKey } from '../keys/derived-key.js'
import { type CachedKey, cachedKeyOfShape } from '../records/cached-key.js'

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
  /** `<key id>.<sent at>.<tag>`: a delete, told to every instance. */
  message (keyId: string, sentAt: number): string
  /** The key id and sending time of a genuine message, or undefined. */
  openMessage (text: string): { keyId: string, sentAt: number } | undefined
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
    message: (keyId, sentAt) => `${keyId}.${sentAt}.${tag(messageKey, keyId, String(sentAt))}`,
    openMessage: (text) => {
      const [keyId, sentAt, given, ...rest] = text.split('.')
      if (keyId === undefined || sentAt === undefined || given === undefined || rest.length > 0) return undefined
      if (!sameTag(given, tag(messageKey, keyId, sentAt))) return undefined
      return { keyId, sentAt: Number(sentAt) }
    }
  }
}

function sameTag (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
