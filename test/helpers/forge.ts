import { crc32 } from 'node:zlib'
import { encodeBase62 } from '../../lib/keys/base62.js'

/** The 8-character key id inside key text. */
export const keyIdOf = (key: string): string => key.slice(key.indexOf('_') + 1, key.indexOf('_') + 9)

/**
 * Key text an attacker can build from a public identifier: any prefix, a known key id, any
 * 18-character secret, and the checksum that makes it well-formed (CRC32 is free to compute).
 */
export function forgeKey (prefix: string, keyId: string, secret: string): string {
  const head = `${prefix}_${keyId}${secret.padStart(18, 'F').slice(-18)}`
  return head + encodeBase62(crc32(head), 6)
}
