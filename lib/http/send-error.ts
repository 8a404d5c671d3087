import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import {
  creditsExhaustedBody,
  errorBody,
  HASHER_BUSY_RETRY_AFTER,
  HasherBusyError,
  insufficientScopeBody,
  InternalError,
  rateLimitedBody,
  refusalBody,
  type RefusalError,
  type ScopeError,
  statusOf,
  UnauthorizedError
} from '../errors.js'
import { safeError } from '../log/safe-error.js'
import { isPromise } from '../maybe-promise.js'

/** Replies with the error contract's body and the headers its status calls for. */
export function sendError (reply: FastifyReply, error: FastifyError): FastifyReply {
  if (typeof (error as Partial<ScopeError>).scope === 'string') return sendInsufficientScope(reply, (error as ScopeError).scope)
  const status = statusOf(error)
  if (status === 401) reply.header('www-authenticate', 'Bearer')
  if (error instanceof HasherBusyError) reply.header('retry-after', HASHER_BUSY_RETRY_AFTER)
  return reply.code(status).send(errorBody(error))
}

/**
 * An error that is neither keygate's nor a validation's, on keygate's own routes: a 5xx is
 * logged (without what the error carried) and answered 500 with nothing of it; Fastify's own 4xx
 * (bad JSON, wrong content type, body too large) keeps its status in the contract's shape.
 */
export function sendOtherError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, logMessage: string): FastifyReply {
  const status = error.statusCode ?? 500
  if (status >= 500) {
    request.log.error({ err: safeError(error) }, logMessage)
    return sendError(reply, new InternalError())
  }
  const code = (STATUS_CODES[status] ?? 'Bad Request').toLowerCase().replace(/[^a-z]+/g, '_')
  return reply.code(status).send({ error: code, message: error.message })
}

// The hook's own refusals are answered from ready-made bodies: an Error object (with its stack
// trace) per refused request would make a storm of bad keys cost more than the keys themselves.
// They go out as JSON text: Fastify then skips its serializer lookup and the preSerialization
// hooks, about 1 µs of each refused request in a storm (bench/RESULTS.md, findings).
const JSON_TYPE = 'application/json; charset=utf-8'
const UNAUTHORIZED_JSON = JSON.stringify(errorBody(new UnauthorizedError()))
// Credits that never refill: one body for every refusal.
const CREDITS_GONE_JSON = JSON.stringify(creditsExhaustedBody(0))

function sendJson (reply: FastifyReply, status: number, json: string): FastifyReply {
  return reply.code(status).header('content-type', JSON_TYPE).send(json)
}

/** 401 with the contract's body and `WWW-Authenticate: Bearer`. */
export function sendUnauthorized (reply: FastifyReply): FastifyReply {
  return sendJson(reply.header('www-authenticate', 'Bearer'), 401, UNAUTHORIZED_JSON)
}

/** 403 naming the first missing scope. */
export function sendInsufficientScope (reply: FastifyReply, scope: string): FastifyReply {
  reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${scope}"`)
  return sendJson(reply, 403, JSON.stringify(insufficientScopeBody(scope)))
}

/** 429 with `retry_after` and `Retry-After`. */
export function sendRateLimited (reply: FastifyReply, retryAfter: number): FastifyReply {
  return sendJson(reply.header('retry-after', retryAfter), 429, JSON.stringify(rateLimitedBody(retryAfter)))
}

/** 429 for a key without credits left; with `retry_after` and `Retry-After` when they refill (`retryAfter` > 0). */
export function sendCreditsExhausted (reply: FastifyReply, retryAfter: number): FastifyReply {
  if (retryAfter === 0) return sendJson(reply, 429, CREDITS_GONE_JSON)
  return sendJson(reply.header('retry-after', retryAfter), 429, JSON.stringify(creditsExhaustedBody(retryAfter)))
}

/**
 * The host's own body for a refusal of the hook or of `verify` (option `errorResponse`): given the
 * refusal as an error, it returns the body to send (or a promise of it). Status and headers stay
 * the plugin's.
 */
export type ErrorResponse = (error: RefusalError, request: FastifyRequest) => unknown

/** Answers a refusal: the contract's body, or the host's (`errorResponse`). */
export type SendRefusal = (reply: FastifyReply, request: FastifyRequest, error: RefusalError) => void

const INTERNAL_BODY = Object.freeze(errorBody(new InternalError()))

/**
 * The answer to a refusal. A host `errorResponse` that throws (or rejects) gets 500 with the
 * contract's `internal_error` body and no refusal headers, and a log line with its error's type,
 * message, code and stack: never a hang, and nothing of the host's error reaches the client.
 */
export function createRefusalSender (errorResponse: ErrorResponse | undefined, log: FastifyBaseLogger): SendRefusal {
  function broken (reply: FastifyReply, error: unknown): void {
    log.error({ err: safeError(error) }, 'keygate: the errorResponse option failed; the client got 500')
    reply.removeHeader('www-authenticate')
    reply.removeHeader('retry-after')
    reply.code(500).send(INTERNAL_BODY)
  }
  return function sendRefusal (reply, request, error) {
    reply.code(error.statusCode).headers(error.headers)
    if (errorResponse === undefined) return void sendJson(reply, error.statusCode, error.statusCode === 401 ? UNAUTHORIZED_JSON : JSON.stringify(refusalBody(error)))
    let body
    try {
      body = errorResponse(error, request)
    } catch (thrown) {
      return broken(reply, thrown)
    }
    if (isPromise(body)) {
      body.then((shaped) => reply.send(shaped), (thrown: unknown) => broken(reply, thrown))
    } else {
      reply.send(body)
    }
  }
}
