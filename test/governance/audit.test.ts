import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { get, type IncomingMessage } from 'node:http'
import t from 'tap'
import { sql } from 'kysely'
import { testClock } from '../helpers/app.js'
import { database, instance } from '../helpers/instance.js'

// Issue "Governance", the audit log: every change to a key, and every management request refused
// for a missing permission, is one event, written in the transaction of the change it records.

const AT = '2026-03-03T12:00:00.000Z'

t.test('an event for each create, update, rotate and delete, with its actor, target, ip and request id', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const admin = await a.app.keygate.createKey({ name: 'admin' })
  const made = await a.call(admin.apiKey, 'POST', '/api/v1/keys/create', { name: 'ci' })
  t.equal(made.statusCode, 200)
  const ci = made.json().identifier
  t.equal((await a.call(admin.apiKey, 'PATCH', '/api/v1/keys/ci', { name: 'ci-2' })).statusCode, 200)
  const rotated = await a.call(admin.apiKey, 'POST', '/api/v1/keys/ci-2/rotate', {})
  t.equal(rotated.statusCode, 200)
  const ci2 = rotated.json().identifier
  t.equal((await a.call(admin.apiKey, 'DELETE', '/api/v1/keys/ci-2/delete')).statusCode, 200)

  const res = await a.call(admin.apiKey, 'GET', '/api/v1/keys/audit')
  t.equal(res.statusCode, 200)
  const { events, next } = res.json()
  t.equal(next, null)
  const actor = { identifier: admin.identifier }
  t.same(events.map(({ id: _id, ...event }: { id: string }) => event), [
    { at: AT, action: 'key.deleted', actor, target: { identifier: ci2, name: 'ci-2' }, ip: '127.0.0.1', requestId: 'req-4' },
    { at: AT, action: 'key.rotated', actor, target: { identifier: ci2, name: 'ci-2', from: ci }, ip: '127.0.0.1', requestId: 'req-3' },
    { at: AT, action: 'key.updated', actor, target: { identifier: ci, name: 'ci-2' }, ip: '127.0.0.1', requestId: 'req-2' },
    { at: AT, action: 'key.created', actor, target: { identifier: ci, name: 'ci' }, ip: '127.0.0.1', requestId: 'req-1' },
    { at: AT, action: 'key.created', actor: { system: 'code' }, target: { identifier: admin.identifier, name: 'admin' }, ip: null, requestId: null }
  ])
  const ids = events.map((e: { id: string }) => Number(e.id))
  t.same(ids, [...ids].sort((x, y) => y - x), 'newest first')
  t.notMatch(JSON.stringify(events), made.json().apiKey.slice(-20), 'no key text')

  // Code may say who acts; an update that changes nothing records nothing.
  await a.app.keygate.updateKey('admin', { plan: 'pro' }, { audit: { actor: { user: 'alice' }, ip: '10.0.0.1', requestId: 'r-9' } })
  await a.app.keygate.updateKey('admin', { name: 'admin' })
  const page = await a.app.keygate.listAuditEvents({ limit: 2 })
  t.same(page.events.map(({ id: _id, ...event }) => event), [
    { at: AT, action: 'key.updated', actor: { user: 'alice' }, target: { identifier: admin.identifier, name: 'admin' }, ip: '10.0.0.1', requestId: 'r-9' },
    { at: AT, action: 'key.deleted', actor, target: { identifier: ci2, name: 'ci-2' }, ip: '127.0.0.1', requestId: 'req-4' }
  ])
})

t.test('no event for a change that rolled back', async (t) => {
  const db = await database(t)
  // Fails the key's own write after the event of a create is written... and the event's insert
  // before an update's row change is impossible to reorder, so a failing event insert also shows
  // the change goes with it.
  let failOn: string | null = null
  const failing = db.db.withPlugin({
    transformQuery: (args) => {
      const node = args.node as any
      const table = (node.into ?? node.table)?.table?.identifier?.name
      if (failOn !== null && `${node.kind as string}:${table as string}` === failOn) throw new Error('failed (test)')
      return args.node
    },
    transformResult: async (args) => args.result
  })
  const a = await instance(t, { ...db, db: failing })
  await a.app.keygate.createKey({ name: 'admin' })
  const before = (await a.app.keygate.listAuditEvents()).events.length

  failOn = 'InsertQueryNode:keygate_audit_events'
  await t.rejects(a.app.keygate.createKey({ name: 'ci' }))
  await t.rejects(a.app.keygate.updateKey('admin', { plan: 'pro' }))
  await t.rejects(a.app.keygate.rotateKey('admin'))
  await t.rejects(a.app.keygate.deleteKey('admin'))
  failOn = null
  t.same((await a.app.keygate.listKeys()).map((k) => [k.name, k.plan]), [['admin', 'free']], 'no change without its event')

  // The event written first, then the change failing after it in the same transaction.
  failOn = 'UpdateQueryNode:keygate_api_keys'
  await t.rejects(a.app.keygate.deleteKey('admin'))
  failOn = null
  t.equal((await a.app.keygate.listAuditEvents()).events.length, before, 'no event for a change that rolled back')
  const rows = await sql<{ n: number }>`select count(*)::int as n from ${sql.id(db.schema, 'keygate_audit_events')}`.execute(db.db)
  t.equal(rows.rows[0]?.n, before)
})

t.test('access.denied for the hook\'s 403 and for a caller rule\'s 403; none for other refusals', async (t) => {
  const a = await instance(t, await database(t))
  const reader = await a.app.keygate.createKey({ name: 'reader', scopes: ['keys:read', 'audit:read'] })
  const writer = await a.app.keygate.createKey({ name: 'writer', scopes: ['keys:write', 'query'] })
  await a.app.keygate.createKey({ name: 'full' })

  const hook = await a.call(reader.apiKey, 'DELETE', '/api/v1/keys/full/delete')
  t.same([hook.statusCode, hook.json().error], [403, 'insufficient_scope'])
  const rule = await a.call(writer.apiKey, 'POST', '/api/v1/keys/create', { name: 'more', scopes: ['federate'] })
  t.same([rule.statusCode, rule.json().error], [403, 'insufficient_scope'])
  const audit = await a.call(writer.apiKey, 'GET', '/api/v1/keys/audit')
  t.same([audit.statusCode, audit.json().error], [403, 'insufficient_scope'])
  t.equal((await a.call(writer.apiKey, 'PATCH', '/api/v1/keys/nobody', { plan: 'pro' })).statusCode, 404, 'a 404 is no event')
  t.equal((await a.call(undefined, 'GET', '/api/v1/keys/audit')).statusCode, 401, 'nor a 401')
  t.equal((await a.call(writer.apiKey, 'GET', '/data')).statusCode, 200)

  // Written after the answer, not awaited by it: read until all three are there.
  const denied = await until(async () => (await a.app.keygate.listAuditEvents({ action: 'access.denied' })).events, (events) => events.length >= 3)
  // Each write races the next request's on the pool, so their ids (the listing's order) may come
  // in either order: compared by request.
  const byRequest = denied.map(({ id: _id, at: _at, ...event }) => event).sort((x, y) => (y.requestId ?? '').localeCompare(x.requestId ?? ''))
  t.same(byRequest, [
    { action: 'access.denied', actor: { identifier: writer.identifier }, target: null, ip: '127.0.0.1', requestId: 'req-3' },
    { action: 'access.denied', actor: { identifier: writer.identifier }, target: null, ip: '127.0.0.1', requestId: 'req-2' },
    { action: 'access.denied', actor: { identifier: reader.identifier }, target: { identifier: null, name: 'full' }, ip: '127.0.0.1', requestId: 'req-1' }
  ])
})

/** Reads until `done` holds (at most a few hundred reads, no timers): for writes the answer does not wait for. */
async function until<T> (read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read()
    if (done(value) || i === 500) return value
    await new Promise((resolve) => setImmediate(resolve))
  }
}

t.test('a tenant sees only its own events', async (t) => {
  const a = await instance(t, await database(t))
  const acme = await a.app.keygate.createKey({ tenant: 'acme', name: 'admin' })
  const globex = await a.app.keygate.createKey({ tenant: 'globex', name: 'admin' })
  await a.call(globex.apiKey, 'POST', '/api/v1/keys/create', { name: 'secret-project' })
  const seen = (await a.call(acme.apiKey, 'GET', '/api/v1/keys/audit')).json()
  t.same(seen.events.map((e: { target: { name: string } }) => e.target.name), ['admin'])
  t.same((await a.call(acme.apiKey, 'GET', '/api/v1/keys/audit?target=secret-project')).json(), { events: [], next: null })
  const exported = await a.call(acme.apiKey, 'GET', '/api/v1/keys/audit/export')
  t.equal(exported.body.trim().split('\n').length, 1)
  t.same((await a.app.keygate.listAuditEvents({ tenant: 'globex' })).events.map((e) => e.target?.name), ['secret-project', 'admin'])
  t.same((await a.app.keygate.listAuditEvents({ tenant: 'globex', requestedBy: { tenant: 'acme', scopes: ['*'], limits: { perMinute: 1, perHour: 1 } } })).events.length, 1, 'the caller\'s tenant wins')
})

t.test('pagination, filters and refused queries', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const admin = await a.app.keygate.createKey({ name: 'admin' })
  for (let i = 0; i < 6; i++) {
    clock.advance(60_000)
    await a.app.keygate.createKey({ name: `k${i}` })
  }
  await a.app.keygate.deleteKey('k1')
  const get = async (query: string) => await a.call(admin.apiKey, 'GET', `/api/v1/keys/audit${query}`)

  const seen: string[] = []
  let cursor: string | null = null
  const sizes = []
  do {
    const res = await get(`?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`)
    t.equal(res.statusCode, 200)
    const page = res.json()
    sizes.push(page.events.length)
    seen.push(...page.events.map((e: { action: string, target: { name: string } }) => `${e.action} ${e.target.name}`))
    cursor = page.next
  } while (cursor !== null)
  t.same(sizes, [3, 3, 2])
  t.same(seen, ['key.deleted k1', 'key.created k5', 'key.created k4', 'key.created k3', 'key.created k2', 'key.created k1', 'key.created k0', 'key.created admin'])

  const names = async (query: string) => (await get(query)).json().events.map((e: { action: string, target: { name: string } }) => `${e.action} ${e.target.name}`)
  t.same(await names('?action=key.deleted'), ['key.deleted k1'])
  t.same(await names('?target=k1'), ['key.deleted k1', 'key.created k1'])
  const k2 = (await a.app.keygate.listKeys()).find((k) => k.name === 'k2')!.identifier
  t.same(await names(`?target=${k2}`), ['key.created k2'], 'by identifier too')
  t.same(await names('?since=2026-03-03T12:02:00Z&until=2026-03-03T12:04:00Z'), ['key.created k2', 'key.created k1'], 'since included, until not')

  const bad: Array<[string, string]> = [
    ['?limit=0', 'limit must be an integer from 1 to 500.'],
    ['?limit=501', 'limit must be an integer from 1 to 500.'],
    ['?limit=1.5', 'limit must be an integer from 1 to 500.'],
    ['?limit=abc', 'limit must be an integer from 1 to 500.'],
    ['?action=key.exploded', 'action must be one of key.created, key.updated, key.rotated, key.deleted, key.expired, access.denied.'],
    ['?since=yesterday', 'since must be an ISO 8601 date-time.'],
    ['?until=2026-02-30T00:00:00Z', 'until must be an ISO 8601 date-time.'],
    ['?cursor=abc', 'cursor is not one this log gave.'],
    ['?cursor=MDA', 'cursor is not one this log gave.'],
    [`?cursor=${Buffer.from('9999999999999999999').toString('base64url')}`, 'cursor is not one this log gave.'],
    ['?action=key.created&action=key.deleted', 'action must be given once.']
  ]
  for (const [query, message] of bad) {
    const res = await get(query as string)
    t.same([res.statusCode, res.json()], [400, { error: 'invalid_request', message }], query)
  }
  const res = await a.call(admin.apiKey, 'GET', '/api/v1/keys/audit/export?format=xml')
  t.same([res.statusCode, res.json()], [400, { error: 'invalid_request', message: 'format must be one of ndjson, csv.' }])
  const usage = await a.call(admin.apiKey, 'GET', '/api/v1/keys/k2/usage?days=1')
  t.equal(usage.statusCode, 200, 'the usage wildcard still answers beside the static audit routes')
})

t.test('key.expired once per key, by the job; retention removes old events in batches', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now, auditRetentionDays: 30 })
  const soon = await a.app.keygate.createKey({ name: 'soon', expiresInDays: 1 })
  await a.app.keygate.createKey({ name: 'later', expiresInDays: 10 })
  await a.app.keygate.createKey({ name: 'gone', expiresInDays: 1 })
  await a.app.keygate.deleteKey('gone')
  clock.advance(2 * 86_400_000)
  await a.app.keygate.runAuditJob()
  await a.app.keygate.runAuditJob()
  const expired = (await a.app.keygate.listAuditEvents({ action: 'key.expired' })).events
  t.same(expired.map(({ id: _id, ...event }) => event), [
    { at: '2026-03-04T12:00:00.000Z', action: 'key.expired', actor: { system: 'expiry' }, target: { identifier: soon.identifier, name: 'soon' }, ip: null, requestId: null }
  ], 'once, at the expiry; a key deleted first has its delete event only')
  // A new expiry is one still to come.
  await a.app.keygate.updateKey('soon', { expiresAt: '2026-03-06T12:00:00Z' })
  clock.advance(2 * 86_400_000)
  await a.app.keygate.runAuditJob()
  t.same((await a.app.keygate.listAuditEvents({ action: 'key.expired' })).events.map((e) => e.at), ['2026-03-06T12:00:00.000Z', '2026-03-04T12:00:00.000Z'])

  t.equal((await a.app.keygate.listAuditEvents()).events.length, 7)
  clock.advance(29 * 86_400_000)
  await a.app.keygate.runAuditJob()
  const left = (await a.app.keygate.listAuditEvents()).events
  t.same(left.map((e) => `${e.action} ${e.target?.name as string} ${e.at}`), [
    'key.expired later 2026-03-13T12:00:00.000Z',
    'key.expired soon 2026-03-06T12:00:00.000Z'
  ], 'events older than 30 days are gone; one exactly 30 days old is kept')
})

t.test('the export streams every event, newest first, as NDJSON and CSV, in flat memory', async (t) => {
  const db = await database(t)
  const a = await instance(t, db, { now: testClock().now })
  const admin = await a.app.keygate.createKey({ name: 'admin' })
  const nasty = '=HYPERLINK("x"),"q"'
  await a.app.keygate.createKey({ name: nasty }, { audit: { actor: { user: '@bob, "the" admin' }, ip: '-1', requestId: '+r\r\nx' } })
  const COUNT = 100_000
  // Older than both keys' events: ids before theirs would need them first, so shift those up.
  const table = sql.id(db.schema, 'keygate_audit_events')
  await sql`update ${table} set id = id + ${COUNT}`.execute(db.db)
  await sql`insert into ${table} (id, at, tenant, action, actor, target, ip, request_id)
    select n, timestamptz '2026-01-01T00:00:00Z' + n * interval '1 second', 'default', 'key.updated',
      '{"identifier":"metlo_x"}', jsonb_build_object('identifier', 'metlo_' || n, 'name', 'k' || n), '10.0.0.1', 'req-' || n
    from generate_series(1, ${COUNT}) as n`.execute(db.db)

  const base = await a.app.listen({ port: 0, host: '127.0.0.1' })
  for (const format of ['ndjson', 'csv'] as const) {
    const heapBefore = heapAfterGc()
    let heapMax = heapBefore
    // Over a real connection, with backpressure: inject's payloadAsStream holds what it was sent
    // (light-my-request also writes each chunk to its null socket), so its heap grows with the count.
    const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${base}/api/v1/keys/audit/export${format === 'csv' ? '?format=csv' : ''}`,
      { headers: { authorization: `Bearer ${admin.apiKey}` } }, resolve).on('error', reject))
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
    let lines = 0
    let rest = ''
    let first: string[] = []
    let previous = Infinity
    let ordered = true
    let chunks = 0
    for await (const chunk of res) {
      const parts = (rest + chunk.toString()).split(format === 'csv' ? /\r\n(?=\d|$)/ : '\n')
      rest = parts.pop() as string
      for (const line of parts) {
        if (first.length < 4) first.push(line)
        lines++
        const id = format === 'csv' ? Number(line.split(',', 1)[0]) : Number(/^\{"id":"(\d+)"/.exec(line)?.[1])
        if (!Number.isNaN(id)) {
          if (id >= previous) ordered = false
          previous = id
        }
      }
      if (++chunks % 20 === 0) heapMax = Math.max(heapMax, heapAfterGc())
    }
    t.equal(rest, '', 'ends with a line end')
    t.equal(lines, COUNT + 2 + (format === 'csv' ? 1 : 0), `${format}: every event${format === 'csv' ? ', after the header' : ''}`)
    t.ok(ordered, 'newest first')
    t.equal(previous, 1, 'down to the oldest')
    if (format === 'csv') {
      t.same(first.slice(0, 2), [
        'id,at,action,actor,target_identifier,target_name,target_from,ip,request_id',
        `${COUNT + 2},2026-03-03T12:00:00.000Z,key.created,"{""user"":""@bob, \\""the\\"" admin""}",${(await a.app.keygate.listKeys())[1]?.identifier as string},"'=HYPERLINK(""x""),""q""",,'-1,"'+r\r\nx"`
      ], 'RFC 4180 quoting; cells that start a formula neutralised')
    } else {
      t.same(JSON.parse(first[0] as string).target.name, nasty, 'NDJSON keeps the text as it is')
    }
    t.ok(chunks > 20, `${chunks} chunks: streamed, not sent whole`)
    t.ok(heapMax - heapBefore < 50 * 1024 * 1024, `heap grew by ${Math.round((heapMax - heapBefore) / 1048576)} MB while streaming`)
  }
})

/** The live heap: garbage collected first, so what is measured is what is held. */
function heapAfterGc (): number {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
  return process.memoryUsage().heapUsed
}

t.test('an access.denied write still under way when the app closes is finished first', async (t) => {
  const db = await database(t)
  const a = await instance(t, db)
  const reader = await a.app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })
  t.equal((await a.call(reader.apiKey, 'POST', '/api/v1/keys/create', { name: 'x' })).statusCode, 403)
  await a.app.close()
  const rows = await sql<{ action: string }>`select action from ${sql.id(db.schema, 'keygate_audit_events')} order by id`.execute(db.db)
  t.same(rows.rows.map((r) => r.action), ['key.created', 'access.denied'])
})
