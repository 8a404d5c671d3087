import Fastify, { type FastifyServerOptions } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import keygate from '../../lib/index.js'
import { generateKey } from '../../lib/keys/key-text.js'
import { FAST_ARGON2, testClock } from '../helpers/app.js'
import { DATABASE_URL, uniqueSchema } from '../helpers/database.js'
import { unknownKey } from '../helpers/keys.js'
import { captureLogs } from '../helpers/log-capture.js'
import { relay, silentServer } from '../helpers/relay.js'

const UNAVAILABLE = { error: 'service_unavailable', message: 'The API key store is unavailable. Try again shortly.' }
// Nothing listens on port 1 of the loopback: connections are refused at once.
const DEAD = 'postgres://postgres@127.0.0.1:1/keygate'

/**
 * An app whose PostgreSQL is reached through a relay the test can cut or stall, on a schema of
 * its own that is dropped afterwards (straight, not through the relay).
 */
async function behindRelay (t: Test, fastifyOptions: FastifyServerOptions = {}) {
  const proxy = await relay(new URL(DATABASE_URL!))
  const through = new URL(DATABASE_URL!)
  through.hostname = '127.0.0.1'
  through.port = String(proxy.port)
  const app = Fastify(fastifyOptions)
  const schema = uniqueSchema()
  t.teardown(async () => {
    await app.close()
    await proxy.close()
    const admin = new pg.Client({ connectionString: DATABASE_URL })
    await admin.connect()
    await admin.query(`drop schema if exists "${schema}" cascade`)
    await admin.end()
  })
  return { app, proxy, through, schema }
}

t.test('a database that refuses connections: 503 on every path, no stack, no hang, no key in the log', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: { connectionString: DEAD }, migrate: false, argon2: FAST_ARGON2 })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const key = generateKey('metlo').text

  const auth = await app.inject({ url: '/data', headers: { authorization: key } })
  t.equal(auth.statusCode, 503)
  t.same(auth.json(), UNAVAILABLE)

  const refused = await app.inject({ url: '/data', headers: { authorization: 'metlo_garbage' } })
  t.equal(refused.statusCode, 401, 'a malformed key is refused before any I/O, database or not')

  await t.rejects(app.keygate.createKey({ name: 'k' }), { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(app.keygate.listKeys(), { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE' })
  await t.rejects(app.keygate.deleteKey('k'), { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE' })
  t.equal(logs.text().includes(key), false, 'the key text is not logged')
  t.equal(logs.text().includes(key.slice(6)), false, 'nor its body')
  t.match(logs.text(), /The API key store is unavailable/)
})

t.test('migrating against a database that is down fails ready() with the coded error, and does not hang', async (t) => {
  const app = Fastify()
  // Not awaited: awaiting register would load the plugin and throw here rather than in ready().
  void app.register(keygate, { db: { connectionString: DEAD }, argon2: FAST_ARGON2 })
  await t.rejects(async () => await app.ready(), { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE' })
})

t.test('database down: cached keys serve for staleIfError past freshness, then 503; the plugin recovers', { skip: DATABASE_URL === undefined ? 'needs DATABASE_URL (a PostgreSQL server to cut off)' : false }, async (t) => {
  const clock = testClock()
  const { app, proxy, through, schema } = await behindRelay(t)
  await app.register(keygate, {
    db: { connectionString: through.href, pool: { connectionTimeoutMillis: 1000 } },
    schema,
    argon2: FAST_ARGON2,
    now: clock.now
  })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'survivor' })
  const get = async (key: string) => await app.inject({ url: '/data', headers: { authorization: key } })
  t.equal((await get(apiKey)).statusCode, 200)

  await proxy.cut()
  t.equal((await get(apiKey)).statusCode, 200, 'fresh in the cache: no database needed')
  clock.advance(5_000 + 29_999)
  t.equal((await get(apiKey)).statusCode, 200, 'stale, but within staleIfError (30 s past freshness)')
  const unknown = await get(generateKey('metlo').text)
  t.equal(unknown.statusCode, 503, 'a key never seen cannot be checked')
  t.same(unknown.json(), UNAVAILABLE)
  clock.advance(1)
  const down = await get(apiKey)
  t.equal(down.statusCode, 503, 'past staleIfError: 503')
  t.same(down.json(), UNAVAILABLE)

  await proxy.restore()
  const up = await get(apiKey)
  t.equal(up.statusCode, 200, 'served again once the database is back')
  t.same(up.json(), { ok: true })
})

// A database that hangs fails nothing by itself: only the pool's timeouts end the wait. Small ones,
// so these tests are quick; each test's own timeout is the bound that says "does not hang".
const SILENT_POOL = { connectionTimeoutMillis: 200, query_timeout: 200 }
const HANG_BOUND = { timeout: 30_000 }

t.test('a database that accepts connections and never answers: migrating fails ready() with the coded 503 once the connection timeout passes', HANG_BOUND, async (t) => {
  const silent = await silentServer()
  t.teardown(silent.close)
  const app = Fastify()
  t.teardown(async () => await app.close())
  // Not awaited: awaiting register would load the plugin and throw here rather than in ready().
  void app.register(keygate, { db: { connectionString: silent.url, pool: SILENT_POOL }, argon2: FAST_ARGON2 })
  const error = await app.ready().then(() => undefined, (error: Error) => error)
  t.match(error, { code: 'FST_KEYGATE_SERVICE_UNAVAILABLE', statusCode: 503, message: UNAVAILABLE.message })
  t.equal((error?.cause as Error | undefined)?.message, 'Connection terminated due to connection timeout', 'the pool stopped waiting for the handshake')
  t.ok(silent.accepted() >= 1, 'the database was reached: it accepted a connection')
  await app.close()
  await silent.allClosed()
  t.pass('the app closed, and closed every connection it had opened')
})

t.test('a database that accepts connections and never answers, migrate: false: the app starts, a key gets 503 once the connection timeout passes, and the app still closes', HANG_BOUND, async (t) => {
  const silent = await silentServer()
  t.teardown(silent.close)
  const logs = captureLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(async () => await app.close())
  await app.register(keygate, { db: { connectionString: silent.url, pool: SILENT_POOL }, migrate: false, argon2: FAST_ARGON2 })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  t.equal(silent.accepted(), 0, 'without migrations nothing connects at start-up')

  // Each key must be read: none can be answered from a cache.
  for (const attempt of ['first request', 'second request']) {
    const res = await app.inject({ url: '/data', headers: { authorization: generateKey('metlo').text } })
    t.equal(res.statusCode, 503, attempt)
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8', attempt)
    t.same(res.json(), UNAVAILABLE, attempt)
  }
  t.ok(silent.accepted() >= 1, 'the database was reached')
  t.match(logs.text(), /Connection terminated due to connection timeout/, 'the pool\'s connection timeout ended the wait')
  await app.close()
  await silent.allClosed()
  t.pass('the app closed, and closed every connection it had opened')
})

t.test('a database that stops answering on an open connection: query_timeout turns the wait into 503, and the app still closes', {
  ...HANG_BOUND,
  skip: DATABASE_URL === undefined ? 'needs DATABASE_URL (a PostgreSQL server to stall)' : false
}, async (t) => {
  const logs = captureLogs()
  const { app, proxy, through, schema } = await behindRelay(t, { logger: logs.logger })
  // Long enough for migrations on a loaded machine, short enough to end the wait once it stalls.
  await app.register(keygate, {
    db: { connectionString: through.href, pool: { connectionTimeoutMillis: 5_000, query_timeout: 3_000 } },
    schema,
    argon2: FAST_ARGON2
  })
  app.get('/data', async () => ({ ok: true }))
  await app.ready()
  const { apiKey } = await app.keygate.createKey({ name: 'k' })
  t.equal((await app.inject({ url: '/data', headers: { authorization: apiKey } })).statusCode, 200, 'served while the database answers')

  // The pool keeps the connections it has; the next read goes out on one and is never answered.
  proxy.stall()
  const res = await app.inject({ url: '/data', headers: { authorization: unknownKey('metlo', apiKey) } })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.same(res.json(), UNAVAILABLE)
  t.match(logs.text(), /Query read timeout/, 'query_timeout ended the wait')
  await app.close()
  t.pass('the app closed with the database still silent')
})
