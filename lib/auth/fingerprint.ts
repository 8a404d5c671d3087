import { createHmac, timingSafeEqual } from 'node:crypto'

/** HMAC-SHA256 keyed by the server secret: safe to keep where the key itself must never be. */
export function createFingerprinter (secret: Buffer) {
  return (text: string): string => createHmac('sha256', secret).update(text).digest('base64url')
}

export type Fingerprint = ReturnType<typeof createFingerprinter>

/** Constant-time comparison of two fingerprints. */
export function sameFingerprint (a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
}
