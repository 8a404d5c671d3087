import type { FastifyBaseLogger } from 'fastify'
import { safeError } from './safe-error.js'

// A store that is down would otherwise log once per request.
const WARNING_INTERVAL_MS = 60_000

/** `error` undefined: the message says it all. */
export type Warn = (error: unknown, message: string) => void

/**
 * A warning (or, with `level`, an error) logged at most once a minute by the given clock; the ones
 * in between are dropped.
 * The error is logged through `safeError`, so nothing it carries besides its message reaches the log.
 */
export function throttledWarning (log: FastifyBaseLogger, now: () => number, level: 'warn' | 'error' = 'warn'): Warn {
  let last = Number.NEGATIVE_INFINITY
  return (error, message) => {
    const at = now()
    // A clock that stepped back must not silence the warning for good.
    if (at - last < WARNING_INTERVAL_MS && at >= last) return
    last = at
    log[level](error === undefined ? {} : { err: safeError(error) }, message)
  }
}
