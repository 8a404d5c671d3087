import type { MaybePromise } from '../maybe-promise.js'

/** One clock-aligned window of one key, as a store counts it. */
export interface WindowRequest {
  /** `minute` or `hour`: part of the counter's name. */
  name: string
  limit: number
  /** Window start, ms since the epoch (a multiple of `durationMs`). */
  start: number
  durationMs: number
}

export interface ConsumeRequest {
  keyId: string
  windows: readonly WindowRequest[]
  /** The limiter's clock, ms since the epoch. */
  now: number
}

export interface ConsumeResult {
  /** True when every window had room; then each was counted. When false, none was. */
  allowed: boolean
  /** Per window, in request order: the count after this request if allowed, the current count if not. */
  counts: number[]
}

/**
 * Where rate-limit counters live. `consume` checks and counts every window of a request in one
 * atomic step: a request refused by one window consumes none.
 */
export interface RateLimitStore {
  /** Synchronous for an in-process store, a promise for a remote one. */
  consume (request: ConsumeRequest): MaybePromise<ConsumeResult>
}
