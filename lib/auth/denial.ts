/**
 * Why the plugin refused a request, as `request.apiKeyDenial` says and the diagnostics channels
 * report. The client sees the same answer as before for each: these are for the host's logs and
 * metrics, never sent.
 *
 * - `missing`: no `Authorization` header.
 * - `malformed`: a header with no key text, a prefix not configured, or a bad checksum.
 * - `unknown`: well-formed, but no key has this prefix and key id.
 * - `wrong_secret`: a real key id with another secret.
 * - `deleted`: a key deleted (or rotated away without a grace period).
 * - `expired`: past its expiry, or a rotated-away text past its grace period.
 * - `throttled`: the key id's argon2 budget for the minute is spent (see the abuse guard).
 * - `rate_limited`: over a rate limit (429 `rate_limit_exceeded`).
 * - `credits_exhausted`: no credits left (429 `credits_exhausted`).
 * - `insufficient_scope`: the key (or signed-in person) lacks a permission (403).
 * - `store_unavailable`: the database, or the rate-limit store with `onStoreError: 'deny'`, failed (503).
 * - `hasher_busy`: argon2's queue is full (503 with `Retry-After: 1`).
 */
export type ApiKeyDenial =
  | 'missing'
  | 'malformed'
  | 'unknown'
  | 'wrong_secret'
  | 'deleted'
  | 'expired'
  | 'throttled'
  | 'rate_limited'
  | 'credits_exhausted'
  | 'insufficient_scope'
  | 'store_unavailable'
  | 'hasher_busy'

/** Every reason, in the order of the list above. */
export const API_KEY_DENIALS: readonly ApiKeyDenial[] = Object.freeze([
  'missing', 'malformed', 'unknown', 'wrong_secret', 'deleted', 'expired', 'throttled',
  'rate_limited', 'credits_exhausted', 'insufficient_scope', 'store_unavailable', 'hasher_busy'
])

/** The reasons key text alone can be refused for: what authentication answers instead of a key. */
export type KeyDenial = Extract<ApiKeyDenial, 'malformed' | 'unknown' | 'wrong_secret' | 'deleted' | 'expired' | 'throttled'>
