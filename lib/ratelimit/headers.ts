import type { FastifyReply } from 'fastify'
import type { RateLimitDecision } from './limiter.js'

/** Which rate-limit fields responses carry. */
export type HeaderStyle = 'x-ratelimit' | 'ietf' | 'both'
export const HEADER_STYLES: readonly HeaderStyle[] = ['x-ratelimit', 'ietf', 'both']

/**
 * Rate-limit windows only, never credits. `X-RateLimit-*` of the binding window (Reset in Unix seconds), and/or the IETF draft's
 * `RateLimit-Policy` (every window) and `RateLimit` (the binding one, `t` in seconds from now).
 */
export function setRateLimitHeaders (reply: FastifyReply, decision: RateLimitDecision, style: HeaderStyle, now: number): void {
  const { binding } = decision
  // A key with credits and no rate limits: there is no window to tell of.
  if (binding === null) return
  if (style !== 'ietf') {
    reply.header('x-ratelimit-limit', binding.limit)
    reply.header('x-ratelimit-remaining', binding.remaining)
    reply.header('x-ratelimit-reset', Math.ceil(binding.resetAt / 1000))
  }
  if (style !== 'x-ratelimit') {
    reply.header('ratelimit-policy', decision.windows
      .map((window) => `"${window.name}";q=${window.limit};w=${window.durationMs / 1000}`)
      .join(', '))
    reply.header('ratelimit', `"${binding.name}";r=${binding.remaining};t=${Math.max(0, Math.ceil((binding.resetAt - now) / 1000))}`)
  }
}
