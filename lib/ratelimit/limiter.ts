import type { FastifyBaseLogger } from 'fastify'
import { RateLimitStoreUnavailableError } from '../errors.js'
import type { Limits } from './plans.js'
import type { RateLimitStore, WindowRequest } from './store.js'

export type WindowName = 'minute' | 'hour'

const WINDOWS: ReadonlyArray<{ name: WindowName, field: keyof Limits, durationMs: number }> = [
  { name: 'minute', field: 'perMinute', durationMs: 60_000 },
  { name: 'hour', field: 'perHour', durationMs: 3_600_000 }
]

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

export type Limiter = (keyId: string, limits: Limits) => Promise<RateLimitDecision | null>

/**
 * Counts a request against a key's clock-aligned windows. Returns null when the key has no
 * limits, or when the store failed and `onStoreError` is `allow`; throws 503 when it is `deny`.
 */
export function createLimiter ({ store, now, onStoreError, log }: LimiterOptions): Limiter {
  let lastWarning = Number.NEGATIVE_INFINITY

  return async function limit (keyId, limits) {
    const at = now()
    const windows: WindowRequest[] = []
    for (const { name, field, durationMs } of WINDOWS) {
      const max = limits[field]
      if (max !== null) windows.push({ name, limit: max, start: at - (at % durationMs), durationMs })
    }
    if (windows.length === 0) return null

    let result
    try {
      result = await store.consume({ keyId, windows, now: at })
    } catch (error) {
      if (onStoreError === 'deny') throw new RateLimitStoreUnavailableError({ cause: error })
      if (at - lastWarning >= STORE_WARNING_INTERVAL_MS) {
        lastWarning = at
        log.warn({ err: error }, 'keygate: rate-limit store failed; requests are let through (onStoreError: allow)')
      }
      return null
    }

    const states = windows.map((window, i): WindowState => ({
      name: window.name as WindowName,
      limit: window.limit,
      remaining: Math.max(0, window.limit - (result.counts[i] ?? 0)),
      resetAt: window.start + window.durationMs,
      durationMs: window.durationMs
    }))
    if (result.allowed) return { allowed: true, binding: fewestLeft(states), windows: states, retryAfter: 0 }
    // Refused: the client must wait until every full window has ended.
    const full = states.filter((state) => state.remaining === 0)
    const binding = full.reduce((a, b) => (b.resetAt > a.resetAt ? b : a))
    return { allowed: false, binding, windows: states, retryAfter: Math.max(1, Math.ceil((binding.resetAt - at) / 1000)) }
  }
}

function fewestLeft (states: WindowState[]): WindowState {
  return states.reduce((a, b) => (b.remaining < a.remaining ? b : a))
}
