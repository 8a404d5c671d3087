import { MAX_KEY_TEXT_LENGTH } from '../keys/key-text.js'

// Room for "Bearer", the key and stray spaces; anything longer is refused unread.
export const MAX_AUTHORIZATION_LENGTH = 'Bearer '.length + MAX_KEY_TEXT_LENGTH + 32

const SPACE = 0x20
const TAB = 0x09
const BEARER = 'bearer'

function isBlank (code: number): boolean {
  return code === SPACE || code === TAB
}

/** True when `value` has "bearer", in any case, at `start`. */
function hasBearerAt (value: string, start: number): boolean {
  for (let i = 0; i < BEARER.length; i++) {
    // Setting 0x20 lower-cases an ASCII letter and leaves the letters of "bearer" as they are.
    if ((value.charCodeAt(start + i) | 0x20) !== BEARER.charCodeAt(i)) return false
  }
  return true
}

/**
 * The key text in an `Authorization` header, in either dialect:
 * `Authorization: <key>` (Metlo) or `Authorization: Bearer <key>` (Metalogue; scheme case-insensitive).
 * Spaces and tabs around the value and after the scheme are skipped. Read by index, with no
 * regular expression and one string cut, since it runs on every request.
 */
export function keyTextFromHeader (header: string | undefined): string | null {
  if (header === undefined || header.length > MAX_AUTHORIZATION_LENGTH) return null
  let start = 0
  let end = header.length
  while (start < end && isBlank(header.charCodeAt(start))) start++
  while (end > start && isBlank(header.charCodeAt(end - 1))) end--
  const afterScheme = start + BEARER.length
  if (afterScheme < end && isBlank(header.charCodeAt(afterScheme)) && hasBearerAt(header, start)) {
    start = afterScheme
    while (isBlank(header.charCodeAt(start))) start++
  }
  return start === end ? null : header.slice(start, end)
}
