import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { ApiKeyDenial, RateLimitStore } from '../../lib/index.js'
import { argon2idHasher } from '../../lib/keys/hasher.js'
import { buildApp, createKey, FAST_ARGON2, testClock } from '../helpers/app.js'
import { unknownKey, withBadChecksum, wrongSecret } from '../helpers/keys.js'

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const MINUTE_END = (start: number) => String(Math.floor((start - (start % 60_000) + 60_000) / 1000))

/** The headers an answer carries, without those of the transport. */
function headersOf (res: LightMyRequestResponse): Record<string, unknown> {
  const { date, connection, ...rest } = res.headers
  return rest
}

/** An app whose host routes record `request.apiKeyDenial` of every answer. */
async function recordingApp (t: Test, keygate: Record<string, unknown> = {}) {
  const clock = testClock()
  const denials: Array<ApiKeyDenial | null> = []
  const app = await buildApp(t, {
    keygate: { now: clock.now, ...keygate },
    routes: (app: FastifyInstance) => {
      app.addHook('onResponse', (request, _reply, done) => { denials.push(request.apiKeyDenial); done() })
      app.get('/data', async (request) => ({ denial: request.apiKeyDenial }))
      app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))
    }
  })
  const call = async (authorization?: string, method: 'GET' | 'POST' = 'GET', url = '/data') =>
    await app.inject({ method, url, headers: authorization === undefined ? {} : { authorization } })
  return { app, clock, denials, call, last: () => denials[denials.length - 1] }
}

/** 401 exactly as before: the contract's body and `WWW-Authenticate: Bearer`, nothing else. */
function unauthorized (t: Test, res: LightMyRequestResponse, label: string) {
  t.equal(res.statusCode, 401, label)
  t.same(res.json(), UNAUTHORIZED, label)
  t.same(headersOf(res), { 'www-authenticate': 'Bearer', 'content-type': 'application/json; charset=utf-8', 'content-length': '56' }, label)
}

t.test('every 401 says why on request.apiKeyDenial, and the client sees the same answer for all', async (t) => {
  const { app, clock, call, last } = await recordingApp(t)
  const key = await createKey(app, 'real')
  const other = await createKey(app, 'other')

  unauthorized(t, await call(), 'no header')
  t.equal(last(), 'missing')
  for (const [header, label] of [['Bearer', 'scheme only'], ['Basic dXNlcjpwYXNz', 'another scheme'], [withBadChecksum(key), 'bad checksum'], [`x${key}`, 'unknown prefix'], ['', 'empty header']]) {
    unauthorized(t, await call(header), label as string)
    t.equal(last(), 'malformed', label as string)
  }
  const unknown = unknownKey('metlo', key, other)
  unauthorized(t, await call(unknown), 'unknown key id')
  t.equal(last(), 'unknown')
  unauthorized(t, await call(unknown), 'unknown key id, remembered as missing')
  t.equal(last(), 'unknown', 'a remembered miss keeps its reason')

  unauthorized(t, await call(wrongSecret(key, 1)), 'wrong secret: argon2 says no')
  t.equal(last(), 'wrong_secret')
  unauthorized(t, await call(wrongSecret(key, 1)), 'the same wrong secret again, refused without argon2')
  t.equal(last(), 'wrong_secret', 'a cached refusal keeps its reason')

  // Five argon2 runs a minute per key id: the sixth distinct secret is not tried.
  for (let n = 1; n <= 5; n++) await call(wrongSecret(other, n))
  unauthorized(t, await call(wrongSecret(other, 6)), 'the key id\'s argon2 budget is spent')
  t.equal(last(), 'throttled')

  t.equal((await call(key)).statusCode, 200)
  t.equal(last(), null, 'admitted: no denial')
  await app.keygate.deleteKey('real')
  unauthorized(t, await call(key), 'deleted, refused at once')
  t.equal(last(), 'deleted')
  unauthorized(t, await call(key), 'deleted, remembered')
  t.equal(last(), 'deleted')
  // Long after this process's memory of the delete, authentication reads no deleted row: unknown.
  clock.advance(60_000)
  unauthorized(t, await call(key), 'deleted long ago')
  t.equal(last(), 'unknown')
})

t.test('expired keys and rotated texts past their sunset say expired', async (t) => {
  const { app, clock, call, last } = await recordingApp(t)
  const soon = new Date(clock.now() + 60_000).toISOString()
  const cached = (await app.keygate.createKey({ name: 'cached', expiresAt: soon })).apiKey
  const unused = (await app.keygate.createKey({ name: 'unused', expiresAt: soon })).apiKey
  const rotating = await createKey(app, 'rotating')
  t.equal((await call(cached)).statusCode, 200)
  t.equal((await call(rotating)).statusCode, 200)
  await app.keygate.rotateKey('rotating', { gracePeriodSeconds: 30 })
  const graced = await call(rotating)
  t.equal(graced.statusCode, 200, 'in its grace period')
  t.equal(graced.headers.sunset, new Date(clock.now() + 30_000).toUTCString())

  clock.advance(60_000)
  unauthorized(t, await call(cached), 'expired while cached: refused without a read')
  t.equal(last(), 'expired')
  unauthorized(t, await call(unused), 'expired, first seen now')
  t.equal(last(), 'expired')
  unauthorized(t, await call(unused), 'expired, remembered')
  t.equal(last(), 'expired')
  unauthorized(t, await call(rotating), 'rotated away, past its sunset')
  t.equal(last(), 'expired')
})

t.test('403 and 429 say why, with the same bodies and headers as before', async (t) => {
  const { app, clock, call, last } = await recordingApp(t)
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['query'] })).apiKey
  const res403 = await call(reader, 'POST', '/v1/connectors')
  t.equal(res403.statusCode, 403)
  t.same(res403.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: connector:write' })
  t.equal(res403.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="connector:write"')
  t.equal(last(), 'insufficient_scope')

  const limited = (await app.keygate.createKey({ name: 'limited', rateLimit: { perMinute: 1 } })).apiKey
  t.equal((await call(limited)).statusCode, 200)
  const res429 = await call(limited)
  t.equal(res429.statusCode, 429)
  t.same(res429.json(), { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retry_after: 60 })
  t.same(headersOf(res429), {
    'x-ratelimit-limit': '1',
    'x-ratelimit-remaining': '0',
    'x-ratelimit-reset': MINUTE_END(clock.now()),
    'retry-after': '60',
    'content-type': 'application/json; charset=utf-8',
    'content-length': '105'
  })
  t.equal(last(), 'rate_limited')

  const prepaid = (await app.keygate.createKey({ name: 'prepaid', plan: 'enterprise', rateLimit: { perMinute: 100 }, credits: { remaining: 1 } })).apiKey
  t.equal((await call(prepaid)).statusCode, 200)
  const out = await call(prepaid)
  t.equal(out.statusCode, 429)
  t.same(out.json(), { error: 'credits_exhausted', message: 'API key has no credits left.' })
  t.equal(out.headers['retry-after'], undefined)
  t.equal(last(), 'credits_exhausted')
})

t.test('503s say store_unavailable or hasher_busy, with the same bodies as before', async (t) => {
  const down: RateLimitStore = { consume: () => { throw new Error('the store is down (test)') } }
  const storeDown = await recordingApp(t, { rateLimitStore: down, onStoreError: 'deny' })
  const key = await createKey(storeDown.app, 'k')
  const res = await storeDown.call(key)
  t.equal(res.statusCode, 503)
  t.same(res.json(), { error: 'service_unavailable', message: 'The rate-limit store is unavailable. Try again shortly.' })
  t.equal(storeDown.last(), 'store_unavailable')

  // One argon2 at a time and no queue: a second first use while one runs is turned away.
  const inner = argon2idHasher(FAST_ARGON2)
  let release = (): void => {}
  let started = (): void => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  const gated = {
    hash: inner.hash,
    verify: async (hash: string, text: string) => {
      started()
      await new Promise<void>((resolve) => { release = resolve })
      return await inner.verify(hash, text)
    }
  }
  const busy = await recordingApp(t, { hasher: gated, hashConcurrency: 1, hashQueue: 0 })
  const first = await createKey(busy.app, 'first')
  const second = await createKey(busy.app, 'second')
  const pending = busy.call(first)
  await running
  const turnedAway = await busy.call(second)
  t.equal(turnedAway.statusCode, 503)
  t.same(turnedAway.json(), { error: 'service_unavailable', message: 'Too many keys are being verified at once. Try again shortly.' })
  t.equal(turnedAway.headers['retry-after'], '1')
  t.equal(busy.last(), 'hasher_busy')
  release()
  t.equal((await pending).statusCode, 200)
})
