import { createHmac } from 'node:crypto'

/**
 * A key for one use of the server secret: HMAC-SHA256 of a label that names the use. Fingerprints,
 * cache entries and invalidation messages each get their own, so one can never stand for another.
 */
export function deriveKey (secret: Buffer, label: string): Buffer {
  return createHmac('sha256', secret).update(label).digest()
}
