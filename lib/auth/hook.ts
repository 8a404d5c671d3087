import type { FastifyReply, FastifyRequest } from 'fastify'
import { isKeygateError, UnauthorizedError } from '../errors.js'
import { insufficientScope, rateLimitExceeded, sendError } from '../http/send-error.js'
import { type HeaderStyle, setRateLimitHeaders } from '../ratelimit/headers.js'
import type { Limiter } from '../ratelimit/limiter.js'
import type { Authenticate } from './authenticator.js'
import { keyTextFromHeader } from './authorization-header.js'
import { firstMissing } from './scopes.js'

export interface AuthHookDeps {
  authenticate: Authenticate
  limit: Limiter
  headers: HeaderStyle
  now: () => number
}

/**
 * The onRequest hook for the whole host app: every route needs a valid key unless its
 * `config.apiKey` is `false`. Unknown URLs need one too, so the route table stays private.
 * Order: authenticate (401), count against the key's limits (429), then permissions (403), so
 * every response to an identified key carries its rate-limit headers.
 */
export function createAuthHook ({ authenticate, limit, headers, now }: AuthHookDeps) {
  return async function keygateAuth (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const setting = request.routeOptions.config.apiKey
    if (setting === false) return
    const keyText = keyTextFromHeader(request.headers.authorization)
    try {
      const key = keyText === null ? null : await authenticate(keyText)
      if (key === null) return sendError(reply, new UnauthorizedError())
      request.apiKey = key

      const decision = await limit(key.id, key.limits)
      if (decision !== null) {
        setRateLimitHeaders(reply, decision, headers, now())
        if (!decision.allowed) return sendError(reply, rateLimitExceeded(decision.retryAfter))
      }

      const missing = setting?.scopes === undefined ? undefined : firstMissing(key.scopes, setting.scopes)
      if (missing !== undefined) return sendError(reply, insufficientScope(missing))
    } catch (error) {
      if (!isKeygateError(error)) throw error
      // The cause is the store's own error: no key text is in it.
      request.log.error({ err: error.cause }, error.message)
      return sendError(reply, error)
    }
  }
}
