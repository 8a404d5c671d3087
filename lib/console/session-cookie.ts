import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/** The console's session cookie. */
export const SESSION_COOKIE = 'keygate_console'
/** The header a state-changing console request carries its CSRF token in. */
export const CSRF_HEADER = 'x-keygate-csrf'
/** A session unused this long is over (sliding: every use renews it). */
export const IDLE_MS = 15 * 60_000
/** A session is over this long after sign-in, however busy. */
export const MAX_SESSION_MS = 12 * 60 * 60_000

// Each use of the secret gets its own key: a session's seal can never pass for a CSRF token, a
// fingerprint or a cache entry's tag.
const SEAL_LABEL = 'fastify-keygate console session v1'
const CSRF_LABEL = 'fastify-keygate console csrf v1'
const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
// A sealed session is about 200 characters; anything much longer is not one of ours.
const MAX_COOKIE_LENGTH = 1024
// Sessions signed out of, remembered until their cookie could no longer be used anyway.
const MAX_ENDED = 10_000

/** What the cookie holds, sealed: the key the person signed in with and the session's times. */
export interface ConsoleSession {
  /** The API key's text: each request is verified with it exactly as with an Authorization header. */
  readonly keyText: string
  /** Random, per sign-in: what the CSRF token is bound to. */
  readonly id: string
  readonly issuedAt: number
  readonly seenAt: number
}

export interface ConsoleSessions {
  /**
   * The session in a `Cookie` header: null when it has none of ours; `invalid` for a cookie that
   * was changed, sealed under another secret, idle for longer than {@link IDLE_MS} or older than
   * {@link MAX_SESSION_MS}.
   */
  open: (cookieHeader: string | undefined) => ConsoleSession | null | 'invalid'
  /** A new session for this key, as a `Set-Cookie` value, with its CSRF token. */
  issue: (keyText: string, secure: boolean) => { setCookie: string, session: ConsoleSession }
  /** The same session, seen now: the `Set-Cookie` value that renews it. */
  renew: (session: ConsoleSession, secure: boolean) => string
  /** The `Set-Cookie` value that removes it. */
  clear: (secure: boolean) => string
  /**
   * Signed out: this process refuses the session from now on, even from a copy of the cookie
   * taken before. Other instances do not hear of it; they refuse it once it is idle (see README).
   */
  end: (session: ConsoleSession) => void
  csrfToken: (session: ConsoleSession) => string
  /** True when `given` (the request's CSRF header) is this session's token. */
  csrfValid: (session: ConsoleSession, given: unknown) => boolean
}

export interface ConsoleSessionsOptions {
  secret: Buffer
  /** The cookie's `Path`: where the browser sends it (the console and the management routes). */
  path: string
  now: () => number
}

/**
 * Stateless sessions: the cookie is the API key sealed with AES-256-GCM under a key derived from
 * the plugin's `secret`, so any instance sharing the secret can open it and nothing is stored.
 * Sealed rather than signed because the server needs the key itself: a console request is then
 * verified exactly as a request with that key in its Authorization header (scopes, revocation,
 * expiry, rotation, rate limits, credits, audit actor). The cookie is HttpOnly: the page's script
 * never sees the key.
 */
export function createConsoleSessions ({ secret, path, now }: ConsoleSessionsOptions): ConsoleSessions {
  const sealKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), SEAL_LABEL, 32))
  const csrfKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), CSRF_LABEL, 32))
  const aad = Buffer.from(`${SESSION_COOKIE} ${VERSION}`)
  /** Session id → until when it must be refused (after that its cookie is idle and refused anyway). */
  const ended = new Map<string, number>()

  const attributes = (secure: boolean, maxAgeSeconds: number): string =>
    `Path=${path}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`

  function seal (session: ConsoleSession): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', sealKey, iv)
    cipher.setAAD(aad)
    const plain = JSON.stringify([session.keyText, session.id, session.issuedAt, session.seenAt])
    const sealed = Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()])
    return `${VERSION}.${sealed.toString('base64url')}`
  }

  function unseal (value: string): ConsoleSession | undefined {
    if (value.length > MAX_COOKIE_LENGTH || !value.startsWith(`${VERSION}.`)) return undefined
    const sealed = Buffer.from(value.slice(VERSION.length + 1), 'base64url')
    if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined
    try {
      const decipher = createDecipheriv('aes-256-gcm', sealKey, sealed.subarray(0, IV_BYTES))
      decipher.setAAD(aad)
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
      const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8')
      const [keyText, id, issuedAt, seenAt] = JSON.parse(plain) as unknown[]
      if (typeof keyText !== 'string' || typeof id !== 'string' || typeof issuedAt !== 'number' || typeof seenAt !== 'number') return undefined
      return { keyText, id, issuedAt, seenAt }
    } catch {
      // A wrong tag (changed, or another secret's) or a body that is not ours.
      return undefined
    }
  }

  const setCookie = (session: ConsoleSession, secure: boolean): string =>
    `${SESSION_COOKIE}=${seal(session)}; ${attributes(secure, IDLE_MS / 1000)}`

  function csrfToken (session: ConsoleSession): string {
    return createHmac('sha256', csrfKey).update(session.id).digest('base64url')
  }

  return {
    open: (cookieHeader) => {
      const value = cookieValue(cookieHeader, SESSION_COOKIE)
      if (value === undefined || value === '') return null
      const session = unseal(value)
      if (session === undefined) return 'invalid'
      const at = now()
      if (at - session.seenAt > IDLE_MS || at - session.issuedAt > MAX_SESSION_MS) return 'invalid'
      if ((ended.get(session.id) ?? 0) > at) return 'invalid'
      return session
    },
    issue: (keyText, secure) => {
      const at = now()
      const session = { keyText, id: randomBytes(16).toString('base64url'), issuedAt: at, seenAt: at }
      return { setCookie: setCookie(session, secure), session }
    },
    renew: (session, secure) => setCookie({ ...session, seenAt: now() }, secure),
    clear: (secure) => `${SESSION_COOKIE}=; ${attributes(secure, 0)}`,
    end: (session) => {
      const at = now()
      if (ended.size >= MAX_ENDED) {
        for (const [id, until] of ended) if (until <= at) ended.delete(id)
        // Still full: the oldest sign-outs go first (a Map keeps insertion order).
        for (const id of ended.keys()) { if (ended.size < MAX_ENDED) break; ended.delete(id) }
      }
      ended.set(session.id, at + IDLE_MS)
    },
    csrfToken,
    csrfValid: (session, given) => {
      if (typeof given !== 'string') return false
      const expected = Buffer.from(csrfToken(session))
      const actual = Buffer.from(given)
      return actual.length === expected.length && timingSafeEqual(actual, expected)
    }
  }
}

/** One cookie's value from a `Cookie` header (`a=1; b=2`), or undefined. */
export function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * The cookie's `Path`: the longest whole-segment prefix of the console's path and the management
 * routes' prefix, so the browser sends it to both and nowhere else it need not (`/` at worst).
 */
export function commonPath (a: string, b: string): string {
  const left = a.split('/')
  const right = b.split('/')
  const common: string[] = []
  for (let i = 1; i < Math.min(left.length, right.length) && left[i] === right[i]; i++) common.push(left[i] as string)
  return `/${common.join('/')}`
}
