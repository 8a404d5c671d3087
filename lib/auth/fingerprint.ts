import { createHmac } from 'node:crypto'

// 128 bits of the HMAC: far beyond guessing, and half the memory of the whole digest per cached key.
const FINGERPRINT_BYTES = 16

/** HMAC-SHA256 keyed by the server secret, cut to 128 bits: safe to keep where the key itself must never be. */
export function createFingerprinter (secret: Buffer) {
  return (text: string): string => createHmac('sha256', secret).update(text).digest().subarray(0, FINGERPRINT_BYTES).toString('base64url')
}

export type Fingerprint = ReturnType<typeof createFingerprinter>

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
