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
