import { randomBytes } from 'node:crypto'

export const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

// 248 = 4 × 62: bytes at or above it are dropped so every character is equally likely.
const UNBIASED_BYTE_LIMIT = 248

/** `length` characters drawn uniformly from the base62 alphabet with node:crypto. */
export function randomBase62 (length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < UNBIASED_BYTE_LIMIT) out += BASE62_ALPHABET[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

/** A non-negative integer in base62, left-padded with zeros to `width` characters. */
export function encodeBase62 (value: number, width: number): string {
  let out = ''
  let rest = value
  do {
    out = BASE62_ALPHABET[rest % 62] + out
    rest = Math.floor(rest / 62)
  } while (rest > 0)
  return out.padStart(width, '0')
}

const BASE62_CHAR = /^[0-9A-Za-z]+$/

export function isBase62 (text: string): boolean {
  return BASE62_CHAR.test(text)
}
