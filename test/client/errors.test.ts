import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import t from 'tap'
import {
  BadRequestError,
  ForbiddenError,
  KeygateClient,
  KeygateConfigError,
  KeygateConnectionError,
  KeygateError,
  NotFoundError,
  RateLimitedError,
  ServerError,
  ServiceUnavailableError,
  UnauthorizedError
} from '../../lib/client/index.js'
import { unknownKey } from '../helpers/keys.js'
import { serveApp } from '../helpers/served-app.js'

const MINUTE_END = new Date('2026-03-03T12:01:00.000Z')

/** What an error is made of, every way it can be shown. */
function renderings (error: unknown): string[] {
  const e = error as Error
  return [
    e.message,
    String(e.stack),
    String(e),
    inspect(e, { depth: Infinity, showHidden: true }),
    JSON.stringify(e),
    inspect(e.cause, { depth: Infinity, showHidden: true }),
    JSON.stringify(Object.getOwnPropertyNames(e).map((name) => [name, (e as unknown as Record<string, unknown>)[name]]), (_key, value) => typeof value === 'bigint' ? String(value) : value)
  ]
}

async function caught (promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

t.test('each status of the contract is its own error class, with exact fields', async (t) => {
  const { app, baseUrl } = await serveApp(t)
  const admin = await app.keygate.createKey({ name: 'admin', rateLimit: { perMinute: 20, perHour: 100 } })
  const reader = await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })
  const client = new KeygateClient({ baseUrl, apiKey: admin.apiKey })

  const unauthorized = await caught(new KeygateClient({ baseUrl, apiKey: unknownKey('metlo', admin.apiKey) }).listKeys())
  t.ok(unauthorized instanceof UnauthorizedError)
  t.ok(unauthorized instanceof KeygateError)
  t.match(unauthorized, {
    name: 'UnauthorizedError',
    status: 401,
    code: 'unauthorized',
    message: 'Client unauthorized',
    body: { error: 'unauthorized', message: 'Client unauthorized' },
    rateLimit: null
  })
  t.same((unauthorized as KeygateError).body, { error: 'unauthorized', message: 'Client unauthorized' })
  t.match(String(unauthorized.stack), /^UnauthorizedError: Client unauthorized\n/)

  const forbidden = await caught(new KeygateClient({ baseUrl, apiKey: reader.apiKey }).createKey({ name: 'more' }))
  t.ok(forbidden instanceof ForbiddenError)
  t.match(forbidden, { name: 'ForbiddenError', status: 403, code: 'insufficient_scope', message: 'API key lacks required permission: keys:write' })
  t.same((forbidden as KeygateError).rateLimit, { limit: 60, remaining: 59, reset: MINUTE_END }, 'a 403 counts, and says so')

  const notFound = await caught(client.deleteKey('my/key'))
  t.ok(notFound instanceof NotFoundError)
  t.same((notFound as KeygateError).body, { error: 'key_not_found', message: 'Did not find any matching keys for my/key' })
  t.match(notFound, { status: 404, code: 'key_not_found', message: 'Did not find any matching keys for my/key' })
  t.same((notFound as KeygateError).rateLimit, { limit: 20, remaining: 19, reset: MINUTE_END })

  const wrongPrefix = new KeygateClient({ baseUrl, apiKey: admin.apiKey, routePrefix: '/api/v1/keys/v2' })
  const noRoute = await caught(wrongPrefix.listKeys())
  t.ok(noRoute instanceof NotFoundError)
  t.same((noRoute as KeygateError).body, { error: 'not_found', message: 'Route GET /api/v1/keys/v2/list not found.' })

  const taken = await caught(client.createKey({ name: 'reader' }))
  t.ok(taken instanceof BadRequestError)
  t.match(taken, { status: 400, code: 'key_name_taken', message: 'Can not create key with name reader' })
  const invalid = await caught(client.usage('admin', { days: 0 }))
  t.ok(invalid instanceof BadRequestError)
  t.same((invalid as KeygateError).body, { error: 'invalid_request', message: 'days must be an integer from 1 to 366.' })
})

t.test('429: RateLimitedError with retryAfter; credits exhausted told apart', async (t) => {
  const { app, baseUrl } = await serveApp(t)
  const tight = await app.keygate.createKey({ name: 'tight', rateLimit: { perMinute: 2, perHour: 100 } })
  const client = new KeygateClient({ baseUrl, apiKey: tight.apiKey })
  await client.listKeys()
  t.same((await client.listKeys()).rateLimit, { limit: 2, remaining: 0, reset: MINUTE_END })
  const limited = await caught(client.listKeys())
  t.ok(limited instanceof RateLimitedError)
  t.match(limited, { name: 'RateLimitedError', status: 429, code: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retryAfter: 60, creditsExhausted: false })
  t.same((limited as RateLimitedError).body, { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 60 seconds.', retry_after: 60 })
  t.same((limited as RateLimitedError).rateLimit, { limit: 2, remaining: 0, reset: MINUTE_END })

  const once = await app.keygate.createKey({ name: 'once', credits: { remaining: 1 } })
  const onceClient = new KeygateClient({ baseUrl, apiKey: once.apiKey, retryOnRateLimit: true, sleep: async () => { t.fail('waiting does not bring credits back') } })
  await onceClient.listOnboardingKeys()
  const spent = await caught(onceClient.listOnboardingKeys())
  t.ok(spent instanceof RateLimitedError)
  t.match(spent, { status: 429, code: 'credits_exhausted', message: 'API key has no credits left.', retryAfter: null, creditsExhausted: true })
  t.same((spent as RateLimitedError).rateLimit, { limit: 60, remaining: 59, reset: MINUTE_END }, 'refused for credits: no window counted')

  const daily = await app.keygate.createKey({ name: 'daily', credits: { remaining: 0, refill: { amount: 10, interval: 'day' } } })
  const dailyClient = new KeygateClient({ baseUrl, apiKey: daily.apiKey, retryOnRateLimit: true, sleep: async () => { t.fail('12 hours is over maxRetryWaitSeconds') } })
  const empty = await caught(dailyClient.listKeys())
  t.match(empty, { status: 429, code: 'credits_exhausted', message: 'API key has no credits left. Credits refill in 43200 seconds.', retryAfter: 43200, creditsExhausted: true })
})

t.test('retryOnRateLimit: waits retryAfter seconds once, then sends again', async (t) => {
  const { app, baseUrl, clock } = await serveApp(t)
  const tight = await app.keygate.createKey({ name: 'tight', rateLimit: { perMinute: 1, perHour: 100 } })
  const waits: number[] = []
  // The wait lets the plugin's clock pass the window: no real time passes.
  const client = new KeygateClient({ baseUrl, apiKey: tight.apiKey, retryOnRateLimit: true, sleep: async (ms) => { waits.push(ms); clock.advance(ms) } })
  t.same((await client.listKeys()).rateLimit, { limit: 1, remaining: 0, reset: MINUTE_END })
  const retried = await client.listKeys()
  t.same(waits, [60_000])
  t.same(retried.rateLimit, { limit: 1, remaining: 0, reset: new Date('2026-03-03T12:02:00.000Z') })
  t.same(retried.data.map((key) => key.name), ['tight'])

  // Still refused after the wait: the second 429 is thrown, no third try.
  waits.length = 0
  const stuck = new KeygateClient({ baseUrl, apiKey: tight.apiKey, retryOnRateLimit: true, sleep: async (ms) => { waits.push(ms) } })
  const error = await caught(stuck.createKey({ name: 'x' }))
  t.match(error, { status: 429, code: 'rate_limit_exceeded', retryAfter: 60 })
  t.same(waits, [60_000])
  t.same((await app.keygate.listKeys()).map((key) => key.name), ['tight'], 'the refused create created nothing')

  // Off by default; and a wait over maxRetryWaitSeconds is not waited for.
  for (const options of [{}, { retryOnRateLimit: true, maxRetryWaitSeconds: 59 }]) {
    const client = new KeygateClient({ baseUrl, apiKey: tight.apiKey, ...options, sleep: async () => { t.fail('no wait') } })
    t.match(await caught(client.listKeys()), { status: 429, retryAfter: 60 })
  }
})

t.test('the key is in no error, no message, no stack, no cause, and not in the client', async (t) => {
  const { app, baseUrl } = await serveApp(t)
  const admin = await app.keygate.createKey({ name: 'admin', rateLimit: { perMinute: 1, perHour: 100 } })
  const key = admin.apiKey
  const secret = key.slice(14, 32)
  const reader = await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })
  const client = new KeygateClient({ baseUrl, apiKey: key })

  // A server (or a proxy before it) that repeats the Authorization header in its answers.
  const echo = createServer((request, response) => {
    const status = request.url?.includes('json') === true ? 400 : 502
    response.writeHead(status, { 'content-type': 'text/plain' })
    response.end(status === 400
      ? JSON.stringify({ error: 'echo', message: `you sent ${String(request.headers.authorization)}`, seen: request.headers.authorization })
      : `<html>bad gateway for ${String(request.headers.authorization)}</html>`)
  })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { echo.close() })
  const echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`

  // A port nobody listens on.
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))

  const errors: Array<[string, Error]> = [
    ['401', await caught(new KeygateClient({ baseUrl, apiKey: key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A') }).listKeys())],
    ['403', await caught(new KeygateClient({ baseUrl, apiKey: reader.apiKey }).deleteKey('admin'))],
    ['404', await caught(client.usage('gone'))],
    ['429', await caught(client.listKeys())],
    ['echoed json', await caught(new KeygateClient({ baseUrl: `${echoUrl}/json`, apiKey: key }).listKeys())],
    ['echoed html', await caught(new KeygateClient({ baseUrl: echoUrl, apiKey: key }).listKeys())],
    ['refused connection', await caught(new KeygateClient({ baseUrl: `http://127.0.0.1:${closedPort}`, apiKey: key }).listKeys())],
    ['bad key text', await caught((async () => new KeygateClient({ baseUrl, apiKey: `${key}\n` }))())]
  ]
  for (const [what, error] of errors) {
    for (const shown of renderings(error)) {
      t.notOk(shown.includes(secret), `${what}: the key's secret is not in ${shown.slice(0, 60)}`)
    }
  }
  const [, echoedJson] = errors[4] as [string, KeygateError]
  t.ok(echoedJson instanceof BadRequestError)
  t.same(echoedJson.body, { error: 'echo', message: 'you sent Bearer [redacted]', seen: 'Bearer [redacted]' })
  const [, echoedHtml] = errors[5] as [string, KeygateError]
  t.ok(echoedHtml instanceof ServerError)
  t.match(echoedHtml, { status: 502, code: 'bad_gateway', message: 'The server answered 502 Bad Gateway.' })
  const [, refused] = errors[6] as [string, Error]
  t.ok(refused instanceof KeygateConnectionError)
  t.equal(refused.message, `Could not reach http://127.0.0.1:${closedPort}: fetch failed`)
  t.match(refused.cause, { cause: { code: 'ECONNREFUSED' } }, 'the cause says why')
  const [, badText] = errors[7] as [string, Error]
  t.ok(badText instanceof KeygateConfigError)
  t.equal(badText.message, 'apiKey must be the key text: visible ASCII characters, no spaces.')

  for (const shown of [inspect(client, { depth: Infinity, showHidden: true }), JSON.stringify(client), String(client), Object.keys(client).join(), JSON.stringify(Object.getOwnPropertyDescriptors(client))]) {
    t.notOk(shown.includes(secret), `the client shows no key: ${shown}`)
  }
  t.equal(inspect(client), `KeygateClient { baseUrl: '${baseUrl}', routePrefix: '/api/v1/keys', keyIdentifier: '${admin.identifier}' }`)
  t.same(JSON.parse(JSON.stringify(client)), { baseUrl, routePrefix: '/api/v1/keys' })
  t.equal(client.keyIdentifier, admin.identifier)
})

t.test('5xx: ServerError for internal_error, ServiceUnavailableError for a store that is down', async (t) => {
  const failingSignIn = await serveApp(t, { authenticateManagement: async () => { throw new Error('the sign-in broke') } })
  const admin = await failingSignIn.app.keygate.createKey({ name: 'admin' })
  const internal = await caught(new KeygateClient({ baseUrl: failingSignIn.baseUrl, apiKey: admin.apiKey }).listKeys())
  t.ok(internal instanceof ServerError)
  t.notOk(internal instanceof ServiceUnavailableError)
  t.match(internal, { name: 'ServerError', status: 500, code: 'internal_error', message: 'Internal error.' })

  let consumed = 0
  const storeDown = await serveApp(t, {
    onStoreError: 'deny',
    rateLimitStore: { consume: async () => { consumed++; throw new Error('the store is down') } }
  })
  const other = await storeDown.app.keygate.createKey({ name: 'admin' })
  const unavailable = await caught(new KeygateClient({ baseUrl: storeDown.baseUrl, apiKey: other.apiKey, retryOnRateLimit: true }).listKeys())
  t.ok(unavailable instanceof ServiceUnavailableError)
  t.ok(unavailable instanceof ServerError)
  t.match(unavailable, { name: 'ServiceUnavailableError', status: 503, code: 'service_unavailable', message: 'The rate-limit store is unavailable. Try again shortly.', retryAfter: 1, rateLimit: null })
  t.equal(consumed, 1, 'retryOnRateLimit retries 429s only')
})
