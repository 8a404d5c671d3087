import type { FastifyError, FastifyReply } from 'fastify'
import { errorBody, InsufficientScopeError, RateLimitExceededError, statusOf } from '../errors.js'

type ScopeError = FastifyError & { scope: string }
type RateLimitError = FastifyError & { retryAfter: number }

/** 403 for a missing permission; the scope travels on the error for the WWW-Authenticate header. */
export function insufficientScope (scope: string): ScopeError {
  return Object.assign(new InsufficientScopeError(scope), { scope })
}

/** 429 with the whole seconds until the refusing window resets. */
export function rateLimitExceeded (retryAfter: number): RateLimitError {
  return Object.assign(new RateLimitExceededError(retryAfter), { retryAfter })
}

/** Replies with the error contract's body and the headers its status calls for. */
export function sendError (reply: FastifyReply, error: FastifyError): FastifyReply {
  const status = statusOf(error)
  const body: Record<string, unknown> = errorBody(error)
  if (status === 401) reply.header('www-authenticate', 'Bearer')
  if (typeof (error as Partial<ScopeError>).scope === 'string') {
    reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${(error as ScopeError).scope}"`)
  }
  if (typeof (error as Partial<RateLimitError>).retryAfter === 'number') {
    const { retryAfter } = error as RateLimitError
    reply.header('retry-after', retryAfter)
    body.retry_after = retryAfter
  }
  return reply.code(status).send(body)
}
