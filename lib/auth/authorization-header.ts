import { MAX_KEY_TEXT_LENGTH } from '../keys/key-text.js'

const BEARER = /^bearer\s+/i

// Room for "Bearer", the key and stray spaces; anything longer is refused unread.
export const MAX_AUTHORIZATION_LENGTH = 'Bearer '.length + MAX_KEY_TEXT_LENGTH + 32

/**
 * The key text in an `Authorization` header, in either dialect:
 * `Authorization: <key>` (Metlo) or `Authorization: Bearer <key>` (Metalogue; scheme case-insensitive).
 */
export function keyTextFromHeader (header: string | undefined): string | null {
  if (header === undefined || header.length > MAX_AUTHORIZATION_LENGTH) return null
  const value = header.trim()
  const scheme = BEARER.exec(value)
  const text = scheme === null ? value : value.slice(scheme[0].length)
  return text === '' ? null : text
}
