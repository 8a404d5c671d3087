import Fastify, { type FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import keygate from '../../lib/index.js'
import { buildAppWithDatabase, countingWrites, FAST_ARGON2, testClock } from '../helpers/app.js'
import { DATABASE_URL, openTestDatabase, usingPostgres } from '../helpers/database.js'
import { captureLogs } from '../helpers/log-capture.js'

type Test = Parameters<typeof buildAppWithDatabase>[0]

// Limits high enough that the load below is admitted in full.
const ROOMY = { perMinute: 100_000, perHour: 1_000_000 }
const host = (app: FastifyInstance) => { app.get('/thing', async () => ({ ok: true })) }

async function setup (t: Test, keygateOptions: Record<string, unknown> = {}, fastify = {}) {
  const clock = testClock()
  const database = await openTestDatabase()
  const counting = countingWrites(database.db)
  const app = Fastify(fastify)
  t.teardown(async () => {
    await app.close()
    await database.close()
  })
  await app.register(keygate, { db: counting.db, schema: database.schema, argon2: FAST_ARGON2, now: clock.now, ...keygateOptions })
  host(app)
  await app.ready()
  const admin = (await app.keygate.createKey({ name: 'admin', rateLimit: ROOMY })).apiKey
  const get = async (key: string, url = '/thing') => await app.inject({ url, headers: { authorization: `Bearer ${key}` } })
  return { app, database, counting, clock, admin, get }
}

/** Each name's listed `requests` and `lastUsed`, read with the programmatic API (no request counted). */
async function listed (app: FastifyInstance) {
  return Object.fromEntries((await app.keygate.listKeys()).map((k) => [k.name, { requests: k.requests, lastUsed: k.lastUsed }]))
}

t.test('counts per key and per UTC day, over midnight', async (t) => {
  const { app, clock, admin, get } = await setup(t)
  const a = (await app.keygate.createKey({ name: 'a' })).apiKey
  const b = (await app.keygate.createKey({ name: 'b' })).apiKey
  for (let i = 0; i < 3; i++) t.equal((await get(a)).statusCode, 200)
  for (let i = 0; i < 2; i++) t.equal((await get(b)).statusCode, 200)
  // 2026-03-03 12:00 UTC plus 12 hours: the next UTC day.
  clock.advance(12 * 3_600_000)
  t.equal((await get(a)).statusCode, 200)
  clock.advance(90_000)
  t.equal((await get(a)).statusCode, 200)
  t.same(await listed(app), { admin: { requests: 0, lastUsed: null }, a: { requests: 0, lastUsed: null }, b: { requests: 0, lastUsed: null } },
    'nothing is written before a flush')

  await app.keygate.flushUsage()
  t.same(await listed(app), {
    admin: { requests: 0, lastUsed: null },
    a: { requests: 5, lastUsed: '2026-03-04T00:01:30.000Z' },
    b: { requests: 2, lastUsed: '2026-03-03T12:00:00.000Z' }
  })
  const res = await get(admin, '/api/v1/keys/a/usage?days=3')
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    name: 'a',
    identifier: (await app.keygate.listKeys())[1]?.identifier,
    days: [{ date: '2026-03-02', requests: 0 }, { date: '2026-03-03', requests: 3 }, { date: '2026-03-04', requests: 2 }]
  })
  t.same((await app.keygate.usage('b', { days: 2 })).days, [{ date: '2026-03-03', requests: 2 }, { date: '2026-03-04', requests: 0 }])

  // The next flush adds to the rows the first one made.
  t.equal((await get(b)).statusCode, 200)
  await app.keygate.flushUsage()
  t.same((await app.keygate.usage('b', { days: 2 })).days, [{ date: '2026-03-03', requests: 2 }, { date: '2026-03-04', requests: 1 }])
  const all = await listed(app)
  t.same(all.b, { requests: 3, lastUsed: '2026-03-04T00:01:30.000Z' })
  t.same(all.admin, { requests: 1, lastUsed: '2026-03-04T00:01:30.000Z' }, 'management requests are requests too')
})

t.test('2,000 requests over 20 keys: no write while serving, one transaction of two statements at the flush', async (t) => {
  const { app, counting, get } = await setup(t)
  const keys: string[] = []
  for (let i = 0; i < 20; i++) keys.push((await app.keygate.createKey({ name: `key-${i}`, rateLimit: ROOMY })).apiKey)
  await app.keygate.flushUsage()
  counting.reset()

  for (let round = 0; round < 100; round++) {
    const answers = await Promise.all(keys.map(async (key) => (await get(key)).statusCode))
    t.equal(answers.every((status) => status === 200), true, `round ${round}`)
  }
  t.same(counting.writes(), [], 'no database write during the requests')
  t.equal(counting.transactions(), 0)

  await app.keygate.flushUsage()
  t.same(counting.writes(), [{ kind: 'insert', table: 'keygate_key_usage' }, { kind: 'update', table: 'keygate_api_keys' }])
  t.equal(counting.transactions(), 1)

  const all = await listed(app)
  for (let i = 0; i < 20; i++) t.same(all[`key-${i}`], { requests: 100, lastUsed: '2026-03-03T12:00:00.000Z' }, `key-${i}`)
  t.same((await app.keygate.usage('key-7', { days: 1 })).days, [{ date: '2026-03-03', requests: 100 }])

  counting.reset()
  await app.keygate.flushUsage()
  t.same(counting.writes(), [], 'nothing counted, nothing written')
  t.equal(counting.transactions(), 0)
})

t.test('a failed flush loses nothing: its counts wait for the next, and the log hears of it once a minute', async (t) => {
  const logs = captureLogs()
  const { app, counting, clock, get } = await setup(t, {}, { logger: logs.logger })
  const a = (await app.keygate.createKey({ name: 'a' })).apiKey
  for (let i = 0; i < 4; i++) t.equal((await get(a)).statusCode, 200)

  counting.failing(true)
  await app.keygate.flushUsage()
  t.equal((await get(a)).statusCode, 200, 'requests are served while usage cannot be written')
  clock.advance(1000)
  await app.keygate.flushUsage()
  counting.failing(false)
  const warnings = logs.text().split('\n').filter((line) => line.includes('writing key usage failed'))
  t.equal(warnings.length, 1, 'two failures within a minute, one warning')
  t.match(warnings[0], /"message":"the database is down \(test\)"/)
  t.same((await listed(app)).a, { requests: 0, lastUsed: null }, 'nothing was written')

  t.equal((await get(a)).statusCode, 200)
  await app.keygate.flushUsage()
  t.same((await listed(app)).a, { requests: 6, lastUsed: '2026-03-03T12:00:01.000Z' }, '4 before, 1 between and 1 after the failures')
  t.same((await app.keygate.usage('a', { days: 1 })).days, [{ date: '2026-03-03', requests: 6 }])
})

t.test('a clean close writes what was counted', async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const clock = testClock()
  const app = Fastify()
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, now: clock.now })
  host(app)
  await app.ready()
  const created = await app.keygate.createKey({ name: 'a' })
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/thing', headers: { authorization: `Bearer ${created.apiKey}` } })).statusCode, 200)
  await app.close()

  const rows = await database.db.withSchema(database.schema).selectFrom('keygate_key_usage').select(['lineage', sql<string>`to_char(day, 'YYYY-MM-DD')`.as('day'), 'requests']).execute()
  t.same(rows.map((row) => ({ ...row, requests: Number(row.requests) })), [{ lineage: created.identifier.split('.')[1], day: '2026-03-03', requests: 3 }])
})

t.test('a clean close writes what was counted before the pool it owns closes', { skip: DATABASE_URL === undefined && 'needs DATABASE_URL (a pool the plugin owns)' }, async (t) => {
  const database = await openTestDatabase()
  t.teardown(database.close)
  const clock = testClock()
  const app = Fastify()
  await app.register(keygate, { db: { connectionString: DATABASE_URL as string }, schema: database.schema, argon2: FAST_ARGON2, now: clock.now })
  host(app)
  await app.ready()
  const created = await app.keygate.createKey({ name: 'a' })
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/thing', headers: { authorization: `Bearer ${created.apiKey}` } })).statusCode, 200)
  await app.close()
  const row = await database.db.withSchema(database.schema).selectFrom('keygate_api_keys').select(['requests', 'last_used_at']).executeTakeFirstOrThrow()
  t.same({ requests: Number(row.requests), lastUsed: row.last_used_at?.toISOString() }, { requests: 3, lastUsed: '2026-03-03T12:00:00.000Z' })
})

t.test('two instances on one database add up', async (t) => {
  const database = await openTestDatabase()
  const clock = testClock()
  const apps = [Fastify(), Fastify()]
  t.teardown(async () => {
    for (const app of apps) await app.close()
    await database.close()
  })
  for (const app of apps) {
    await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, now: clock.now })
    host(app)
    await app.ready()
  }
  const [one, two] = apps as unknown as [FastifyInstance, FastifyInstance]
  const key = (await one.keygate.createKey({ name: 'shared' })).apiKey
  const get = async (app: FastifyInstance) => (await app.inject({ url: '/thing', headers: { authorization: `Bearer ${key}` } })).statusCode
  for (let i = 0; i < 3; i++) t.equal(await get(one), 200)
  for (let i = 0; i < 4; i++) t.equal(await get(two), 200)
  await Promise.all([one.keygate.flushUsage(), two.keygate.flushUsage()])
  t.same((await one.keygate.usage('shared', { days: 1 })).days, [{ date: '2026-03-03', requests: 7 }])
  t.same((await two.keygate.listKeys()).map((k) => k.requests), [7])
})

t.test('rotation keeps the usage: it goes by lineage', async (t) => {
  const { app, clock, get } = await setup(t)
  const old = (await app.keygate.createKey({ name: 'k' })).apiKey
  for (let i = 0; i < 3; i++) t.equal((await get(old)).statusCode, 200)
  await app.keygate.flushUsage()
  clock.advance(1000)
  const rotated = await app.keygate.rotateKey('k', { gracePeriodSeconds: 60 })
  t.same({ requests: rotated.requests, lastUsed: rotated.lastUsed }, { requests: 3, lastUsed: '2026-03-03T12:00:00.000Z' }, 'the new text starts with the totals')
  clock.advance(1000)
  for (let i = 0; i < 2; i++) t.equal((await get(rotated.apiKey)).statusCode, 200)
  const graced = await get(old)
  t.equal(graced.statusCode, 200, 'the old text in its grace period')
  t.equal(graced.headers.deprecation, '@1772539201')
  await app.keygate.flushUsage()
  t.same((await listed(app)).k, { requests: 6, lastUsed: '2026-03-03T12:00:02.000Z' })
  t.same((await app.keygate.usage('k', { days: 1 })).days, [{ date: '2026-03-03', requests: 6 }])
})

t.test('refused requests are not counted: 401, 403 and 429', async (t) => {
  const { app, get } = await setup(t)
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })).apiKey
  const limited = (await app.keygate.createKey({ name: 'limited', rateLimit: { perMinute: 2 } })).apiKey
  t.equal((await get(reader, '/api/v1/keys/list')).statusCode, 200)
  const refused = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: `Bearer ${reader}` }, payload: { name: 'x' } })
  t.equal(refused.statusCode, 403)
  t.same([(await get(limited)).statusCode, (await get(limited)).statusCode, (await get(limited)).statusCode], [200, 200, 429])
  t.equal((await get(`${limited.slice(0, -1)}${limited.endsWith('a') ? 'b' : 'a'}`)).statusCode, 401)
  await app.keygate.flushUsage()
  const all = await listed(app)
  t.equal(all.reader?.requests, 1)
  t.equal(all.limited?.requests, 2)
})

t.test('a flush during a rotation adds to the new row too', async (t) => {
  const database = await openTestDatabase()
  const clock = testClock()
  // Holds a rotation right after it inserted the new row, its transaction still open.
  let hold: { reached: () => void, release: Promise<void> } | undefined
  const db = database.db.withPlugin({
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      const gate = hold
      if (gate !== undefined && args.result.numAffectedRows === 1n && args.queryId !== undefined) {
        hold = undefined
        gate.reached()
        await gate.release
      }
      return args.result
    }
  })
  const app = Fastify()
  t.teardown(async () => {
    await app.close()
    await database.close()
  })
  await app.register(keygate, { db, schema: database.schema, argon2: FAST_ARGON2, now: clock.now })
  host(app)
  await app.ready()
  const key = (await app.keygate.createKey({ name: 'k' })).apiKey
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/thing', headers: { authorization: `Bearer ${key}` } })).statusCode, 200)

  let release = () => {}
  const reached = new Promise<void>((resolve) => {
    hold = { reached: resolve, release: new Promise<void>((resolve) => { release = resolve }) }
  })
  const rotation = app.keygate.rotateKey('k', { gracePeriodSeconds: 60 })
  await reached
  const flush = app.keygate.flushUsage()
  // On PostgreSQL the flush waits in the database for the rotation (PGlite runs one transaction at
  // a time, so there it waits for the connection): released once it does.
  if (usingPostgres) {
    for (let waiting = false; !waiting;) {
      const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock'
        and (query like '%pg_advisory_xact_lock_shared%' or query like ${`%${database.schema}%`})`.execute(database.db)
      waiting = Number(rows[0]?.n) > 0
    }
  }
  release()
  const rotated = await rotation
  await flush
  t.same({ requests: rotated.requests, lastUsed: rotated.lastUsed }, { requests: 0, lastUsed: null }, 'the rotation copied the totals before the flush')
  t.same((await listed(app)).k, { requests: 3, lastUsed: '2026-03-03T12:00:00.000Z' }, 'the flush reached the new row')
})
