import { decodeBase62, encodeBase62, isBase62, randomBase62 } from './base62.js'
import { crc32Ascii } from './crc32.js'

/**
 * Key text: `<prefix>_<body>`, where the body is 32 base62 characters:
 * an 8-character key id, an 18-character secret and a 6-character checksum
 * (CRC32 of everything before it), in the manner of GitHub's tokens.
 */
export const KEY_ID_LENGTH = 8
export const SECRET_LENGTH = 18
export const CHECKSUM_LENGTH = 6
export const BODY_LENGTH = KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH

// The longest key text any valid configuration can produce; anything longer is refused unread.
export const MAX_PREFIX_LENGTH = 16
export const MAX_KEY_TEXT_LENGTH = MAX_PREFIX_LENGTH + 1 + BODY_LENGTH

export interface ParsedKey {
  /** The full key text, as presented. */
  text: string
  prefix: string
  keyId: string
}

export interface GeneratedKey extends ParsedKey {
  identifier: string
}

function checksum (withoutChecksum: string): string {
  return encodeBase62(crc32Ascii(withoutChecksum), CHECKSUM_LENGTH)
}

export function generateKey (prefix: string): GeneratedKey {
  const keyId = randomBase62(KEY_ID_LENGTH)
  const head = `${prefix}_${keyId}${randomBase62(SECRET_LENGTH)}`
  return { text: head + checksum(head), prefix, keyId, identifier: keyIdentifier(prefix, keyId) }
}

/** The public, listable name of a key: `<prefix>.<key id>`. */
export function keyIdentifier (prefix: string, keyId: string): string {
  return `${prefix}.${keyId}`
}

/**
 * Reads key text without any I/O. Returns null for a wrong prefix, a wrong length,
 * a character outside base62 or a checksum that does not match: typos and garbage stop here.
 */
export function parseKey (text: string, prefixes: ReadonlySet<string>): ParsedKey | null {
  const separator = text.indexOf('_')
  if (separator < 1 || text.length - separator - 1 !== BODY_LENGTH) return null
  const prefix = text.slice(0, separator)
  if (!prefixes.has(prefix)) return null
  const checksumStart = text.length - CHECKSUM_LENGTH
  if (!isBase62(text, separator + 1, checksumStart)) return null
  // Reading the checksum as a number (-1 if it is not base62) rather than writing the expected
  // one as text, and summing the text where it lies: the same test, with nothing built for it.
  if (crc32Ascii(text, 0, checksumStart) !== decodeBase62(text, checksumStart)) return null
  return { text, prefix, keyId: text.slice(separator + 1, separator + 1 + KEY_ID_LENGTH) }
}
