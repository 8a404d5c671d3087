import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { InternalError, isKeygateError } from '../errors.js'
import { sendCreditsExhausted, sendError, sendInsufficientScope, sendRateLimited, sendUnauthorized } from '../http/send-error.js'
import { safeError } from '../log/safe-error.js'
import { throttledWarning } from '../log/throttled-warning.js'
import { isPromise } from '../maybe-promise.js'
import { type HeaderStyle, setRateLimitHeaders } from '../ratelimit/headers.js'
import type { Limiter, RateLimitDecision } from '../ratelimit/limiter.js'
import type { CachedKey } from '../records/cached-key.js'
import type { Deprecation } from '../records/lifecycle.js'
import { type AuthenticateManagement, checkedSignedInUser, setSignedInUser } from './management-sign-in.js'
import type { RouteApiKeyConfig, RouteConfigs } from './route-config.js'
import { firstMissing } from './scopes.js'
import { keyTextFromHeader } from './authorization-header.js'
import type { Authenticate } from './verified-keys.js'

export interface AuthHookDeps {
  authenticate: Authenticate
  limit: Limiter
  headers: HeaderStyle
  now: () => number
  /** Counts an admitted request toward its lineage's usage: synchronous, no I/O (see usage/usage-counter.ts). */
  recordUse: (lineage: string, at: number) => void
  /** Checks the `config.apiKey` of routes registered before the plugin, at their first request. */
  routeConfigs: RouteConfigs
  /** The host's sign-in for people on the management routes, tried before their API key. */
  authenticateManagement?: AuthenticateManagement
  log: FastifyBaseLogger
}

type Done = HookHandlerDoneFunction
/** The scopes the route requires, if any. */
type Scopes = readonly string[] | undefined

/** The verified entry of a request's key (with its credits), for the management routes' caller. */
export const kVerifiedKey = Symbol('keygate.verifiedKey')

/** The entry the hook verified this request's key with; null on public routes. */
export function verifiedKeyOf (request: FastifyRequest): CachedKey | null {
  return (request as unknown as Record<symbol, CachedKey | null>)[kVerifiedKey] ?? null
}

/**
 * The onRequest hook for the whole host app: every route needs a valid key unless its
 * `config.apiKey` is `false`. Unknown URLs need one too, so the route table stays private.
 * Order: authenticate (401), count against the key's limits (429), then permissions (403), so
 * every response to an identified key carries its rate-limit headers. The missing permission is
 * worked out before counting, though: only a request that will be admitted uses a credit.
 *
 * Callback style, and synchronous when the key and its counters are in this process: the hot
 * path makes no promise at all. A hook that answers does not call `done`.
 */
export function createAuthHook ({ authenticate, limit, headers, now, recordUse, routeConfigs, authenticateManagement, log }: AuthHookDeps) {
  /** Routes whose bad setting was logged already: once each is enough. */
  const reported = new Set<string>()
  // An outage answers every request 503; the log needs to hear of it once a minute, not per request.
  const logFailure = throttledWarning(log, now, 'error')

  function failed (request: FastifyRequest, reply: FastifyReply, done: Done, error: unknown): void {
    if (!isKeygateError(error)) return done(error as Error)
    // The cause is the store's own error, logged without what it carried.
    logFailure(error.cause ?? error, `keygate: ${error.message}`)
    sendError(reply, error)
  }

  /** A route registered before the plugin, at its first request: checked now, failing closed. */
  function checkedLate (request: FastifyRequest, reply: FastifyReply, setting: unknown): boolean {
    const where = `${request.routeOptions.method as string} ${request.routeOptions.url ?? request.url}`
    try {
      routeConfigs.check(setting, where)
      return true
    } catch (error) {
      if (!reported.has(where)) {
        reported.add(where)
        request.log.error({ err: safeError(error) }, 'keygate: a route registered before the plugin has a bad config.apiKey; it answers 500 until fixed (register the plugin first and startup fails instead)')
      }
      sendError(reply, new InternalError())
      return false
    }
  }

  function permit (reply: FastifyReply, done: Done, lineage: string, missing: string | undefined, decision: RateLimitDecision | null): void {
    const at = now()
    if (decision !== null) {
      setRateLimitHeaders(reply, decision, headers, at)
      if (!decision.allowed) {
        return void (decision.creditsExhausted ? sendCreditsExhausted(reply, decision.retryAfter) : sendRateLimited(reply, decision.retryAfter))
      }
    }
    if (missing !== undefined) return void sendInsufficientScope(reply, missing)
    // Only admitted requests count as usage: a refused one (401, 403, 429) is not counted.
    recordUse(lineage, at)
    done()
  }

  function identified (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes, entry: CachedKey | null): void {
    if (entry === null) return void sendUnauthorized(reply)
    const key = entry.key
    request.apiKey = key
    ;(request as unknown as Record<symbol, CachedKey>)[kVerifiedKey] = entry
    if (entry.deprecation !== null) setDeprecationHeaders(reply, entry.deprecation)
    const missing = needed === undefined ? undefined : firstMissing(key.scopes, needed)
    let decision
    try {
      // Counted per lineage: a rotation keeps the key's windows and credits. A request refused
      // for a permission (403) is counted against the limits but uses no credit.
      decision = limit(entry.lineage, key.limits, missing === undefined ? entry.credits : null)
    } catch (error) {
      return failed(request, reply, done, error)
    }
    if (isPromise(decision)) {
      decision.then((counted) => permit(reply, done, entry.lineage, missing, counted), (error) => failed(request, reply, done, error))
    } else {
      permit(reply, done, entry.lineage, missing, decision)
    }
  }

  return function keygateAuth (request: FastifyRequest, reply: FastifyReply, done: Done): void {
    // Read once: `routeOptions` is a getter that builds a new object on every access.
    const config = request.routeOptions.config
    const setting = config.apiKey
    if (setting === false) return done()
    if (!routeConfigs.isChecked(setting) && !checkedLate(request, reply, setting)) return
    const needed = (setting as RouteApiKeyConfig | undefined)?.scopes
    if (authenticateManagement !== undefined && (config as { keygateManagement?: boolean }).keygateManagement === true) {
      return signIn(request, reply, done, needed, authenticateManagement)
    }
    withKey(request, reply, done, needed)
  }

  /**
   * A management route, with the host's sign-in: a person it recognises acts with the scopes it
   * gives them (no rate limit: people are not keys); anyone else goes the API-key way.
   */
  function signIn (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes, authenticateUser: AuthenticateManagement): void {
    new Promise((resolve) => resolve(authenticateUser(request))).then((answer) => {
      if (answer === null || answer === undefined) return withKey(request, reply, done, needed)
      const user = checkedSignedInUser(answer)
      // Set before the scope check too: a refusal is recorded as theirs.
      setSignedInUser(request, user)
      const missing = needed === undefined ? undefined : firstMissing(user.scopes, needed)
      if (missing !== undefined) return void sendInsufficientScope(reply, missing)
      done()
    }).catch((error: unknown) => failed(request, reply, done, error))
  }

  function withKey (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes): void {
    const keyText = keyTextFromHeader(request.headers.authorization)
    if (keyText === null) return void sendUnauthorized(reply)
    let key
    try {
      key = authenticate(keyText)
    } catch (error) {
      return failed(request, reply, done, error)
    }
    if (isPromise(key)) {
      key.then((found) => identified(request, reply, done, needed, found), (error) => failed(request, reply, done, error))
    } else {
      identified(request, reply, done, needed, key)
    }
  }
}

/**
 * A key rotated away, in its grace period: `Deprecation` (RFC 9745: since when, as `@<Unix
 * seconds>`) and `Sunset` (RFC 8594: when it stops working, as an HTTP date), so its client
 * learns to switch before it does.
 */
function setDeprecationHeaders (reply: FastifyReply, deprecation: Deprecation): void {
  reply.header('deprecation', `@${Math.floor(deprecation.at / 1000)}`)
  reply.header('sunset', new Date(deprecation.sunset).toUTCString())
}
