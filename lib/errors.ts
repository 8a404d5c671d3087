import createError from '@fastify/error'
import type { ApiKeyDenial } from './auth/denial.js'

/**
 * Every error the plugin raises, once. The code after `FST_KEYGATE_`, lower-cased, is the
 * `error` field of the JSON body a client receives (see `errorBody`).
 */
const CODE_PREFIX = 'FST_KEYGATE_'

// Options: thrown at registration, so a bad option fails `ready()`.
export const InvalidOptionError = createError<[string, string]>(
  'FST_KEYGATE_INVALID_OPTION',
  'Invalid keygate option "%s": %s',
  500,
  TypeError
)
export const InvalidRouteConfigError = createError<[string, string]>(
  'FST_KEYGATE_INVALID_ROUTE_CONFIG',
  'Invalid config.apiKey on route %s: %s',
  500,
  TypeError
)

// Authentication.
export const UnauthorizedError = createError('FST_KEYGATE_UNAUTHORIZED', 'Client unauthorized', 401)

// Key management: texts exactly as the Metlo API documents them.
export const KeyNameRequiredError = createError('FST_KEYGATE_KEY_NAME_REQUIRED', 'Key name is required.', 400)
export const KeyNameInvalidError = createError(
  'FST_KEYGATE_KEY_NAME_INVALID',
  'Key name must be a string of 1 to 128 characters without control characters.',
  400
)
export const KeyNameTakenError = createError<[string]>(
  'FST_KEYGATE_KEY_NAME_TAKEN',
  'Can not create key with name %s',
  400
)
export const KeyRenameTakenError = createError<[string]>(
  'FST_KEYGATE_KEY_NAME_TAKEN',
  'Can not rename key to %s: a live key has that name',
  400
)
export const OwnerInvalidError = createError<[string]>(
  'FST_KEYGATE_OWNER_INVALID',
  'owner must be a user id of 1 to 128 characters without control characters%s.',
  400
)
export const KeyForInvalidError = createError(
  'FST_KEYGATE_KEY_FOR_INVALID',
  'The key must be for one of the following: GCP, AWS, GENERIC, ONBOARDING',
  400
)
export const KeyPrefixInvalidError = createError<[string]>(
  'FST_KEYGATE_KEY_PREFIX_INVALID',
  'The key prefix must be one of the following: %s',
  400
)
export const KeyLimitReachedError = createError<[number]>(
  'FST_KEYGATE_KEY_LIMIT_REACHED',
  'Maximum API Key Limit Reached: %s. Consider deleting any that are not in use.',
  400
)
export const InvalidRequestError = createError<[string]>('FST_KEYGATE_INVALID_REQUEST', '%s', 400)
export const KeyNotFoundError = createError<[string]>(
  'FST_KEYGATE_KEY_NOT_FOUND',
  'Did not find any matching keys for %s',
  404
)

// Permissions and limits: texts exactly as the Metalogue API documents them. The hook answers
// these without building an Error (a storm of refusals would pay for a stack trace each), from
// the bodies below, which use the same texts.
const INSUFFICIENT_SCOPE = 'API key lacks required permission: %s'
const RATE_LIMIT_EXCEEDED = 'Rate limit exceeded. Retry after %s seconds.'
const CREDITS_EXHAUSTED = 'API key has no credits left.'
const CREDITS_REFILL = ' Credits refill in %s seconds.'

export const InsufficientScopeError = createError<[string]>('FST_KEYGATE_INSUFFICIENT_SCOPE', INSUFFICIENT_SCOPE, 403)
export const RateLimitExceededError = createError<[number]>('FST_KEYGATE_RATE_LIMIT_EXCEEDED', RATE_LIMIT_EXCEEDED, 429)
/** Credits used up; the message names the seconds until they refill, when they do (`%s` is that sentence or nothing). */
export const CreditsExhaustedError = createError<[string]>('FST_KEYGATE_CREDITS_EXHAUSTED', `${CREDITS_EXHAUSTED}%s`, 429)

/** A 403 for a missing permission; the scope travels on the error for the WWW-Authenticate header. */
export type ScopeError = KeygateError & { scope: string }

export function insufficientScope (scope: string): ScopeError {
  return Object.assign(new InsufficientScopeError(scope), { scope }) as ScopeError
}

export function insufficientScopeBody (scope: string): { error: string, message: string } {
  return { error: 'insufficient_scope', message: INSUFFICIENT_SCOPE.replace('%s', scope) }
}

export function rateLimitedBody (retryAfter: number): { error: string, message: string, retry_after: number } {
  return { error: 'rate_limit_exceeded', message: RATE_LIMIT_EXCEEDED.replace('%s', String(retryAfter)), retry_after: retryAfter }
}

/** The 429 for a key without credits left; `retryAfter` 0: they never refill (no `retry_after` then). */
export function creditsExhaustedBody (retryAfter: number): { error: string, message: string, retry_after?: number } {
  if (retryAfter === 0) return { error: 'credits_exhausted', message: CREDITS_EXHAUSTED }
  return { error: 'credits_exhausted', message: CREDITS_EXHAUSTED + CREDITS_REFILL.replace('%s', String(retryAfter)), retry_after: retryAfter }
}

export const LimitExceedsCallerError = createError<[string]>(
  'FST_KEYGATE_LIMIT_EXCEEDS_CALLER',
  'API key cannot grant a rate limit above its own: %s',
  403
)
export const ExpiryExceedsCallerError = createError<[string]>(
  'FST_KEYGATE_EXPIRY_EXCEEDS_CALLER',
  'API key expires at %s and cannot make a key that outlives it',
  403
)
export const CreditsExceedCallerError = createError<[string]>(
  'FST_KEYGATE_CREDITS_EXCEED_CALLER',
  'API key cannot grant credits above its own: %s',
  403
)
export const CreditsInvalidError = createError<[string]>(
  'FST_KEYGATE_CREDITS_INVALID',
  'credits takes remaining (a whole number, 0 or more) and optionally refill: { amount (a whole number, 1 or more), interval ("day" or "month") }%s.',
  400
)
export const ScopeInvalidError = createError<[string, string]>(
  'FST_KEYGATE_SCOPE_INVALID',
  'Unknown scope "%s". Allowed: %s',
  400
)
export const PlanInvalidError = createError<[string]>(
  'FST_KEYGATE_PLAN_INVALID',
  'The plan must be one of the following: %s',
  400
)
export const RateLimitInvalidError = createError(
  'FST_KEYGATE_RATE_LIMIT_INVALID',
  'rateLimit takes perMinute and/or perHour, each a positive integer.',
  400
)
export const RateLimitRequiredError = createError<[string]>(
  'FST_KEYGATE_RATE_LIMIT_REQUIRED',
  'Plan %s has no limits of its own: set rateLimit.perMinute and/or rateLimit.perHour.',
  400
)
export const ExpiryInvalidError = createError<[string]>('FST_KEYGATE_EXPIRY_INVALID', '%s', 400)
export const GracePeriodInvalidError = createError<[number]>(
  'FST_KEYGATE_GRACE_PERIOD_INVALID',
  'gracePeriodSeconds must be a whole number of seconds from 0 to %s.',
  400
)

// The console (option `console`): a state-changing request made with its session cookie must
// carry the session's CSRF token, so another site cannot make a signed-in browser act.
export const CsrfTokenInvalidError = createError(
  'FST_KEYGATE_CSRF_TOKEN_INVALID',
  'This request needs the console session\'s CSRF token in the x-keygate-csrf header.',
  403
)

// Infrastructure.
export const ServiceUnavailableError = createError(
  'FST_KEYGATE_SERVICE_UNAVAILABLE',
  'The API key store is unavailable. Try again shortly.',
  503
)
export const RateLimitStoreUnavailableError = createError(
  'FST_KEYGATE_SERVICE_UNAVAILABLE',
  'The rate-limit store is unavailable. Try again shortly.',
  503
)
/** Too many first uses at once: argon2's queue is full. Sent with `Retry-After`. */
export const HasherBusyError = createError(
  'FST_KEYGATE_SERVICE_UNAVAILABLE',
  'Too many keys are being verified at once. Try again shortly.',
  503
)
/** Seconds a client is told to wait after a `HasherBusyError`. */
export const HASHER_BUSY_RETRY_AFTER = 1

// The management routes' own answers for what is not a keygate error.
export const RouteNotFoundError = createError<[string, string]>('FST_KEYGATE_NOT_FOUND', 'Route %s %s not found.', 404)
export const InternalError = createError('FST_KEYGATE_INTERNAL_ERROR', 'Internal error.', 500)

/**
 * A request refused by the hook or by `fastify.keygate.verify`, as an error: what `verify` reports
 * with `done(error)`, what the `errorResponse` option is given, and what a host's error handler
 * sees. `statusCode` is 401, 403, 429 or 503; `headers` are the ones its answer carries
 * (`WWW-Authenticate`, `Retry-After`); `denial` says why (`request.apiKeyDenial` says the same).
 */
export type RefusalError = KeygateError & {
  statusCode: number
  headers: Readonly<Record<string, string | number>>
  denial: ApiKeyDenial
  /** 429 and the argon2 queue's 503: seconds until a retry may pass (0: credits that never refill). */
  retryAfter?: number
  /** 403: the first scope the key lacks. */
  scope?: string
}

const UNAUTHORIZED_HEADERS = Object.freeze({ 'www-authenticate': 'Bearer' })
const NO_HEADERS = Object.freeze({})

function asRefusal (error: Error, denial: ApiKeyDenial, headers: Readonly<Record<string, string | number>>, extra?: { retryAfter?: number, scope?: string }): RefusalError {
  return Object.assign(error, { headers, denial }, extra) as RefusalError
}

/** A 401 for any reason authentication refuses. */
export function unauthorizedRefusal (denial: ApiKeyDenial): RefusalError {
  return asRefusal(new UnauthorizedError(), denial, UNAUTHORIZED_HEADERS)
}

/** A 403 naming the first missing scope. */
export function scopeRefusal (scope: string): RefusalError {
  return asRefusal(new InsufficientScopeError(scope), 'insufficient_scope',
    { 'www-authenticate': `Bearer error="insufficient_scope", scope="${scope}"` }, { scope })
}

/** A 429: over a rate limit, or (`creditsExhausted`) without credits; `retryAfter` 0: credits that never refill. */
export function limitRefusal (creditsExhausted: boolean, retryAfter: number): RefusalError {
  const headers = retryAfter > 0 ? { 'retry-after': retryAfter } : NO_HEADERS
  if (!creditsExhausted) return asRefusal(new RateLimitExceededError(retryAfter), 'rate_limited', headers, { retryAfter })
  const refill = retryAfter > 0 ? CREDITS_REFILL.replace('%s', String(retryAfter)) : ''
  return asRefusal(new CreditsExhaustedError(refill), 'credits_exhausted', headers, { retryAfter })
}

/** A 503 (the database, the rate-limit store or argon2's queue) as a refusal. */
export function unavailableRefusal (error: KeygateError): RefusalError {
  const denial = isHasherBusy(error) ? 'hasher_busy' : 'store_unavailable'
  // The same header as `sendError` sends (@fastify/error's instanceof goes by code, shared by every 503).
  if (error instanceof HasherBusyError) return asRefusal(error, denial, { 'retry-after': HASHER_BUSY_RETRY_AFTER }, { retryAfter: HASHER_BUSY_RETRY_AFTER })
  return asRefusal(error, denial, NO_HEADERS)
}

/** argon2's queue was full (not another 503 with the same code: @fastify/error's instanceof goes by code). */
export function isHasherBusy (error: unknown): boolean {
  return (error as { constructor?: unknown } | null)?.constructor === HasherBusyError
}

export function isRefusal (error: unknown): error is RefusalError {
  return isKeygateError(error) && typeof (error as Partial<RefusalError>).denial === 'string'
}

/** The error contract's body of a refusal (`retry_after` on a 429 that has one). */
export function refusalBody (error: RefusalError): { error: string, message: string, retry_after?: number } {
  const body = errorBody(error)
  return error.statusCode === 429 && error.retryAfter !== undefined && error.retryAfter > 0 ? { ...body, retry_after: error.retryAfter } : body
}

/** Any error of this module: a FastifyError whose code starts with `FST_KEYGATE_`. */
export type KeygateError = Error & { code: `FST_KEYGATE_${string}`, statusCode?: number }

export function isKeygateError (error: unknown): error is KeygateError {
  return error instanceof Error &&
    typeof (error as KeygateError).code === 'string' &&
    (error as KeygateError).code.startsWith(CODE_PREFIX)
}

/** The HTTP status of a keygate error (500 for the option errors, which never reach a client). */
export function statusOf (error: Pick<KeygateError, 'statusCode'>): number {
  return error.statusCode ?? 500
}

/** The body of the error contract: `{ error: <snake_case code>, message }`. */
export function errorBody (error: { code: string, message: string }): { error: string, message: string } {
  return { error: error.code.slice(CODE_PREFIX.length).toLowerCase(), message: error.message }
}

