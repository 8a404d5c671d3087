import type { FastifyBaseLogger } from 'fastify'
import { storeErrorChannel } from '../diagnostics/channels.js'
import { RateLimitStoreUnavailableError } from '../errors.js'
import { safeError } from '../log/safe-error.js'
import { throttledWarning } from '../log/throttled-warning.js'
import { isPromise, type MaybePromise } from '../maybe-promise.js'
import type { Credits } from '../records/lifecycle.js'
import { type CreditsWindow, creditsWindowAt } from './credits.js'
import type { Limits } from './plans.js'
import type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './store.js'

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
  /**
   * The rate-limit window with the fewest requests left (on a refusal by them, the one that frees
   * up last); null for a key with credits and no rate limits. Never the credits window.
   */
  binding: WindowState | null
  /** Every rate-limit window of the key, in order: minute, hour. */
  windows: WindowState[]
  /**
   * True when refused because the key has no credits left (whatever its windows said): then
   * `retryAfter` is the time until they refill, 0 when they never do.
   */
  creditsExhausted: boolean
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

/** Counts a request; `credits` (when the key has them and the request is to use one) in the same store call. */
export type Limiter = (keyId: string, limits: Limits, credits?: Credits | null) => MaybePromise<RateLimitDecision | null>

/**
 * Counts a request against a key's clock-aligned windows, and its credits if given. Returns null
 * when the key has neither, or when the store failed and `onStoreError` is `allow`; throws 503
 * when it is `deny`. Synchronous with an in-process store.
 */
export function createLimiter ({ store, now, onStoreError, log }: LimiterOptions): Limiter {
  const warn = throttledWarning(log, now)

  function storeFailed (error: unknown): null {
    if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ store: 'rate-limit', operation: 'consume', error: safeError(error) })
    if (onStoreError === 'deny') throw new RateLimitStoreUnavailableError({ cause: error })
    warn(error, 'keygate: rate-limit store failed; requests are let through (onStoreError: allow)')
    return null
  }

  return function limit (keyId, limits, credits) {
    const at = now()
    const windows = credits == null ? windowsAt(limits, at) : windowsWithCredits(limits, credits, at)
    if (windows === null) return null

    let result: MaybePromise<ConsumeResult>
    try {
      result = store.consume({ keyId, windows, now: at })
    } catch (error) {
      return storeFailed(error)
    }
    if (isPromise(result)) return result.then((counted) => decide(windows, credits != null, counted, at), (error) => storeFailed(error))
    return decide(windows, credits != null, result, at)
  }
}

/** A key's credits as of `at`: `remaining` is what is left now, read from the store without counting. */
export type CreditsReader = (entries: ReadonlyArray<{ lineage: string, credits: Credits }>) => Promise<number[]>

/**
 * Reads what is left of credits, for listings: one store read for all of them. A store without
 * `peek` reports them unused in the current period. A store that fails answers 503.
 */
export function createCreditsReader (store: RateLimitStore, now: () => number): CreditsReader {
  return async (entries) => {
    if (entries.length === 0) return []
    const at = now()
    const windows = entries.map(({ credits }) => creditsWindowAt(credits, at))
    let counts: number[][] = []
    if (store.peek !== undefined) {
      const requests: ConsumeRequest[] = entries.map(({ lineage }, i) => ({ keyId: lineage, windows: [windows[i] as CreditsWindow], now: at }))
      try {
        counts = await store.peek(requests)
      } catch (error) {
        if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ store: 'rate-limit', operation: 'peek', error: safeError(error) })
        throw new RateLimitStoreUnavailableError({ cause: error })
      }
    }
    return windows.map((window, i) => Math.max(0, window.limit - (counts[i]?.[0] ?? 0)))
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

/** The rate-limit windows, then the credits window last; built at final length too. */
function windowsWithCredits ({ perMinute, perHour }: Limits, credits: Credits, at: number): WindowRequest[] {
  const count = (perMinute === null ? 0 : 1) + (perHour === null ? 0 : 1)
  const windows = new Array<WindowRequest>(count + 1)
  let i = 0
  if (perMinute !== null) windows[i++] = windowAt('minute', perMinute, MINUTE_MS, at)
  if (perHour !== null) windows[i++] = windowAt('hour', perHour, HOUR_MS, at)
  windows[i] = creditsWindowAt(credits, at)
  return windows
}

function decide (windows: WindowRequest[], withCredits: boolean, result: ConsumeResult, at: number): RateLimitDecision {
  // The credits window, when there is one, is last; the states and headers are the rate limits'.
  const rated = withCredits ? windows.length - 1 : windows.length
  const states = new Array<WindowState>(rated)
  for (let i = 0; i < rated; i++) {
    const window = windows[i] as WindowRequest
    states[i] = {
      name: window.name as WindowName,
      limit: window.limit,
      remaining: Math.max(0, window.limit - (result.counts[i] ?? 0)),
      resetAt: window.start + window.durationMs,
      durationMs: window.durationMs
    }
  }
  if (result.allowed) return { allowed: true, binding: leastLeft(states), windows: states, creditsExhausted: false, retryAfter: 0 }
  if (withCredits) {
    const credits = windows[rated] as CreditsWindow
    if ((result.counts[rated] ?? 0) >= credits.limit) {
      // Credits answer first: no wait for a window helps a key that has none left.
      const retryAfter = credits.refillAt === null ? 0 : Math.max(1, Math.ceil((credits.refillAt - at) / 1000))
      return { allowed: false, binding: leastLeft(states), windows: states, creditsExhausted: true, retryAfter }
    }
  }
  // Refused: the client must wait until every full window has ended.
  let binding: WindowState | undefined
  for (const state of states) if (state.remaining === 0 && (binding === undefined || state.resetAt > binding.resetAt)) binding = state
  const refusing = binding as WindowState
  return { allowed: false, binding: refusing, windows: states, creditsExhausted: false, retryAfter: Math.max(1, Math.ceil((refusing.resetAt - at) / 1000)) }
}

/** The window with the fewest requests left; on a tie, the shorter one. Null when there are none. */
function leastLeft (states: WindowState[]): WindowState | null {
  let binding = states[0] ?? null
  for (const state of states) if (state.remaining < (binding as WindowState).remaining) binding = state
  return binding
}
