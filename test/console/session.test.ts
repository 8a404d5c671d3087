import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, TEST_SECRET, testClock } from '../helpers/app.js'
import { database, heard, instance } from '../helpers/instance.js'
import { captureLogs } from '../helpers/log-capture.js'
import { REDIS_URL } from '../helpers/redis.js'
import type { KeygateOptions } from '../../lib/index.js'

// The console's session: an API key exchanged once for a sealed, HttpOnly cookie that the
// management routes accept (and nothing else does), with a CSRF token for every change, idle
// expiry on the plugin's clock, and the key's own verification on every request.

const MINUTE = 60_000
const COOKIE = /^keygate_console=(v1\.[A-Za-z0-9_-]+); Path=\/; Max-Age=900; HttpOnly; SameSite=Strict$/
const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const CSRF_REFUSED = { error: 'csrf_token_invalid', message: 'This request needs the console session\'s CSRF token in the x-keygate-csrf header.' }
const SETTINGS = {
  routePrefix: '/api/v1/keys',
  scopes: ['query', 'federate', 'connector:read', 'connector:write', 'audit:read', 'audit:export', 'keys:read', 'keys:write'],
  plans: ['free', 'pro', 'enterprise'],
  defaultPlan: 'free',
  keyTypes: ['GCP', 'AWS', 'GENERIC', 'ONBOARDING'],
  maxGracePeriodSeconds: 604800,
  auditActions: ['key.created', 'key.updated', 'key.rotated', 'key.deleted', 'key.expired', 'access.denied']
}

interface ConsoleApp { app: FastifyInstance, clock: ReturnType<typeof testClock> }

async function consoleApp (t: Test, keygate: Partial<KeygateOptions> = {}, fastify = {}): Promise<ConsoleApp> {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { console: true, secret: TEST_SECRET, now: clock.now, ...keygate },
    fastify,
    routes: (app) => { app.get('/anything', async () => ({ ok: true })) }
  })
  return { app, clock }
}

/** `keygate_console=<value>` from an answer's Set-Cookie, for the next request's Cookie header. */
function cookieOf (response: LightMyRequestResponse): string {
  const value = COOKIE.exec(String(response.headers['set-cookie']))?.[1]
  if (value === undefined) throw new Error(`no session cookie in ${String(response.headers['set-cookie'])}`)
  return `keygate_console=${value}`
}

async function signIn (app: FastifyInstance, apiKey: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/keys-console/session', payload: { apiKey } })
}

/** Signed in with a new key of these scopes: its cookie and CSRF token. */
async function session (app: FastifyInstance, name: string, scopes: string[]): Promise<{ apiKey: string, identifier: string, cookie: string, csrf: string }> {
  const { apiKey, identifier } = await app.keygate.createKey({ name, scopes })
  const answer = await signIn(app, apiKey)
  if (answer.statusCode !== 200) throw new Error(`sign-in failed: ${answer.body}`)
  return { apiKey, identifier, cookie: cookieOf(answer), csrf: answer.json().csrfToken }
}

const names = (response: LightMyRequestResponse): string[] => response.json().map((key: { name: string }) => key.name)

t.test('a key holding keys:read signs in: an HttpOnly SameSite=Strict cookie, who is signed in, a CSRF token', async (t) => {
  const { app } = await consoleApp(t)
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })
  const answer = await signIn(app, apiKey)
  t.equal(answer.statusCode, 200)
  t.match(answer.headers['set-cookie'], COOKIE)
  t.equal(answer.headers['cache-control'], 'no-store')
  t.equal(answer.headers['x-ratelimit-limit'], '60', 'signing in is a request of the key, counted like any other')
  const body = answer.json()
  t.same(body, { signedIn: { identifier, name: 'reader', tenant: 'default', scopes: ['keys:read'] }, csrfToken: body.csrfToken, settings: SETTINGS })
  t.match(body.csrfToken, /^[A-Za-z0-9_-]{43}$/)
  t.notOk(answer.headers['set-cookie']!.includes(apiKey), 'the cookie is sealed: the key is not in it')
  t.notOk(answer.body.includes(apiKey), 'nor in the answer')

  const who = await app.inject({ url: '/keys-console/session', headers: { cookie: cookieOf(answer) } })
  t.equal(who.statusCode, 200)
  t.same(who.json(), body, 'the same person and token from the cookie')
  t.match(who.headers['set-cookie'], COOKIE, 'renewed on use')
  t.same((await app.inject({ url: '/keys-console/session' })).json(), UNAUTHORIZED, 'nobody: 401')
  t.equal(await signIn(app, `  Bearer ${apiKey} `).then((r) => r.statusCode), 200, 'a pasted "Bearer <key>" is understood')
})

t.test('refused sign-ins: 403 without keys:read, 401 for a bad key, 400 without one; no cookie for any', async (t) => {
  const { app } = await consoleApp(t)
  const { apiKey } = await app.keygate.createKey({ name: 'querier', scopes: ['query'] })
  const cases: Array<[string, () => Promise<LightMyRequestResponse>, number, object]> = [
    ['a key without keys:read', async () => await signIn(app, apiKey), 403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:read' }],
    ['a key that does not exist', async () => await signIn(app, 'metlo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), 401, UNAUTHORIZED],
    ['a key with a wrong secret', async () => await signIn(app, apiKey.slice(0, -8) + 'AAAAAAAA'), 401, UNAUTHORIZED],
    ['no key', async () => await app.inject({ method: 'POST', url: '/keys-console/session', payload: {} }), 400, { error: 'invalid_request', message: 'Send { "apiKey": "<an API key holding keys:read>" } to sign in.' }],
    ['a key that is not a string', async () => await signIn(app, 12), 400, { error: 'invalid_request', message: 'Send { "apiKey": "<an API key holding keys:read>" } to sign in.' }],
    ['another property', async () => await app.inject({ method: 'POST', url: '/keys-console/session', payload: { apiKey, tenant: 'x' } }), 400, { error: 'invalid_request', message: 'Send { "apiKey": "<an API key holding keys:read>" } to sign in.' }],
    ['no body', async () => await app.inject({ method: 'POST', url: '/keys-console/session' }), 400, { error: 'invalid_request', message: 'Send { "apiKey": "<an API key holding keys:read>" } to sign in.' }],
    ['a form from another site', async () => await app.inject({ method: 'POST', url: '/keys-console/session', headers: { origin: 'https://evil.example' }, payload: { apiKey } }), 403, CSRF_REFUSED],
    ['a form post (not JSON)', async () => await app.inject({ method: 'POST', url: '/keys-console/session', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `apiKey=${apiKey}` }), 415, { error: 'unsupported_media_type', message: 'Unsupported Media Type' }]
  ]
  for (const [label, call, status, body] of cases) {
    const answer = await call()
    t.same([answer.statusCode, answer.json()], [status, body], label)
    t.equal(answer.headers['set-cookie'], undefined, `${label}: no cookie`)
  }
})

t.test('the cookie reads the management routes; a change needs the CSRF token, and acts as the key', async (t) => {
  const { app } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const listed = await app.inject({ url: '/api/v1/keys/list', headers: { cookie: admin.cookie } })
  t.same([listed.statusCode, names(listed)], [200, ['admin']])
  t.match(listed.headers['set-cookie'], COOKIE, 'renewed')
  t.equal(listed.headers['x-ratelimit-remaining'], '58', 'the key\'s own rate limit: sign-in and this request')

  const create = { method: 'POST' as const, url: '/api/v1/keys/create', payload: { name: 'ci', scopes: ['query'] } }
  const noToken = await app.inject({ ...create, headers: { cookie: admin.cookie } })
  t.same([noToken.statusCode, noToken.json()], [403, CSRF_REFUSED], 'no token: 403')
  const wrongToken = await app.inject({ ...create, headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf.replace(/^./, (c) => c === 'A' ? 'B' : 'A') } })
  t.same([wrongToken.statusCode, wrongToken.json()], [403, CSRF_REFUSED], 'a wrong token: 403')
  const other = await session(app, 'other-admin', ['*'])
  const anothersToken = await app.inject({ ...create, headers: { cookie: admin.cookie, 'x-keygate-csrf': other.csrf } })
  t.same([anothersToken.statusCode, anothersToken.json()], [403, CSRF_REFUSED], 'another session\'s token: 403')
  t.same((await app.keygate.listKeys()).map((k) => k.name), ['admin', 'other-admin'], 'nothing was created')

  const created = await app.inject({ ...create, headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf } })
  t.equal(created.statusCode, 200, 'with the token: done')
  t.match(created.headers['set-cookie'], COOKIE)
  const [event] = (await app.keygate.listAuditEvents({ action: 'key.created', target: 'ci' })).events
  t.same(event?.actor, { identifier: admin.identifier }, 'the audit log names the key that signed in')
})

t.test('a cookie changed, cut or sealed under another secret is 401', async (t) => {
  const { app } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const value = admin.cookie.slice('keygate_console='.length)
  const flipped = value.slice(0, 20) + (value[20] === 'A' ? 'B' : 'A') + value.slice(21)
  const elsewhere = await consoleApp(t, { secret: 'another-secret-another-secret-another-12' })
  const foreign = await session(elsewhere.app, 'admin', ['*'])
  for (const [label, cookie] of [
    ['one character changed', `keygate_console=${flipped}`],
    ['cut short', `keygate_console=${value.slice(0, 40)}`],
    ['not ours at all', 'keygate_console=v1.AAAA'],
    ['another version', `keygate_console=v2.${value.slice(3)}`],
    ['sealed under another secret', foreign.cookie]
  ] as const) {
    const answer = await app.inject({ url: '/api/v1/keys/list', headers: { cookie } })
    t.same([answer.statusCode, answer.json()], [401, UNAUTHORIZED], label)
  }
  const among = await app.inject({ url: '/api/v1/keys/list', headers: { cookie: `theme=dark; ${admin.cookie}; lang=en` } })
  t.equal(among.statusCode, 200, 'found among other cookies')
})

t.test('idle for 15 minutes the session is over; each use renews it; 12 hours is the most it lasts', async (t) => {
  const { app, clock } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const list = async (cookie: string) => await app.inject({ url: '/api/v1/keys/list', headers: { cookie } })
  clock.advance(14 * MINUTE)
  const at14 = await list(admin.cookie)
  t.equal(at14.statusCode, 200, '14 minutes idle: fine')
  clock.advance(14 * MINUTE)
  t.equal((await list(admin.cookie)).statusCode, 401, 'the first cookie, 28 minutes after its last use: refused')
  const at28 = await list(cookieOf(at14))
  t.equal(at28.statusCode, 200, 'the renewed one, 14 minutes after its use: fine')
  clock.advance(16 * MINUTE)
  t.same((await list(cookieOf(at28))).json(), UNAUTHORIZED, '16 minutes idle: refused')

  const busy = await session(app, 'busy', ['*'])
  let cookie = busy.cookie
  let elapsed = 0
  for (; elapsed + 14 * MINUTE <= 12 * 60 * MINUTE; elapsed += 14 * MINUTE) {
    clock.advance(14 * MINUTE)
    const answer = await list(cookie)
    if (answer.statusCode !== 200) break
    cookie = cookieOf(answer)
  }
  t.equal(elapsed, 714 * MINUTE, 'used every 14 minutes, it lasts until 11 h 54 min')
  clock.advance(14 * MINUTE)
  t.equal((await list(cookie)).statusCode, 401, 'and not past 12 hours')
})

t.test('a key revoked, expired or rotated away ends its session at the next request', async (t) => {
  const { app, clock } = await consoleApp(t)
  const revoked = await session(app, 'revoked', ['keys:read'])
  const rotated = await session(app, 'rotated', ['keys:read'])
  const expiring = await app.keygate.createKey({ name: 'expiring', scopes: ['keys:read'], expiresAt: new Date(clock.now() + 10 * MINUTE).toISOString() })
  const expiringCookie = cookieOf(await signIn(app, expiring.apiKey))
  await app.keygate.deleteKey('revoked')
  await app.keygate.rotateKey('rotated', { gracePeriodSeconds: 0 })
  for (const [label, cookie] of [['revoked', revoked.cookie], ['rotated away', rotated.cookie]] as const) {
    t.same((await app.inject({ url: '/api/v1/keys/list', headers: { cookie } })).json(), UNAUTHORIZED, label)
    t.same((await app.inject({ url: '/keys-console/session', headers: { cookie } })).json(), UNAUTHORIZED, `${label}: the page is told too`)
  }
  t.equal((await app.inject({ url: '/api/v1/keys/list', headers: { cookie: expiringCookie } })).statusCode, 200)
  clock.advance(11 * MINUTE)
  t.same((await app.inject({ url: '/api/v1/keys/list', headers: { cookie: expiringCookie } })).json(), UNAUTHORIZED, 'expired')
})

t.test('the cookie opens the management routes only, never the host\'s own', async (t) => {
  const { app } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const host = await app.inject({ url: '/anything', headers: { cookie: admin.cookie } })
  t.same([host.statusCode, host.json()], [401, UNAUTHORIZED])
  t.equal(host.headers['set-cookie'], undefined)
  const withKey = await app.inject({ url: '/anything', headers: { authorization: `Bearer ${admin.apiKey}` } })
  t.equal(withKey.statusCode, 200, 'the key itself does, as always')
})

t.test('an Authorization header wins over the cookie', async (t) => {
  const { app } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const reader = await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })
  const asReader = await app.inject({
    method: 'POST',
    url: '/api/v1/keys/create',
    headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf, authorization: `Bearer ${reader.apiKey}` },
    payload: { name: 'x', scopes: ['query'] }
  })
  t.same([asReader.statusCode, asReader.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:write' }], 'the header\'s key acts, not the cookie\'s')
  const badHeader = await app.inject({ url: '/api/v1/keys/list', headers: { cookie: admin.cookie, authorization: 'Bearer nonsense' } })
  t.same([badHeader.statusCode, badHeader.json()], [401, UNAUTHORIZED], 'a bad header is not rescued by the cookie')
  t.equal(badHeader.headers['set-cookie'], undefined)
  const noCsrfNeeded = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { cookie: admin.cookie, authorization: `Bearer ${admin.apiKey}` }, payload: { name: 'y', scopes: ['query'] } })
  t.equal(noCsrfNeeded.statusCode, 200, 'a request with a key needs no CSRF token: no browser sends one by itself')
})

t.test('sign-out needs the token, clears the cookie, and the old cookie is refused afterwards', async (t) => {
  const { app } = await consoleApp(t)
  const admin = await session(app, 'admin', ['*'])
  const noToken = await app.inject({ method: 'DELETE', url: '/keys-console/session', headers: { cookie: admin.cookie } })
  t.same([noToken.statusCode, noToken.json()], [403, CSRF_REFUSED])
  t.equal((await app.inject({ url: '/api/v1/keys/list', headers: { cookie: admin.cookie } })).statusCode, 200, 'still signed in')
  const out = await app.inject({ method: 'DELETE', url: '/keys-console/session', headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf } })
  t.same([out.statusCode, out.body], [204, ''])
  t.equal(out.headers['set-cookie'], 'keygate_console=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict')
  t.same((await app.inject({ url: '/api/v1/keys/list', headers: { cookie: admin.cookie } })).json(), UNAUTHORIZED, 'a copy of the old cookie: refused')
  t.same((await app.inject({ url: '/keys-console/session', headers: { cookie: admin.cookie } })).json(), UNAUTHORIZED)
  const nobody = await app.inject({ method: 'DELETE', url: '/keys-console/session' })
  t.same([nobody.statusCode, nobody.headers['set-cookie']], [204, 'keygate_console=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict'], 'signing out with no session just clears')
})

t.test('signed in, a key grants no more than it holds: the same 403 as with the header', async (t) => {
  const { app } = await consoleApp(t)
  const writer = await session(app, 'writer', ['keys:read', 'keys:write', 'query'])
  const payload = { name: 'wider', scopes: ['*'] }
  const viaCookie = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { cookie: writer.cookie, 'x-keygate-csrf': writer.csrf }, payload })
  const viaHeader = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: `Bearer ${writer.apiKey}` }, payload })
  t.same([viaCookie.statusCode, viaCookie.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: *' }])
  t.same([viaHeader.statusCode, viaHeader.json()], [viaCookie.statusCode, viaCookie.json()], 'exactly as on the route with the key')
  const bootstrap = await app.keygate.createKey({ name: 'root' })
  const deleteRoot = await app.inject({ method: 'DELETE', url: '/api/v1/keys/root/delete', headers: { cookie: writer.cookie, 'x-keygate-csrf': writer.csrf } })
  t.same([deleteRoot.statusCode, deleteRoot.json().error], [403, 'insufficient_scope'], 'nor removes a key holding more')
  t.ok(bootstrap.apiKey)
  const audit = await app.inject({ url: '/api/v1/keys/audit', headers: { cookie: writer.cookie } })
  t.same([audit.statusCode, audit.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: audit:read' }], 'the key\'s scopes, for the audit log too')
})

t.test('over TLS the cookie is Secure (here behind a proxy that says so)', async (t) => {
  const { app } = await consoleApp(t, {}, { trustProxy: true })
  const { apiKey } = await app.keygate.createKey({ name: 'admin' })
  const answer = await app.inject({ method: 'POST', url: '/keys-console/session', headers: { 'x-forwarded-proto': 'https' }, payload: { apiKey } })
  t.match(answer.headers['set-cookie'], /^keygate_console=v1\.[A-Za-z0-9_-]+; Path=\/; Max-Age=900; HttpOnly; SameSite=Strict; Secure$/)
  const cookie = String(answer.headers['set-cookie']).split(';', 1)[0] as string
  const renewed = await app.inject({ url: '/api/v1/keys/list', headers: { cookie, 'x-forwarded-proto': 'https' } })
  t.match(renewed.headers['set-cookie'], /; Secure$/, 'renewed Secure too')
  const out = await app.inject({ method: 'DELETE', url: '/keys-console/session', headers: { cookie, 'x-forwarded-proto': 'https', 'x-keygate-csrf': answer.json().csrfToken } })
  t.equal(out.headers['set-cookie'], 'keygate_console=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure')
})

t.test('the cookie\'s Path covers the console and the management routes, no more than they share', async (t) => {
  const { app } = await consoleApp(t, { console: { path: '/api/keys-console' }, routePrefix: '/api/v1/keys' })
  const { apiKey } = await app.keygate.createKey({ name: 'admin' })
  const answer = await app.inject({ method: 'POST', url: '/api/keys-console/session', payload: { apiKey } })
  t.match(answer.headers['set-cookie'], /; Path=\/api; /)
})

t.test('stateless: a session made on one instance works on another that shares the secret, Redis or not', async (t) => {
  const shared = await database(t)
  const withRedis = REDIS_URL !== undefined
  // Without Redis an instance hears of no other's deletes and trusts its cache for cacheTtl: none here.
  const a = await instance(t, shared, { console: true, withRedis, ...(withRedis ? {} : { cacheTtl: 0 }) })
  const b = await instance(t, shared, { console: true, withRedis, ...(withRedis ? {} : { cacheTtl: 0 }) })
  const { apiKey, identifier } = await a.app.keygate.createKey({ name: 'admin' })
  const signedIn = await a.app.inject({ method: 'POST', url: '/keys-console/session', payload: { apiKey } })
  const cookie = cookieOf(signedIn)
  const csrf = signedIn.json().csrfToken
  const onB = await b.app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { cookie, 'x-keygate-csrf': csrf }, payload: { name: 'made-on-b', scopes: ['query'] } })
  t.equal(onB.statusCode, 200, 'instance b opens the cookie instance a made, and takes its token')
  const told = withRedis ? heard(b.app, identifier.split('.')[1] as string) : undefined
  await a.app.keygate.deleteKey('admin')
  await told
  t.same((await b.app.inject({ url: '/api/v1/keys/list', headers: { cookie } })).json(), UNAUTHORIZED, 'and refuses it once the key is revoked')
})

t.test('with hook: false the management routes still take the cookie (they keep their own guard)', async (t) => {
  const { app } = await consoleApp(t, { hook: false })
  const admin = await session(app, 'admin', ['*'])
  t.same(names(await app.inject({ url: '/api/v1/keys/list', headers: { cookie: admin.cookie } })), ['admin'])
  const noToken = await app.inject({ method: 'DELETE', url: '/api/v1/keys/admin/delete', headers: { cookie: admin.cookie } })
  t.same([noToken.statusCode, noToken.json()], [403, CSRF_REFUSED])
})

t.test('no key text in the logs, at level trace, through sign-in, use and sign-out', async (t) => {
  const logs = captureLogs()
  const { app } = await consoleApp(t, {}, { logger: logs.logger })
  const admin = await session(app, 'admin', ['*'])
  const created = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf }, payload: { name: 'ci', scopes: ['query'] } })
  await app.inject({ url: '/keys-console/session', headers: { cookie: admin.cookie } })
  await app.inject({ method: 'DELETE', url: '/keys-console/session', headers: { cookie: admin.cookie, 'x-keygate-csrf': admin.csrf } })
  const text = logs.text()
  t.ok(text.includes('/keys-console/session'), 'the requests were logged')
  for (const secret of [admin.apiKey, created.json().apiKey, admin.cookie.slice('keygate_console='.length), admin.csrf]) {
    t.notOk(text.includes(secret), 'no key, cookie or token in any line')
  }
})
