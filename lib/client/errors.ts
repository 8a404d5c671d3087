import type { RateLimitState } from './types.js'

/** The JSON body of an error answer: `{ error, message, ...extra }`. */
export interface ErrorBody {
  error: string
  message: string
  retry_after?: number
  [extra: string]: unknown
}

interface HttpErrorDetails {
  status: number
  body: ErrorBody
  rateLimit: RateLimitState | null
  /** `Retry-After`, in seconds, when the response had one. */
  retryAfterHeader: number | null
}

/**
 * An answer of the server that is not a success: `status` is the HTTP status, `code` the body's
 * `error` field (`unauthorized`, `key_not_found`, ...), `message` its `message`. Nothing of the
 * client's key is ever in it.
 */
export class KeygateError extends Error {
  readonly status: number
  readonly code: string
  /** The whole error body, extra fields included. */
  readonly body: ErrorBody
  /** The caller's rate-limit state, when the response told it (401s and some 5xx do not). */
  readonly rateLimit: RateLimitState | null

  constructor (details: HttpErrorDetails) {
    super(details.body.message)
    this.status = details.status
    this.code = details.body.error
    this.body = details.body
    this.rateLimit = details.rateLimit
  }
}

/** 400: the request was refused as invalid (`key_name_taken`, `invalid_request`, ...). */
export class BadRequestError extends KeygateError {}

/** 401 `unauthorized`: no key, or one that is unknown, wrong, deleted, expired or rotated away. */
export class UnauthorizedError extends KeygateError {}

/** 403: the key lacks a permission, or asked to grant more than it holds. */
export class ForbiddenError extends KeygateError {}

/** 404: `key_not_found` (no live key with that name) or `not_found` (no such route). */
export class NotFoundError extends KeygateError {}

/**
 * 429: `rate_limit_exceeded`, or `credits_exhausted` (`creditsExhausted` true). `retryAfter` is
 * the seconds to wait, or null when waiting does not help (credits that never refill).
 */
export class RateLimitedError extends KeygateError {
  readonly retryAfter: number | null
  readonly creditsExhausted: boolean

  constructor (details: HttpErrorDetails) {
    super(details)
    const fromBody = details.body.retry_after
    this.retryAfter = typeof fromBody === 'number' && Number.isInteger(fromBody) && fromBody >= 0 ? fromBody : details.retryAfterHeader
    this.creditsExhausted = details.body.error === 'credits_exhausted'
  }
}

/** 5xx: `internal_error`, or anything else the server (or a proxy before it) failed with. */
export class ServerError extends KeygateError {}

/** 503 `service_unavailable`: the key store or rate-limit store is down, or argon2 is saturated. */
export class ServiceUnavailableError extends ServerError {
  /** `Retry-After`, in seconds, when the server sent one. */
  readonly retryAfter: number | null

  constructor (details: HttpErrorDetails) {
    super(details)
    this.retryAfter = details.retryAfterHeader
  }
}

/** The client was built without what it needs (no key, no base URL, a value it cannot send). */
export class KeygateConfigError extends Error {
  readonly code = 'config_invalid'
}

/** The server could not be reached, or answered with something that is not the contract's JSON. */
export class KeygateConnectionError extends Error {
  readonly code = 'connection_failed'
}

/** The error class for an HTTP status. */
export function errorFor (details: HttpErrorDetails): KeygateError {
  switch (details.status) {
    case 400: return new BadRequestError(details)
    case 401: return new UnauthorizedError(details)
    case 403: return new ForbiddenError(details)
    case 404: return new NotFoundError(details)
    case 429: return new RateLimitedError(details)
    case 503: return new ServiceUnavailableError(details)
  }
  return details.status >= 500 ? new ServerError(details) : new KeygateError(details)
}

export type { HttpErrorDetails }

// On the prototype, not as a field: the stack is written in Error's constructor, before fields exist.
for (const type of [KeygateError, BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, RateLimitedError, ServerError, ServiceUnavailableError, KeygateConfigError, KeygateConnectionError]) {
  Object.defineProperty(type.prototype, 'name', { value: type.name, writable: true, configurable: true })
}
