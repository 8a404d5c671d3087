import type { FastifyBaseLogger } from 'fastify'
import { RateLimitStoreUnavailableError } from '../errors.js'
import { isPromise, type MaybePromise } from '../maybe-promise.js'
import type { Limits } from './plans.js'
import type { ConsumeResult, RateLimitStore, WindowRequest } from './store.js'

export type WindowName = 'minute' | 'hour'

const MINUTE_MS = 60_000
const HOUR_MS = 3_600_000

/** Where one window stands after a request. */
export interface WindowState {
  name: WindowName
  limit: number
  remaining: number
  /** When the window ends, ms since the epoch. */
  resetAt: number
  durationMs: number
}

export interface RateLimitDecision {
  allowed: boolean
  /** The window with the fewest requests left (on a refusal, the one that frees up last). */
  binding: WindowState
  /** Every window of the key, in order: minute, hour. */
  windows: WindowState[]
  /** Whole seconds until the refusing windows all have room again (at least 1); 0 when allowed. */
  retryAfter: number
}

export type OnStoreError = 'allow' | 'deny'

export interface LimiterOptions {
  store: RateLimitStore
  now: () => number
  onStoreError: OnStoreError
  log: FastifyBaseLogger
}

// A store that is down would otherwise log once per request.
const STORE_WARNING_INTERVAL_MS = 60_000

export type Limiter = (keyId: string, limits: Limits) => MaybePromise<RateLimitDecision | null>

/**
 * Counts a request against a key's clock-aligned windows. Returns null when the key has no
 * limits, or when the store failed and `onStoreError` is `allow`; throws 503 when it is `deny`.
 * Synchronous with an in-process store.
 */
export function createLimiter ({ store, now, onStoreError, log }: LimiterOptions): Limiter {
  let lastWarning = Number.NEGATIVE_INFINITY

  function storeFailed (error: unknown, at: number): null {
    if (onStoreError === 'deny') throw new RateLimitStoreUnavailableError({ cause: error })
    if (at - lastWarning >= STORE_WARNING_INTERVAL_MS) {
      lastWarning = at
      log.warn({ err: error }, 'keygate: rate-limit store failed; requests are let through (onStoreError: allow)')
    }
    return null
  }

  return function limit (keyId, limits) {
    const at = now()
    const windows: WindowRequest[] = []
    if (limits.perMinute !== null) windows.push({ name: 'minute', limit: limits.perMinute, start: at - (at % MINUTE_MS), durationMs: MINUTE_MS })
    if (limits.perHour !== null) windows.push({ name: 'hour', limit: limits.perHour, start: at - (at % HOUR_MS), durationMs: HOUR_MS })
    if (windows.length === 0) return null

    let result: MaybePromise<ConsumeResult>
    try {
      result = store.consume({ keyId, windows, now: at })
    } catch (error) {
      return storeFailed(error, at)
    }
    if (isPromise(result)) return result.then((counted) => decide(windows, counted, at), (error) => storeFailed(error, at))
    return decide(windows, result, at)
  }
}

function decide (windows: WindowRequest[], result: ConsumeResult, at: number): RateLimitDecision {
  const states = windows.map((window, i): WindowState => ({
    name: window.name as WindowName,
    limit: window.limit,
    remaining: Math.max(0, window.limit - (result.counts[i] ?? 0)),
    resetAt: window.start + window.durationMs,
    durationMs: window.durationMs
  }))
  if (result.allowed) {
    // The window with the fewest requests left; on a tie, the shorter one.
    let binding = states[0] as WindowState
    for (const state of states) if (state.remaining < binding.remaining) binding = state
    return { allowed: true, binding, windows: states, retryAfter: 0 }
  }
  // Refused: the client must wait until every full window has ended.
  let binding: WindowState | undefined
  for (const state of states) if (state.remaining === 0 && (binding === undefined || state.resetAt > binding.resetAt)) binding = state
  const refusing = binding as WindowState
  return { allowed: false, binding: refusing, windows: states, retryAfter: Math.max(1, Math.ceil((refusing.resetAt - at) / 1000)) }
}
