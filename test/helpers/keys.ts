import { crc32 } from 'node:zlib'
import { BASE62_ALPHABET, encodeBase62 } from '../../lib/keys/base62.js'
import { CHECKSUM_LENGTH, generateKey, KEY_ID_LENGTH, SECRET_LENGTH } from '../../lib/keys/key-text.js'

// Bad input here is bad by construction, never by chance: a test whose "bad" key is valid once in
// a while fails once in a while. The checksum is worked out with zlib, not with the code under test.

/** The checksum that key text without its checksum must end with. */
export function checksumOf (head: string): string {
  return encodeBase62(crc32(head), CHECKSUM_LENGTH)
}

/** The same key text with its last character changed: the one checksum that fits is no longer there. */
export function withBadChecksum (text: string): string {
  const last = text.charAt(text.length - 1)
  const other = BASE62_ALPHABET[(BASE62_ALPHABET.indexOf(last) + 1) % BASE62_ALPHABET.length] as string
  return text.slice(0, -1) + other
}

/** The 8-character key id inside key text. */
export function keyIdOf (text: string): string {
  const separator = text.indexOf('_')
  return text.slice(separator + 1, separator + 1 + KEY_ID_LENGTH)
}

/** Well-formed key text (valid checksum) whose key id is none of `taken`'s: unknown to the database. */
export function unknownKey (prefix: string, ...taken: string[]): string {
  const ids = new Set(taken.map(keyIdOf))
  for (;;) {
    const { text, keyId } = generateKey(prefix)
    if (!ids.has(keyId)) return text
  }
}

/**
 * The key id of `key` with the n-th made-up secret and a valid checksum: what someone who knows
 * the identifier but not the secret sends. Distinct for each n, and never `key`'s own secret.
 */
export function wrongSecret (key: string, n: number): string {
  const separator = key.indexOf('_')
  const idEnd = separator + 1 + KEY_ID_LENGTH
  const real = key.slice(idEnd, idEnd + SECRET_LENGTH)
  let secret = String(n).padStart(SECRET_LENGTH, 'W')
  // Padded with another letter, it still differs from every other n's.
  if (secret === real) secret = String(n).padStart(SECRET_LENGTH, 'V')
  const head = key.slice(0, idEnd) + secret
  return head + checksumOf(head)
}

/**
 * Key text an attacker can build from a public identifier: any prefix, a known key id, any
 * 18-character secret, and the checksum that makes it well-formed (CRC32 is free to compute).
 */
export function forgeKey (prefix: string, keyId: string, secret: string): string {
  const head = `${prefix}_${keyId}${secret.padStart(SECRET_LENGTH, 'F').slice(-SECRET_LENGTH)}`
  return head + checksumOf(head)
}
