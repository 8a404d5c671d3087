import type { MaybePromise } from '../maybe-promise.js'

/** One clock-aligned window of one key, as a store counts it. */
export interface WindowRequest {
  /** `minute`, `hour`, or one of the credits windows: part of the counter's name. */
  name: string
  /**
   * Tells apart counters of one key in one window name: a store makes it part of the counter's
   * name. Absent on the rate-limit windows (their counters keep the names they always had); the
   * credits window's is the version of the key's credits, so setting them again starts afresh.
   */
  counter?: string
  limit: number
  /** Window start, ms since the epoch (a multiple of `durationMs` for minute and hour; a day's or a month's start for credits). */
  start: number
  /** The window's length in ms; `Infinity` for a window that never ends, whose counter never expires. */
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
  /**
   * The current counts of each request's windows, in order, counting nothing (0 for a counter
   * not started). Read by listings, never by the hot path. A store without it: listings show
   * credits as if none had been used in the current period.
   */
  peek? (requests: readonly ConsumeRequest[]): MaybePromise<number[][]>
}
