import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import { keyTextFromHeader } from '../auth/authorization-header.js'
import type { ConsoleGate } from '../auth/hook.js'
import { signedInUserOf } from '../auth/management-sign-in.js'
import { KEYS_READ } from '../auth/scopes.js'
import { CsrfTokenInvalidError, InvalidRequestError, isKeygateError, isRefusal, RouteNotFoundError } from '../errors.js'
import { sendError, sendOtherError, type SendRefusal } from '../http/send-error.js'
import assetDir from './asset-dir.cjs'
import { CSRF_HEADER, type ConsoleSessions } from './session-cookie.js'

/** What the page needs to know once someone is signed in: where the routes are and what it may offer. */
export interface ConsoleSettings {
  routePrefix: string
  /** The permission vocabulary, offered as checkboxes beside "Full access" (`*`). */
  scopes: readonly string[]
  plans: readonly string[]
  defaultPlan: string
  keyTypes: readonly string[]
  maxGracePeriodSeconds: number
  auditActions: readonly string[]
}

export interface ConsoleRoutesOptions {
  /** Where the console is served (also the prefix these routes are registered under). */
  path: string
  gate: ConsoleGate
  sessions: ConsoleSessions
  settings: ConsoleSettings
  sendRefusal: SendRefusal
}

// The page's policy: its own script and style only, no inline code of any kind, no other origin,
// never framed. Sent on every answer under the console's path.
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const SECURITY_HEADERS = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
})

interface Asset { body: Buffer, type: string, etag: string }

const ASSET_TYPES: Readonly<Record<string, string>> = Object.freeze({
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8'
})

function asset (body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }
}

/** Read once, at registration: a handful of small files, served from memory. */
function loadAssets (path: string): { page: Asset, files: Map<string, Asset> } {
  // The page names its files by absolute path (a <base> would need `base-uri`, which the policy forbids).
  const html = readFileSync(join(assetDir.ASSET_DIR, 'index.html'), 'utf8').replaceAll('%CONSOLE_PATH%', path)
  const files = new Map<string, Asset>()
  for (const [name, type] of Object.entries(ASSET_TYPES)) files.set(name, asset(readFileSync(join(assetDir.ASSET_DIR, name)), type))
  return { page: asset(Buffer.from(html), 'text/html; charset=utf-8'), files }
}

function sendAsset (request: FastifyRequest, reply: FastifyReply, file: Asset, cacheControl: string): FastifyReply {
  reply.header('cache-control', cacheControl).header('etag', file.etag)
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send()
  return reply.type(file.type).send(file.body)
}

// Public as routes (the page must load before anyone signs in), hidden from the OpenAPI document
// (`hide` is @fastify/swagger's; the plugin does not depend on its types).
const PUBLIC = { config: { apiKey: false as const }, schema: { hide: true } as FastifySchema }
const NEEDS_KEYS_READ = [KEYS_READ] as const

/**
 * The console: its page and files, and its session (sign in with a key, who is signed in, sign
 * out). Everything else the page does goes through the management routes themselves.
 */
export async function consoleRoutes (fastify: FastifyInstance, { path, gate, sessions, settings, sendRefusal }: ConsoleRoutesOptions): Promise<void> {
  const { page, files } = loadAssets(path)

  fastify.addHook('onSend', (_request, reply, payload, done) => {
    reply.headers(SECURITY_HEADERS)
    done(null, payload)
  })
  fastify.setErrorHandler(function consoleErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (isRefusal(error)) return sendRefusal(reply, request, error)
    if (isKeygateError(error)) return sendError(reply, error)
    return sendOtherError(request, reply, error, 'keygate: a console route failed')
  })

  // Here rather than the app's, so the security headers above go on these answers too (after the
  // hook's 401: an unknown URL needs a key, as everywhere).
  fastify.setNotFoundHandler(function consoleNotFound (request: FastifyRequest, reply: FastifyReply) {
    return sendError(reply, new RouteNotFoundError(request.method, request.url.split('?', 1)[0] as string))
  })

  fastify.get('/', PUBLIC, async (request, reply) => sendAsset(request, reply, page, 'no-store'))

  fastify.get('/assets/:file', PUBLIC, async (request, reply) => {
    const file = files.get((request.params as { file: string }).file)
    if (file === undefined) return reply.code(404).send({ error: 'not_found', message: 'No such console file.' })
    // Not fingerprinted by name: revalidated on every load, cheap with the ETag.
    return sendAsset(request, reply, file, 'no-cache')
  })

  /** Who is signed in, as the page shows it, and what it may offer them. */
  function signedIn (request: FastifyRequest, csrfToken: string | null): object {
    const person = signedInUserOf(request)
    const who = person !== null
      ? { user: person.user, tenant: person.tenant, scopes: person.scopes }
      : { identifier: request.apiKey?.identifier, name: request.apiKey?.name, tenant: request.apiKey?.tenant, scopes: request.apiKey?.scopes }
    return { signedIn: who, csrfToken, settings }
  }

  fastify.get('/session', PUBLIC, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    await gate.signedIn(request, reply, NEEDS_KEYS_READ)
    // A token only for a console session: the host's sign-in, or a key sent outright, has none.
    const session = request.headers.authorization === undefined && signedInUserOf(request) === null ? sessions.open(request.headers.cookie) : null
    return signedIn(request, session !== null && session !== 'invalid' ? sessions.csrfToken(session) : null)
  })

  fastify.post('/session', PUBLIC, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    // Login CSRF: a form on another site cannot send JSON, and a browser names the page's origin.
    const origin = request.headers.origin
    if (origin !== undefined && origin !== `${request.protocol}://${request.host}`) throw new CsrfTokenInvalidError()
    const given = (request.body as { apiKey?: unknown } | null | undefined)?.apiKey
    const keyText = typeof given === 'string' ? keyTextFromHeader(given) : null
    if (keyText === null || typeof request.body !== 'object' || Object.keys(request.body as object).some((name) => name !== 'apiKey')) {
      throw new InvalidRequestError('Send { "apiKey": "<an API key holding keys:read>" } to sign in.')
    }
    await gate.withKeyText(request, reply, keyText, NEEDS_KEYS_READ)
    const { setCookie, session } = sessions.issue(keyText, request.protocol === 'https')
    reply.header('set-cookie', setCookie)
    return signedIn(request, sessions.csrfToken(session))
  })

  fastify.delete('/session', PUBLIC, async (request, reply) => {
    const session = sessions.open(request.headers.cookie)
    // Signing out a live session takes its token, so another site cannot sign someone out.
    if (session !== null && session !== 'invalid') {
      if (!sessions.csrfValid(session, request.headers[CSRF_HEADER])) throw new CsrfTokenInvalidError()
      sessions.end(session)
    }
    return reply.code(204).header('cache-control', 'no-store').header('set-cookie', sessions.clear(request.protocol === 'https')).send()
  })
}
