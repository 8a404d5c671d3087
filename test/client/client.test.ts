import t, { type Test } from 'tap'
import { type AuditEvent, type CreatedKey, type KeyInfo, KeygateClient } from '../../lib/client/index.js'
import { serveApp } from '../helpers/served-app.js'

// The plugin's clock starts at 2026-03-03T12:00:00Z: the minute window ends at 12:01.
const MINUTE_END = new Date('2026-03-03T12:01:00.000Z')
const NOW = '2026-03-03T12:00:00.000Z'

function infoOf (created: CreatedKey): KeyInfo {
  const { apiKey: _apiKey, ...info } = created
  return info
}

async function setup (t: Test, options = {}, perMinute = 20) {
  const served = await serveApp(t, options)
  const admin = await served.app.keygate.createKey({ name: 'admin', rateLimit: { perMinute, perHour: 1000 } })
  const client = new KeygateClient({ baseUrl: served.baseUrl, apiKey: admin.apiKey })
  return { ...served, admin, client }
}

t.test('every key route, with its exact answer and the rate-limit state of each response', async (t) => {
  const { app, admin, client, clock } = await setup(t)

  const created = await client.createKey({ name: 'ci', owner: 'user-1', scopes: ['query', 'connector:read'] })
  t.match(created.data.apiKey, /^metlo_[A-Za-z0-9]{32}$/)
  t.same(created, {
    data: {
      apiKey: created.data.apiKey,
      name: 'ci',
      identifier: `metlo.${created.data.apiKey.slice(6, 14)}`,
      created: NOW,
      for: 'GENERIC',
      scopes: ['query', 'connector:read'],
      plan: 'free',
      limits: { perMinute: 60, perHour: 1000 },
      expires: null,
      owner: 'user-1',
      serviceAccount: false,
      rotationDue: false,
      rotatingFrom: null,
      lastUsed: null,
      requests: 0,
      credits: null
    },
    rateLimit: { limit: 20, remaining: 19, reset: MINUTE_END },
    deprecation: null,
    status: 200
  })
  t.ok(created.rateLimit?.reset instanceof Date, 'the reset is a Date')

  const onboarding = await client.createKey({ name: 'onboard', keyFor: 'ONBOARDING', expiresAt: new Date('2026-04-01T00:00:00Z'), credits: { remaining: 5 } })
  t.same(onboarding.data.for, 'ONBOARDING')
  t.same(onboarding.data.expires, '2026-04-01T00:00:00.000Z', 'a Date is sent as ISO 8601')
  t.same(onboarding.data.credits, { remaining: 5, refill: null })
  t.same(onboarding.rateLimit, { limit: 20, remaining: 18, reset: MINUTE_END })

  const all = await client.listKeys()
  t.same(all.data.map((key) => key.name), ['admin', 'ci', 'onboard'])
  t.same(all.data[1], infoOf(created.data))
  t.same(all.rateLimit, { limit: 20, remaining: 17, reset: MINUTE_END })

  const owned = await client.listKeys({ owner: 'user-1' })
  t.same(owned, { data: [infoOf(created.data)], rateLimit: { limit: 20, remaining: 16, reset: MINUTE_END }, deprecation: null, status: 200 })
  t.same((await client.listKeys({ owner: 'nobody' })).data, [])

  t.same(await client.listOnboardingKeys(), { data: [infoOf(onboarding.data)], rateLimit: { limit: 20, remaining: 14, reset: MINUTE_END }, deprecation: null, status: 200 })

  const updated = await client.updateKey('ci', { owner: null, rateLimit: { perMinute: 5 }, expiresAt: new Date('2026-05-01T00:00:00Z') })
  t.same(updated, {
    data: { ...infoOf(created.data), owner: null, serviceAccount: true, limits: { perMinute: 5, perHour: 1000 }, expires: '2026-05-01T00:00:00.000Z' },
    rateLimit: { limit: 20, remaining: 13, reset: MINUTE_END },
    deprecation: null,
    status: 200
  })

  const rotated = await client.rotateKey('ci', { gracePeriodSeconds: 90 })
  t.not(rotated.data.apiKey, created.data.apiKey)
  t.same(rotated, {
    data: {
      ...updated.data,
      apiKey: rotated.data.apiKey,
      identifier: `metlo.${rotated.data.apiKey.slice(6, 14)}`,
      rotatingFrom: { identifier: created.data.identifier, sunset: '2026-03-03T12:01:30.000Z' }
    },
    rateLimit: { limit: 20, remaining: 12, reset: MINUTE_END },
    deprecation: null,
    status: 200
  })
  const again = await client.rotateKey('ci')
  t.same(again.data.rotatingFrom, null, 'no input: no grace period')

  await app.keygate.flushUsage()
  t.same(await client.usage('admin', { days: 2 }), {
    data: { name: 'admin', identifier: admin.identifier, days: [{ date: '2026-03-02', requests: 0 }, { date: '2026-03-03', requests: 9 }] },
    rateLimit: { limit: 20, remaining: 10, reset: MINUTE_END },
    deprecation: null,
    status: 200
  })
  t.same((await client.usage('ci')).data.days.length, 30, 'the server default: 30 days')

  t.same(await client.deleteKey('ci'), { data: { status: 'OK' }, rateLimit: { limit: 20, remaining: 8, reset: MINUTE_END }, deprecation: null, status: 200 })
  t.same((await client.listKeys()).data.map((key) => key.name), ['admin', 'onboard'])

  // A new minute: a new window.
  clock.advance(60_000)
  t.same((await client.listOnboardingKeys()).rateLimit, { limit: 20, remaining: 19, reset: new Date('2026-03-03T12:02:00.000Z') })
})

t.test('names with slashes, percent signs and other reserved characters reach the right key', async (t) => {
  const { client } = await setup(t, {}, 200)
  const names = ['team/ci', '100%', '%2F', 'x/delete', 'a/rotate', 'b/usage', 'sp ace ü/ключ', '?#&=+', '..a', 'trailing/']
  for (const name of names) t.equal((await client.createKey({ name })).data.name, name)
  for (const name of names) {
    t.same((await client.usage(name, { days: 1 })).data.name, name, `usage of ${name}`)
    t.same((await client.updateKey(name, { owner: 'o' })).data, { ...(await client.listKeys({ owner: 'o' })).data[0], name }, `update of ${name}`)
    t.equal((await client.rotateKey(name)).data.name, name, `rotation of ${name}`)
    t.same((await client.updateKey(name, { owner: null })).data.owner, null)
  }
  // Deleting `x/delete` must not delete `x`, nor `team/ci` delete `team`.
  t.same((await client.deleteKey('x/delete')).data, { status: 'OK' })
  t.same((await client.listKeys()).data.map((key) => key.name), ['admin', ...names.filter((name) => name !== 'x/delete')])
  for (const name of names.filter((name) => name !== 'x/delete')) t.same((await client.deleteKey(name)).data, { status: 'OK' }, name)
  t.same((await client.listKeys()).data.map((key) => key.name), ['admin'])

  // `.` and `..` would be read as paths by any URL parser: refused before any request.
  const before = (await client.listKeys()).rateLimit?.remaining as number
  for (const name of ['.', '..']) {
    await t.rejects(client.deleteKey(name), new TypeError(`A key named "${name}" cannot be named in a URL; manage it from the server's code.`))
    await t.rejects(client.updateKey(name, { owner: 'x' }), TypeError)
  }
  await t.rejects(client.usage(''), new TypeError('name must be a non-empty string.'))
  t.equal((await client.listKeys()).rateLimit?.remaining, before - 1, 'nothing was sent for them')
})

t.test('the audit log: a page, filters, the cursor, every page, the export as text, stream and events', async (t) => {
  const { admin, client } = await setup(t, {}, 100)
  const a = (await client.createKey({ name: 'a' })).data
  const b = (await client.createKey({ name: 'b', scopes: ['query'] })).data
  await client.updateKey('a', { owner: 'user-1' })
  await client.deleteKey('b')

  const actor = { identifier: admin.identifier }
  const event = (id: string, action: AuditEvent['action'], target: AuditEvent['target'], requestId: string | null): AuditEvent =>
    ({ id, at: NOW, action, actor: requestId === null ? { system: 'code' } : actor, target, ip: requestId === null ? null : '127.0.0.1', requestId })
  const events = [
    event('5', 'key.deleted', { identifier: b.identifier, name: 'b' }, 'req-4'),
    event('4', 'key.updated', { identifier: a.identifier, name: 'a' }, 'req-3'),
    event('3', 'key.created', { identifier: b.identifier, name: 'b' }, 'req-2'),
    event('2', 'key.created', { identifier: a.identifier, name: 'a' }, 'req-1'),
    event('1', 'key.created', { identifier: admin.identifier, name: 'admin' }, null)
  ]

  const first = await client.listAuditEvents({ limit: 2 })
  t.same(first, { data: { events: events.slice(0, 2), next: first.data.next }, rateLimit: { limit: 100, remaining: 95, reset: MINUTE_END }, deprecation: null, status: 200 })
  t.type(first.data.next, 'string')
  t.same((await client.listAuditEvents({ limit: 2, cursor: first.data.next as string })).data.events, events.slice(2, 4))
  t.same((await client.listAuditEvents()).data, { events, next: null })
  t.same((await client.listAuditEvents({ action: 'key.created', target: 'a' })).data, { events: [events[3]], next: null })
  t.same((await client.listAuditEvents({ since: new Date(NOW), until: '2026-03-03T12:00:00.001Z', action: 'key.deleted' })).data, { events: [events[0]], next: null })
  t.same((await client.listAuditEvents({ until: new Date(NOW) })).data, { events: [], next: null }, 'until is exclusive')

  const pages = []
  for await (const page of client.auditPages({ limit: 2 })) pages.push(page.data.events.map((e) => e.id))
  t.same(pages, [['5', '4'], ['3', '2'], ['1']], 'every page, one request each, until next is null')
  const fullLast = []
  for await (const page of client.auditPages({ limit: 5 })) fullLast.push(page.data.events.length)
  t.same(fullLast, [5, 0], 'a full last page is followed by the empty one its next answers')
  const ids = []
  for await (const e of client.auditEvents({ limit: 3, action: 'key.created' })) ids.push(e.id)
  t.same(ids, ['3', '2', '1'])

  const ndjson = await client.exportAudit()
  t.same(ndjson.data, events.map((e) => JSON.stringify(e) + '\n').join(''))
  t.same(ndjson.rateLimit?.limit, 100)
  const csv = await client.exportAudit({ format: 'csv', action: 'key.created', target: 'b' })
  t.same(csv.data, 'id,at,action,actor,target_identifier,target_name,target_from,ip,request_id\r\n' +
    `3,${NOW},key.created,"{""identifier"":""${admin.identifier}""}",${b.identifier},b,,127.0.0.1,req-2\r\n`)

  const stream = await client.exportAuditStream({ format: 'ndjson', action: 'key.updated' })
  t.ok(stream.data instanceof ReadableStream)
  t.same(await new Response(stream.data).text(), JSON.stringify(events[1]) + '\n')

  const parsed = await client.exportAuditEvents({ since: NOW })
  const exported = []
  for await (const e of parsed.data) exported.push(e)
  t.same(exported, events)
  t.same(parsed.status, 200)

  // A consumer that stops early lets the rest go.
  const early = await client.exportAuditEvents()
  for await (const e of early.data) { t.same(e, events[0]); break }
})

t.test('the IETF draft headers give the same state; a signed-in person has none', async (t) => {
  for (const headers of ['ietf', 'both'] as const) {
    const { admin, baseUrl, clock } = await setup(t, { headers })
    // `t` is seconds from the response: counted from the client's clock.
    const client = new KeygateClient({ baseUrl, apiKey: admin.apiKey, now: clock.now })
    t.same((await client.listKeys()).rateLimit, { limit: 20, remaining: 19, reset: MINUTE_END }, headers)
    clock.advance(45_500)
    // 14.5 s left: the draft's `t` says 15 (whole seconds, rounded up); X-RateLimit-Reset, when
    // present, is preferred, being an instant.
    const reset = headers === 'ietf' ? new Date('2026-03-03T12:01:00.500Z') : MINUTE_END
    t.same((await client.listKeys()).rateLimit, { limit: 20, remaining: 18, reset }, `${headers}, later in the window`)
  }

  const { baseUrl } = await serveApp(t, {
    authenticateManagement: async (request) => request.headers.authorization === 'Bearer person-token'
      ? { tenant: 'default', user: 'alice', scopes: ['*'] }
      : null
  })
  const person = new KeygateClient({ baseUrl, apiKey: 'person-token' })
  t.equal(person.keyIdentifier, null)
  const made = await person.createKey({ name: 'alice-key' })
  t.same(made.rateLimit, null, 'no rate-limit headers: null')
  t.same(made.data.owner, 'alice')
})

t.test('a key in its rotation grace is told so on every result: deprecation and sunset', async (t) => {
  const { client, baseUrl, clock } = await setup(t)
  const rotated = await client.rotateKey('admin', { gracePeriodSeconds: 90 })
  t.same(rotated.deprecation, null, 'the answer to the rotation itself came before it')
  clock.advance(1_000)
  const old = await client.listKeys()
  t.same(old.deprecation, { at: new Date('2026-03-03T12:00:00.000Z'), sunset: new Date('2026-03-03T12:01:30.000Z') })
  t.same(old.rateLimit, { limit: 20, remaining: 18, reset: MINUTE_END }, 'both texts share one budget')
  const renewed = new KeygateClient({ baseUrl, apiKey: rotated.data.apiKey })
  const fresh = await renewed.listKeys()
  t.same(fresh.deprecation, null)
  t.same(fresh.rateLimit, { limit: 20, remaining: 17, reset: MINUTE_END })
})
