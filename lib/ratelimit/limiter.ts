import type { FastifyBaseLogger } from 'fastify'
import { RateLimitStoreUnavailableError } from '../errors.js'
import { throttledWarning } from '../log/throttled-warning.js'
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

export type Limiter = (keyId: string, limits: Limits) => MaybePromise<RateLimitDecision | null>

/**
 * Counts a request against a key's clock-aligned windows. Returns null when the key has no
 * limits, or when the store failed and `onStoreError` is `allow`; throws 503 when it is `deny`.
 * Synchronous with an in-process store.
 */
export function createLimiter ({ store, now, onStoreError, log }: LimiterOptions): Limiter {
  const warn = throttledWarning(log, now)

  function storeFailed (error: unknown): null {
    if (onStoreError === 'deny') throw new RateLimitStoreUnavailableError({ cause: error })
    warn(error, 'keygate: rate-limit store failed; requests are let through (onStoreError: allow)')
    return null
  }

  return function limit (keyId, limits) {
    const at = now()
    const windows = windowsAt(limits, at)
    if (windows === null) return null

    let result: MaybePromise<ConsumeResult>
    try {
      result = store.consume({ keyId, windows, now: at })
    } catch (error) {
      return storeFailed(error)
    }
    if (isPromise(result)) return result.then((counted) => decide(windows, counted, at), (error) => storeFailed(error))
    return decide(windows, result, at)
  }
}

function windowAt (name: WindowName, limit: number, durationMs: number, at: number): WindowRequest {
  return { name, limit, start: at - (at % durationMs), durationMs }
}

/**
 * The key's windows that hold `at`, in order (minute, hour); null when it has no limits. The array
 * is built at its final length: this runs on every request, and a grown array costs more.
 */
function windowsAt ({ perMinute, perHour }: Limits, at: number): WindowRequest[] | null {
  if (perMinute === null) return perHour === null ? null : [windowAt('hour', perHour, HOUR_MS, at)]
  const minute = windowAt('minute', perMinute, MINUTE_MS, at)
  return perHour === null ? [minute] : [minute, windowAt('hour', perHour, HOUR_MS, at)]
}

function decide (windows: WindowRequest[], result: ConsumeResult, at: number): RateLimitDecision {
  const states = new Array<WindowState>(windows.length)
  for (let i = 0; i < windows.length; i++) {
    const window = windows[i] as WindowRequest
    states[i] = {
      name: window.name as WindowName,
      limit: window.limit,
      remaining: Math.max(0, window.limit - (result.counts[i] ?? 0)),
      resetAt: window.start + window.durationMs,
      durationMs: window.durationMs
    }
  }
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
