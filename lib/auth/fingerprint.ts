import * as crypto from 'node:crypto'
import { deriveKey } from '../keys/derived-key.js'

// 22 base64url characters, 132 bits: far beyond guessing, and less memory per cached key than the
// whole digest.
const FINGERPRINT_CHARS = 22

// What the fingerprint key is derived for: another use of the same secret gets another key.
const KEY_LABEL = 'fastify-keygate fingerprint v1'

/** SHA-256 of a string in one call, base64url. Node 20.12+ has `crypto.hash`; before it, a Hash object. */
const sha256 = typeof crypto.hash === 'function'
  ? (text: string): string => crypto.hash('sha256', text, 'base64url')
  : (text: string): string => crypto.createHash('sha256').update(text).digest('base64url')

/**
 * A keyed SHA-256 of the text, cut to its first 22 base64url characters (132 of 256 bits): safe to keep where the key itself must never be.
 *
 * The key is derived from the server secret (HMAC-SHA256 of a label) and put before the text.
 * Cutting the digest to half its size hides the hash's internal state, so the digest cannot be
 * extended to forge another text's fingerprint, the weakness of a secret prefix on a full digest.
 * It runs on every request: a one-shot hash costs about a seventh of `createHmac`, which builds a
 * native object and a Buffer each time.
 */
export function createFingerprinter (secret: Buffer) {
  const key = deriveKey(secret, KEY_LABEL).toString('base64url')
  return (text: string): string => sha256(key + text).slice(0, FINGERPRINT_CHARS)
}

export type Fingerprint = ReturnType<typeof createFingerprinter>

/**
 * A fingerprint fit to keep for long. It is a slice of the whole digest, and a slice keeps the
 * string it was cut from alive: a copy halves what a cached key holds for it.
 */
export function retainable (fingerprint: string): string {
  return Buffer.from(fingerprint, 'latin1').toString('latin1')
}

/**
 * Constant-time comparison of two fingerprints (base64url, so one byte per character): every
 * character is compared whatever the first difference, with no Buffer allocated per request.
 */
export function sameFingerprint (a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return difference === 0
}
