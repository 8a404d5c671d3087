import t from 'tap'
import { buildApp, createKey } from '../helpers/app.js'
import { usingPostgres } from '../helpers/database.js'

// These race creates against the create lock. PGlite runs one transaction at a time, so there
// they would pass without any lock: they mean something on PostgreSQL only, and run only there
// (CI sets DATABASE_URL and fails on a skipped test).
const postgresOnly = { skip: usingPostgres ? false : 'needs DATABASE_URL: PGlite serialises transactions, so the create lock is never raced' }

t.test('PostgreSQL only: 30 parallel creates with 5 places left admit exactly 5', postgresOnly, async (t) => {
  const app = await buildApp(t, { keygate: { maxKeys: 6 } })
  const admin = await createKey(app, 'admin')
  const responses = await Promise.all(Array.from({ length: 30 }, async (_, i) =>
    await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: admin }, payload: { name: `parallel-${i}` } })))
  const statuses = responses.map((res) => res.statusCode)
  t.equal(statuses.filter((s) => s === 200).length, 5)
  t.equal(statuses.filter((s) => s === 400).length, 25)
  for (const res of responses.filter((r) => r.statusCode === 400)) {
    t.same(res.json(), { error: 'key_limit_reached', message: 'Maximum API Key Limit Reached: 6. Consider deleting any that are not in use.' })
  }
  t.equal((await app.keygate.listKeys()).length, 6)
})

t.test('PostgreSQL only: 10 parallel creates of one name admit exactly one', postgresOnly, async (t) => {
  const app = await buildApp(t)
  const admin = await createKey(app, 'admin')
  const responses = await Promise.all(Array.from({ length: 10 }, async () =>
    await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers: { authorization: admin }, payload: { name: 'same' } })))
  t.equal(responses.filter((res) => res.statusCode === 200).length, 1)
  for (const res of responses.filter((r) => r.statusCode !== 200)) {
    t.equal(res.statusCode, 400)
    t.same(res.json(), { error: 'key_name_taken', message: 'Can not create key with name same' })
  }
  t.same((await app.keygate.listKeys()).map((k) => k.name), ['admin', 'same'])
})

t.test('PostgreSQL only: two app instances on one database share the limit', postgresOnly, async (t) => {
  const { openTestDatabase } = await import('../helpers/database.js')
  const { default: Fastify } = await import('fastify')
  const { default: keygate } = await import('../../lib/index.js')
  const { FAST_ARGON2 } = await import('../helpers/app.js')
  const database = await openTestDatabase()
  const apps = [Fastify(), Fastify()]
  t.teardown(async () => { for (const app of apps) await app.close(); await database.close() })
  for (const app of apps) {
    await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, maxKeys: 4 })
    await app.ready()
  }
  const results = await Promise.allSettled(Array.from({ length: 12 }, async (_, i) =>
    await apps[i % 2]!.keygate.createKey({ name: `shared-${i}` })))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 4)
  for (const r of results) {
    if (r.status === 'rejected') t.match(r.reason, { code: 'FST_KEYGATE_KEY_LIMIT_REACHED', statusCode: 400 })
  }
})
