import type { FastifyBaseLogger, FastifyContextConfig, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { CsrfTokenInvalidError, InternalError, isHasherBusy, isKeygateError, type KeygateError, limitRefusal, type RefusalError, scopeRefusal, unauthorizedRefusal, unavailableRefusal } from '../errors.js'
import { type ErrorResponse, createRefusalSender, sendCreditsExhausted, sendError, sendInsufficientScope, sendRateLimited, sendUnauthorized } from '../http/send-error.js'
import { denialChannel, verificationChannel } from '../diagnostics/channels.js'
import { safeError } from '../log/safe-error.js'
import { throttledWarning } from '../log/throttled-warning.js'
import { isPromise } from '../maybe-promise.js'
import { type HeaderStyle, setRateLimitHeaders } from '../ratelimit/headers.js'
import type { Limiter, RateLimitDecision } from '../ratelimit/limiter.js'
import type { CachedKey } from '../records/cached-key.js'
import type { AuthenticatedKey } from '../records/key-info.js'
import type { Deprecation } from '../records/lifecycle.js'
import { type AuthenticateManagement, checkedSignedInUser, setSignedInUser } from './management-sign-in.js'
import type { RouteApiKeyConfig, RouteConfigs } from './route-config.js'
import { firstMissing } from './scopes.js'
import { keyTextFromHeader } from './authorization-header.js'
import type { Authenticate } from './verified-keys.js'
import type { ApiKeyDenial, KeyDenial } from './denial.js'
import { CSRF_HEADER, type ConsoleSessions } from '../console/session-cookie.js'

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
  /** The console's sessions (option `console`): a signed-in browser's cookie, tried on the management routes after the rest. */
  consoleSessions?: ConsoleSessions
  /** The host's bodies for refusals; the contract's when absent. */
  errorResponse?: ErrorResponse
  log: FastifyBaseLogger
}

type Done = HookHandlerDoneFunction
/** The scopes the route requires, if any. */
type Scopes = readonly string[] | undefined
type Hook = (request: FastifyRequest, reply: FastifyReply, done: Done) => void

/** The verified entry of a request's key (with its credits), for the management routes' caller. */
export const kVerifiedKey = Symbol('keygate.verifiedKey')

/** The entry the hook verified this request's key with; null on public routes. */
export function verifiedKeyOf (request: FastifyRequest): CachedKey | null {
  return (request as unknown as Record<symbol, CachedKey | null>)[kVerifiedKey] ?? null
}

/** What `fastify.keygate` offers for composing authentication: see README, "Composition". */
export interface KeygateVerifiers {
  /**
   * The hook's check as a hook-style function, for `onRequest`/`preHandler` and @fastify/auth:
   * any valid key, and the scopes of the route's `config.apiKey`. A refusal is reported with
   * `done(error)` (a {@link RefusalError}), so another strategy may still admit the request.
   */
  verify: Hook
  /** The same, requiring these scopes too. Checked at once: an unknown scope throws `FST_KEYGATE_INVALID_ROUTE_CONFIG`. */
  verifyWith: (options: { scopes?: readonly string[] }) => Hook
}

/**
 * How one refusal is answered: replied to at once (the hook), or reported with `done(error)`
 * (`verify`). The bookkeeping every refusal shares (`request.apiKeyDenial`, the channels) is done
 * before either.
 */
interface Refusals {
  unauthorized: (request: FastifyRequest, reply: FastifyReply, done: Done) => void
  insufficientScope: (request: FastifyRequest, reply: FastifyReply, done: Done, scope: string) => void
  limited: (request: FastifyRequest, reply: FastifyReply, done: Done, decision: RateLimitDecision) => void
  /** A keygate error of the stores or of a route's setting: 503 or 500. */
  failed: (request: FastifyRequest, reply: FastifyReply, done: Done, error: KeygateError) => void
}

/** Replies from ready-made bodies: the hot path when the host shapes nothing. */
const CONTRACT_REPLIES: Refusals = {
  unauthorized: (_request, reply) => void sendUnauthorized(reply),
  insufficientScope: (_request, reply, _done, scope) => void sendInsufficientScope(reply, scope),
  limited: (_request, reply, _done, decision) => void (decision.creditsExhausted ? sendCreditsExhausted(reply, decision.retryAfter) : sendRateLimited(reply, decision.retryAfter)),
  failed: (_request, reply, _done, error) => void sendError(reply, error)
}

function asRefusal (error: KeygateError): RefusalError | KeygateError {
  return error.statusCode === 503 ? unavailableRefusal(error) : error
}

/** Builds the refusal as an error and hands it to `answer`. */
function refusalsBy (answer: (request: FastifyRequest, reply: FastifyReply, done: Done, error: RefusalError | KeygateError) => void): Refusals {
  return {
    unauthorized: (request, reply, done) => answer(request, reply, done, unauthorizedRefusal(request.apiKeyDenial as ApiKeyDenial)),
    insufficientScope: (request, reply, done, scope) => answer(request, reply, done, scopeRefusal(scope)),
    limited: (request, reply, done, decision) => answer(request, reply, done, limitRefusal(decision.creditsExhausted, decision.retryAfter)),
    failed: (request, reply, done, error) => answer(request, reply, done, asRefusal(error))
  }
}

/** Why a keygate error refused the request, or null for one that is no refusal (a route's bad setting). */
function denialOf (error: KeygateError): ApiKeyDenial | null {
  if (error.statusCode !== 503) return null
  return isHasherBusy(error) ? 'hasher_busy' : 'store_unavailable'
}

function statusOfDenial (denial: ApiKeyDenial): number {
  switch (denial) {
    case 'insufficient_scope': return 403
    case 'rate_limited': case 'credits_exhausted': return 429
    case 'store_unavailable': case 'hasher_busy': return 503
    default: return 401
  }
}

/** What every refusal records: the reason on the request, and the channels, when observed. */
function noteDenial (request: FastifyRequest, denial: ApiKeyDenial): void {
  request.apiKeyDenial = denial
  if (verificationChannel.hasSubscribers) {
    verificationChannel.publish({ outcome: 'denied', reason: denial, identifier: request.apiKey?.identifier ?? null })
  }
  if (denialChannel.hasSubscribers) {
    denialChannel.publish({ reason: denial, statusCode: statusOfDenial(denial), identifier: request.apiKey?.identifier ?? null })
  }
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
 *
 * The same check, reporting refusals with `done(error)` instead, is `verify` and `verifyWith`.
 */
export function createAuthHook (deps: AuthHookDeps): Hook {
  const sendRefusal = deps.errorResponse === undefined ? undefined : createRefusalSender(deps.errorResponse, deps.log)
  // The host shapes bodies: each refusal becomes an error for it (the hot path, unshaped, builds none).
  const refusals = sendRefusal === undefined
    ? CONTRACT_REPLIES
    : refusalsBy((request, reply, _done, error) => {
      if ((error as Partial<RefusalError>).denial !== undefined) return sendRefusal(reply, request, error as RefusalError)
      sendError(reply, error)
    })
  const { check } = createCheck(deps, refusals)
  return function keygateAuth (request, reply, done) {
    // Read once: `routeOptions` is a getter that builds a new object on every access.
    const config = request.routeOptions.config
    const setting = config.apiKey
    if (setting === false) return done()
    check(request, reply, done, setting, undefined, config)
  }
}

/** `verify` and `verifyWith`: the hook's check, reporting refusals with `done(error)`. */
export function createVerifiers (deps: AuthHookDeps): KeygateVerifiers {
  const { check } = createCheck(deps, refusalsBy((_request, _reply, done, error) => done(error)))
  function verifier (own: Scopes): Hook {
    // A route's scopes and the verifier's, merged once per route setting.
    const merged = new WeakMap<readonly string[], readonly string[]>()
    return function keygateVerify (request, reply, done) {
      const setting = request.routeOptions.config.apiKey
      let needed = own
      const configured = setting === false || setting === undefined ? undefined : setting.scopes
      if (configured !== undefined) {
        if (own === undefined) needed = configured
        else {
          needed = merged.get(configured)
          if (needed === undefined) merged.set(configured, needed = [...new Set([...configured, ...own])])
        }
      }
      check(request, reply, done, setting === false ? undefined : setting, needed, undefined)
    }
  }
  return {
    verify: verifier(undefined),
    verifyWith: ({ scopes } = {}) => {
      deps.routeConfigs.check({ scopes }, 'keygate.verifyWith()')
      return verifier(scopes === undefined ? undefined : Object.freeze([...scopes]))
    }
  }
}

/**
 * What the console's own routes need of the check: who a request is from, as a management route
 * would find it, and a key given as text (the sign-in form) checked as its Authorization header
 * would be. Both resolve once admitted (`request.apiKey` or the signed-in person set) and reject
 * with the refusal, for the route's error handler to answer.
 */
export interface ConsoleGate {
  signedIn: (request: FastifyRequest, reply: FastifyReply, scopes: readonly string[]) => Promise<void>
  withKeyText: (request: FastifyRequest, reply: FastifyReply, keyText: string, scopes: readonly string[]) => Promise<void>
}

export function createConsoleGate (deps: AuthHookDeps): ConsoleGate {
  const parts = createCheck(deps, refusalsBy((_request, _reply, done, error) => done(error)))
  const run = async (step: (done: Done) => void): Promise<void> => await new Promise((resolve, reject) => {
    step(((error?: Error | null) => { if (error === undefined || error === null) resolve(); else reject(error) }) as Done)
  })
  return {
    signedIn: async (request, reply, scopes) => await run((done) => parts.managed(request, reply, done, scopes)),
    withKeyText: async (request, reply, keyText, scopes) => await run((done) => parts.withKeyText(request, reply, done, scopes, keyText))
  }
}

// Requests that change nothing: a console session needs no CSRF token for these.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The check the hook and `verify` share, from the route's setting to `done()` or a refusal. */
function createCheck ({ authenticate, limit, headers, now, recordUse, routeConfigs, authenticateManagement, consoleSessions, log }: AuthHookDeps, refusals: Refusals) {
  // Management routes are looked at apart only when something other than a key may sign in there.
  const managementSignIn = authenticateManagement !== undefined || consoleSessions !== undefined
  /** Routes whose bad setting was logged already: once each is enough. */
  const reported = new Set<string>()
  // An outage answers every request 503; the log needs to hear of it once a minute, not per request.
  const logFailure = throttledWarning(log, now, 'error')

  function failed (request: FastifyRequest, reply: FastifyReply, done: Done, error: unknown): void {
    if (!isKeygateError(error)) return done(error as Error)
    // The cause is the store's own error, logged without what it carried.
    logFailure(error.cause ?? error, `keygate: ${error.message}`)
    const denial = denialOf(error)
    if (denial !== null) noteDenial(request, denial)
    refusals.failed(request, reply, done, error)
  }

  function unauthorized (request: FastifyRequest, reply: FastifyReply, done: Done, denial: ApiKeyDenial): void {
    noteDenial(request, denial)
    refusals.unauthorized(request, reply, done)
  }

  function insufficientScope (request: FastifyRequest, reply: FastifyReply, done: Done, scope: string): void {
    noteDenial(request, 'insufficient_scope')
    refusals.insufficientScope(request, reply, done, scope)
  }

  /** A route registered before the plugin, at its first request: checked now, failing closed. */
  function checkedLate (request: FastifyRequest, reply: FastifyReply, done: Done, setting: unknown): boolean {
    const where = `${request.routeOptions.method as string} ${request.routeOptions.url ?? request.url}`
    try {
      routeConfigs.check(setting, where)
      return true
    } catch (error) {
      if (!reported.has(where)) {
        reported.add(where)
        request.log.error({ err: safeError(error) }, 'keygate: a route registered before the plugin has a bad config.apiKey; it answers 500 until fixed (register the plugin first and startup fails instead)')
      }
      refusals.failed(request, reply, done, new InternalError())
      return false
    }
  }

  function permit (request: FastifyRequest, reply: FastifyReply, done: Done, lineage: string, missing: string | undefined, decision: RateLimitDecision | null): void {
    const at = now()
    if (decision !== null) {
      setRateLimitHeaders(reply, decision, headers, at)
      if (!decision.allowed) {
        noteDenial(request, decision.creditsExhausted ? 'credits_exhausted' : 'rate_limited')
        return refusals.limited(request, reply, done, decision)
      }
    }
    if (missing !== undefined) return insufficientScope(request, reply, done, missing)
    // Only admitted requests count as usage: a refused one (401, 403, 429) is not counted.
    recordUse(lineage, at)
    if (verificationChannel.hasSubscribers) {
      verificationChannel.publish({ outcome: 'admitted', reason: null, identifier: (request.apiKey as AuthenticatedKey).identifier })
    }
    done()
  }

  function identified (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes, entry: CachedKey | KeyDenial): void {
    if (typeof entry === 'string') return unauthorized(request, reply, done, entry)
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
      decision.then((counted) => permit(request, reply, done, entry.lineage, missing, counted), (error) => failed(request, reply, done, error))
    } else {
      permit(request, reply, done, entry.lineage, missing, decision)
    }
  }

  /**
   * `setting` is the route's `config.apiKey` (never `false` here); `scopes`, when given, what
   * `verify` requires instead of the setting's; `config` the route's config, for the hook's
   * management sign-in.
   */
  function check (request: FastifyRequest, reply: FastifyReply, done: Done, setting: RouteApiKeyConfig | undefined, scopes: Scopes, config: FastifyContextConfig | undefined): void {
    if (!routeConfigs.isChecked(setting) && !checkedLate(request, reply, done, setting)) return
    const needed = scopes ?? setting?.scopes
    if (config === undefined) {
      // `verify` on a request admitted already (by the hook, or a verifier before): only the scopes
      // are left. After a refusal (a 429, say) everything is checked again: nothing slips through.
      const entry = verifiedKeyOf(request)
      if (entry !== null && request.apiKeyDenial === null) {
        const missing = needed === undefined ? undefined : firstMissing(entry.key.scopes, needed)
        return missing === undefined ? done() : insufficientScope(request, reply, done, missing)
      }
    } else if (managementSignIn && (config as { keygateManagement?: boolean }).keygateManagement === true) {
      return managed(request, reply, done, needed)
    }
    withKey(request, reply, done, needed)
  }

  /** A management route: the host's person, else the Authorization header, else the console's session. */
  function managed (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes): void {
    if (authenticateManagement !== undefined) return signIn(request, reply, done, needed, authenticateManagement)
    keyOrSession(request, reply, done, needed)
  }

  /**
   * The console's cookie counts only without an Authorization header (a key given outright wins),
   * and a request that changes anything must carry the session's CSRF token as well. The key it
   * holds then goes the way a header's key goes; an admitted request renews the session.
   */
  function keyOrSession (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes): void {
    if (consoleSessions === undefined || request.headers.authorization !== undefined) return withKey(request, reply, done, needed)
    const session = consoleSessions.open(request.headers.cookie)
    if (session === null) return withKey(request, reply, done, needed)
    if (session === 'invalid') return unauthorized(request, reply, done, 'malformed')
    if (!SAFE_METHODS.has(request.method) && !consoleSessions.csrfValid(session, request.headers[CSRF_HEADER])) {
      return refusals.failed(request, reply, done, new CsrfTokenInvalidError())
    }
    withKeyText(request, reply, ((error?: Error | null) => {
      if (error === undefined || error === null) reply.header('set-cookie', consoleSessions.renew(session, request.protocol === 'https'))
      done(error as never)
    }) as Done, needed, session.keyText)
  }

  /**
   * A management route, with the host's sign-in: a person it recognises acts with the scopes it
   * gives them (no rate limit: people are not keys); anyone else goes the API-key way.
   */
  function signIn (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes, authenticateUser: AuthenticateManagement): void {
    new Promise((resolve) => resolve(authenticateUser(request))).then((answer) => {
      if (answer === null || answer === undefined) return keyOrSession(request, reply, done, needed)
      const user = checkedSignedInUser(answer)
      // Set before the scope check too: a refusal is recorded as theirs.
      setSignedInUser(request, user)
      const missing = needed === undefined ? undefined : firstMissing(user.scopes, needed)
      if (missing !== undefined) return insufficientScope(request, reply, done, missing)
      if (verificationChannel.hasSubscribers) verificationChannel.publish({ outcome: 'admitted', reason: null, identifier: null })
      done()
    }).catch((error: unknown) => failed(request, reply, done, error))
  }

  function withKey (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes): void {
    const header = request.headers.authorization
    const keyText = keyTextFromHeader(header)
    if (keyText === null) return unauthorized(request, reply, done, header === undefined ? 'missing' : 'malformed')
    withKeyText(request, reply, done, needed, keyText)
  }

  function withKeyText (request: FastifyRequest, reply: FastifyReply, done: Done, needed: Scopes, keyText: string): void {
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

  return { check, managed, withKeyText }
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
