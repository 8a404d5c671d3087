import t from 'tap'
import { buildApp, createKey, testClock } from '../helpers/app.js'

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

async function setup (t: Parameters<typeof buildApp>[0], keygate: Parameters<typeof buildApp>[1] = {}) {
  const clock = testClock()
  const app = await buildApp(t, { ...keygate, keygate: { now: clock.now, ...keygate.keygate } })
  const admin = await createKey(app, 'admin')
  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) =>
    await app.inject({ method, url, headers: { authorization: `Bearer ${admin}` }, ...(body === undefined ? {} : { payload: body as object }) })
  return { app, admin, clock, call }
}

t.test('POST /create returns the key once, with the documented fields', async (t) => {
  const { call, clock } = await setup(t)
  clock.advance(1000)
  const res = await call('POST', '/api/v1/keys/create', { name: 'my-api-key', keyFor: 'GCP' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body), ['apiKey', 'name', 'identifier', 'created', 'for', 'scopes', 'plan', 'limits', 'expires', 'owner', 'serviceAccount', 'rotationDue', 'rotatingFrom', 'lastUsed', 'requests', 'credits'])
  t.match(body.apiKey, /^metlo_[0-9A-Za-z]{32}$/)
  t.equal(body.name, 'my-api-key')
  t.equal(body.identifier, `metlo.${body.apiKey.slice(6, 14)}`)
  t.equal(body.created, '2026-03-03T12:00:01.000Z')
  t.equal(body.for, 'GCP')
  t.equal(body.lastUsed, null, 'a new key has not been used')
  t.equal(body.requests, 0)

  const defaults = (await call('POST', '/api/v1/keys/create', { name: 'plain' })).json()
  t.equal(defaults.for, 'GENERIC', 'keyFor defaults to GENERIC')
  const mlo = (await call('POST', '/api/v1/keys/create', { name: 'metalogue', prefix: 'mlo' })).json()
  t.match(mlo.apiKey, /^mlo_[0-9A-Za-z]{32}$/)
  t.match(mlo.identifier, /^mlo\.[0-9A-Za-z]{8}$/)

  const used = await call('GET', '/api/v1/keys/list')
  t.equal(used.statusCode, 200)
  t.equal(JSON.stringify(used.json()).includes(body.apiKey), false, 'the list never shows the key')
})

t.test('GET /list: every live key, oldest first, metadata only', async (t) => {
  const { app, call, clock } = await setup(t)
  clock.advance(60_000)
  await app.keygate.createKey({ name: 'onboard-1', keyFor: 'ONBOARDING' })
  clock.advance(60_000)
  await app.keygate.createKey({ name: 'aws', keyFor: 'AWS' })
  clock.advance(60_000)
  await app.keygate.createKey({ name: 'onboard-2', keyFor: 'ONBOARDING' })
  const res = await call('GET', '/api/v1/keys/list')
  t.equal(res.statusCode, 200)
  const list = res.json()
  t.same(list.map((k: { name: string }) => k.name), ['admin', 'onboard-1', 'aws', 'onboard-2'])
  t.same(list.map((k: { created: string }) => k.created), [
    '2026-03-03T12:00:00.000Z', '2026-03-03T12:01:00.000Z', '2026-03-03T12:02:00.000Z', '2026-03-03T12:03:00.000Z'
  ])
  for (const key of list) {
    t.same(Object.keys(key), ['name', 'identifier', 'created', 'for', 'scopes', 'plan', 'limits', 'expires', 'owner', 'serviceAccount', 'rotationDue', 'rotatingFrom', 'lastUsed', 'requests', 'credits'])
    t.match(key.identifier, /^metlo\.[0-9A-Za-z]{8}$/)
    t.match(key.created, ISO_UTC)
  }

  const onboarding = await call('GET', '/api/v1/keys/onboarding')
  t.equal(onboarding.statusCode, 200)
  t.same(onboarding.json().map((k: { name: string }) => k.name), ['onboard-2', 'onboard-1'], 'ONBOARDING keys only, newest first')
  t.same(onboarding.json()[0], list[3])
})

t.test('keys created in the same millisecond keep their creation order', async (t) => {
  const { app, call } = await setup(t)
  for (const name of ['b', 'a', 'c']) await app.keygate.createKey({ name })
  t.same((await call('GET', '/api/v1/keys/list')).json().map((k: { name: string }) => k.name), ['admin', 'b', 'a', 'c'])
})

t.test('DELETE /:name/delete', async (t) => {
  const { app, call } = await setup(t)
  const names = ['with space', 'ünïcødé ключ', 'slash/inside', 'x'.repeat(128), '%literal%']
  for (const name of names) await app.keygate.createKey({ name })
  for (const name of names) {
    const res = await call('DELETE', `/api/v1/keys/${encodeURIComponent(name)}/delete`)
    t.equal(res.statusCode, 200, name)
    t.same(res.json(), { status: 'OK' }, name)
  }
  t.same((await call('GET', '/api/v1/keys/list')).json().map((k: { name: string }) => k.name), ['admin'])

  const missing = await call('DELETE', '/api/v1/keys/my-api-key/delete')
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { error: 'key_not_found', message: 'Did not find any matching keys for my-api-key' })
  const again = await call('DELETE', `/api/v1/keys/${encodeURIComponent('with space')}/delete`)
  t.same(again.json(), { error: 'key_not_found', message: 'Did not find any matching keys for with space' }, 'a deleted key is gone')

  t.equal((await call('DELETE', '/api/v1/keys/admin')).statusCode, 404, 'without /delete there is no route')
  t.equal((await call('DELETE', '/api/v1/keys//delete')).statusCode, 404, 'an empty name is no route')
})

t.test('a deleted name can be used again', async (t) => {
  const { call } = await setup(t)
  t.equal((await call('POST', '/api/v1/keys/create', { name: 'rotate' })).statusCode, 200)
  t.equal((await call('DELETE', '/api/v1/keys/rotate/delete')).statusCode, 200)
  t.equal((await call('POST', '/api/v1/keys/create', { name: 'rotate' })).statusCode, 200)
})

t.test('create refuses bad input with the contract\'s exact 400 bodies', async (t) => {
  const { app, admin, call } = await setup(t)
  const keyFor = { error: 'key_for_invalid', message: 'The key must be for one of the following: GCP, AWS, GENERIC, ONBOARDING' }
  const required = { error: 'key_name_required', message: 'Key name is required.' }
  const invalidName = { error: 'key_name_invalid', message: 'Key name must be a string of 1 to 128 characters without control characters.' }
  const cases: Array<[string, unknown, object]> = [
    ['duplicate name', { name: 'admin' }, { error: 'key_name_taken', message: 'Can not create key with name admin' }],
    ['no name', { keyFor: 'GENERIC' }, required],
    ['empty name', { name: '' }, required],
    ['empty object', {}, required],
    ['bad keyFor', { name: 'k', keyFor: 'AZURE' }, keyFor],
    ['keyFor toString', { name: 'k', keyFor: 'toString' }, keyFor],
    ['keyFor __proto__', { name: 'k', keyFor: '__proto__' }, keyFor],
    ['keyFor lower case', { name: 'k', keyFor: 'generic' }, keyFor],
    ['keyFor number', { name: 'k', keyFor: 1 }, keyFor],
    ['name too long', { name: 'x'.repeat(129) }, invalidName],
    ['name with newline', { name: 'a\nb' }, invalidName],
    ['name with NUL', { name: 'a\u0000b' }, invalidName],
    ['name with escape', { name: '\u001b[31mred' }, invalidName],
    ['name is a number', { name: 12 }, invalidName],
    ['unknown prefix', { name: 'k', prefix: 'sk' }, { error: 'key_prefix_invalid', message: 'The key prefix must be one of the following: metlo, mlo' }],
    ['unknown property', { name: 'k', admin: true }, { error: 'invalid_request', message: 'Unknown property in request body. Allowed: name, owner, scopes, plan, rateLimit, expiresAt, credits, keyFor, prefix, expiresInDays.' }],
    ['array body', [{ name: 'k' }], { error: 'invalid_request', message: 'Request body must be a JSON object.' }]
  ]
  for (const [label, body, expected] of cases) {
    const res = await call('POST', '/api/v1/keys/create', body)
    t.equal(res.statusCode, 400, label)
    t.same(res.json(), expected, label)
  }
  const noBody = await call('POST', '/api/v1/keys/create')
  t.equal(noBody.statusCode, 400)
  t.same(noBody.json(), required, 'no body at all')
  const badJson = await app.inject({
    method: 'POST',
    url: '/api/v1/keys/create',
    headers: { authorization: admin, 'content-type': 'application/json' },
    payload: '{"name":'
  })
  t.equal(badJson.statusCode, 400)
  t.same(badJson.json(), { error: 'bad_request', message: "Body is not valid JSON but content-type is set to 'application/json'" })
  const xml = await app.inject({
    method: 'POST',
    url: '/api/v1/keys/create',
    headers: { authorization: admin, 'content-type': 'application/xml' },
    payload: '<name>k</name>'
  })
  t.equal(xml.statusCode, 415)
  t.same(xml.json(), { error: 'unsupported_media_type', message: 'Unsupported Media Type' })
  t.same((await call('GET', '/api/v1/keys/list')).json().map((k: { name: string }) => k.name), ['admin'], 'nothing was created')

  const longest = await call('POST', '/api/v1/keys/create', { name: 'ü'.repeat(128) })
  t.equal(longest.statusCode, 200, '128 characters is allowed, counted as characters, not bytes')
})

t.test('a body over Fastify\'s bodyLimit: 413 in the contract\'s shape, nothing created', async (t) => {
  const { app, admin, call } = await setup(t)
  // Fastify's default bodyLimit is 1 MiB; a name padded past it, in otherwise valid JSON.
  const payload = JSON.stringify({ name: 'x'.repeat(1024 * 1024) })
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/keys/create',
    headers: { authorization: admin, 'content-type': 'application/json' },
    payload
  })
  t.equal(res.statusCode, 413)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.same([res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset']],
    ['60', '59', String(Date.UTC(2026, 2, 3, 12, 1, 0) / 1000)], 'counted like any request with a key')
  t.same(res.json(), { error: 'payload_too_large', message: 'Request body is too large' })
  t.same((await call('GET', '/api/v1/keys/list')).json().map((k: { name: string }) => k.name), ['admin'], 'nothing was created')
})

t.test('the key limit', async (t) => {
  const { app, call } = await setup(t, { keygate: { maxKeys: 3 } })
  await app.keygate.createKey({ name: 'two' })
  t.equal((await call('POST', '/api/v1/keys/create', { name: 'three' })).statusCode, 200)
  const res = await call('POST', '/api/v1/keys/create', { name: 'four' })
  t.equal(res.statusCode, 400)
  t.same(res.json(), { error: 'key_limit_reached', message: 'Maximum API Key Limit Reached: 3. Consider deleting any that are not in use.' })
  t.equal((await call('DELETE', '/api/v1/keys/two/delete')).statusCode, 200)
  t.equal((await call('POST', '/api/v1/keys/create', { name: 'four' })).statusCode, 200, 'deleting frees a place')
})

t.test('the default limit is 50, with the documented message', async (t) => {
  const { app, call } = await setup(t)
  for (let i = 2; i <= 50; i++) await app.keygate.createKey({ name: `key-${i}` })
  const res = await call('POST', '/api/v1/keys/create', { name: 'key-51' })
  t.equal(res.statusCode, 400)
  t.same(res.json(), { error: 'key_limit_reached', message: 'Maximum API Key Limit Reached: 50. Consider deleting any that are not in use.' })
})

t.test('the management routes need a valid key', async (t) => {
  const { app } = await setup(t)
  for (const [method, url] of [['GET', '/api/v1/keys/list'], ['GET', '/api/v1/keys/onboarding'], ['POST', '/api/v1/keys/create'], ['DELETE', '/api/v1/keys/admin/delete']] as const) {
    const res = await app.inject({ method, url, payload: method === 'POST' ? { name: 'x' } : undefined })
    t.equal(res.statusCode, 401, url)
    t.same(res.json(), { error: 'unauthorized', message: 'Client unauthorized' }, url)
  }
  t.same((await app.keygate.listKeys()).map((k) => k.name), ['admin'], 'nothing was deleted or created')
})

t.test('routePrefix and routes: false', async (t) => {
  const moved = await setup(t, { keygate: { routePrefix: '/admin/keys' } })
  t.equal((await moved.call('GET', '/admin/keys/list')).statusCode, 200)
  t.equal((await moved.call('GET', '/api/v1/keys/list')).statusCode, 404)

  const none = await setup(t, { keygate: { routes: false } })
  t.equal((await none.call('GET', '/api/v1/keys/list')).statusCode, 404)
  t.equal((await none.app.keygate.listKeys()).length, 1, 'the programmatic API still works')
})

t.test('GET /:name/usage: every day of the range, oldest first, ending today (UTC)', async (t) => {
  const { app, call, clock } = await setup(t)
  const names = ['slash/inside', 'x'.repeat(128), 'with space']
  const created = []
  for (const name of names) created.push(await app.keygate.createKey({ name }))
  const key = created[0]?.apiKey as string
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ url: '/api/v1/keys/list', headers: { authorization: `Bearer ${key}` } })).statusCode, 200)
  clock.advance(24 * 3_600_000)
  t.equal((await app.inject({ url: '/api/v1/keys/list', headers: { authorization: `Bearer ${key}` } })).statusCode, 200)
  await app.keygate.flushUsage()

  const res = await call('GET', `/api/v1/keys/${encodeURIComponent('slash/inside')}/usage?days=4`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.same(res.json(), {
    name: 'slash/inside',
    identifier: created[0]?.identifier,
    days: [
      { date: '2026-03-01', requests: 0 },
      { date: '2026-03-02', requests: 0 },
      { date: '2026-03-03', requests: 2 },
      { date: '2026-03-04', requests: 1 }
    ]
  })
  const unencoded = await call('GET', '/api/v1/keys/slash/inside/usage?days=4')
  t.same(unencoded.json(), res.json(), 'a slash in the name may also be sent as it is')

  const month = (await call('GET', `/api/v1/keys/${'x'.repeat(128)}/usage`)).json()
  t.equal(month.days.length, 30, '30 days by default')
  t.same([month.days[0], month.days[29]], [{ date: '2026-02-03', requests: 0 }, { date: '2026-03-04', requests: 0 }])
  const year = (await call('GET', '/api/v1/keys/with%20space/usage?days=366')).json()
  t.same([year.days.length, year.days[0].date], [366, '2025-03-04'])

  const listed = (await call('GET', '/api/v1/keys/list')).json()
  t.same(listed.map((k: { name: string, requests: number, lastUsed: string | null }) => [k.name, k.requests, k.lastUsed]), [
    ['admin', 0, null],
    ['slash/inside', 3, '2026-03-04T12:00:00.000Z'],
    ['x'.repeat(128), 0, null],
    ['with space', 0, null]
  ], 'listings carry the totals as of the last flush: the admin\'s reads are not written yet')
})

t.test('GET /:name/usage refuses: unknown names 404, bad days 400, no keys:read 403', async (t) => {
  const { app, call } = await setup(t)
  const missing = await call('GET', '/api/v1/keys/nobody/usage')
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { error: 'key_not_found', message: 'Did not find any matching keys for nobody' })
  await app.keygate.createKey({ name: 'gone' })
  await app.keygate.deleteKey('gone')
  t.same((await call('GET', '/api/v1/keys/gone/usage')).json(), { error: 'key_not_found', message: 'Did not find any matching keys for gone' }, 'a deleted key has no usage to show')

  for (const days of ['0', '367', 'abc', '1.5', '', '-1', '+3', '030', '1e2', '30&days=31']) {
    const res = await call('GET', `/api/v1/keys/admin/usage?days=${days}`)
    t.equal(res.statusCode, 400, days)
    t.same(res.json(), { error: 'invalid_request', message: 'days must be an integer from 1 to 366.' }, days)
  }
  await t.rejects(app.keygate.usage('admin', { days: 2.5 }), { code: 'FST_KEYGATE_INVALID_REQUEST', statusCode: 400 })

  const unknown = await call('GET', '/api/v1/keys/admin/usages')
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { error: 'not_found', message: 'Route GET /api/v1/keys/admin/usages not found.' })
  t.equal((await call('GET', '/api/v1/keys//usage')).statusCode, 404, 'an empty name is no route')

  const writer = (await app.keygate.createKey({ name: 'writer', scopes: ['keys:write'] })).apiKey
  const refused = await app.inject({ url: '/api/v1/keys/admin/usage', headers: { authorization: `Bearer ${writer}` } })
  t.equal(refused.statusCode, 403)
  t.same(refused.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: keys:read' })
  const anonymous = await app.inject({ url: '/api/v1/keys/admin/usage' })
  t.equal(anonymous.statusCode, 401)
  t.same(anonymous.json(), { error: 'unauthorized', message: 'Client unauthorized' })

  // A reader may read any key's usage, even of a key holding more than it does.
  const reader = (await app.keygate.createKey({ name: 'reader', scopes: ['keys:read'] })).apiKey
  const read = await app.inject({ url: '/api/v1/keys/admin/usage?days=1', headers: { authorization: `Bearer ${reader}` } })
  t.equal(read.statusCode, 200)
  t.same(read.json().days, [{ date: '2026-03-03', requests: 0 }])
})
