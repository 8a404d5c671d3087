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

// The value of each base62 character by its char code; -1 for anything else.
const DIGIT_VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < BASE62_ALPHABET.length; i++) DIGIT_VALUE[BASE62_ALPHABET.charCodeAt(i)] = i

/** The value of `text[start, end)` read as base62, or -1 if a character is not base62. */
export function decodeBase62 (text: string, start = 0, end = text.length): number {
  let value = 0
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i)
    const digit = code < 128 ? DIGIT_VALUE[code] as number : -1
    if (digit === -1) return -1
    value = value * 62 + digit
  }
  return value
}

/** True when `text[start, end)` is not empty and all base62. */
export function isBase62 (text: string, start = 0, end = text.length): boolean {
  if (end <= start) return false
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i)
    if (code >= 128 || DIGIT_VALUE[code] === -1) return false
  }
  return true
}
