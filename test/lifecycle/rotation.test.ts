import t from 'tap'
import { testClock } from '../helpers/app.js'
import { database, heard, instance } from '../helpers/instance.js'
import { keyIdOf } from '../helpers/keys.js'
import { needsRedis } from '../helpers/redis.js'

// Issue 13, rotation: POST {prefix}/:name/rotate gives the same key a new text; the old one
// works for the grace period, telling its client with Deprecation and Sunset, then gets 401.

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const HOUR = 3_600_000

t.test('rotate with a grace period: a new text with every setting, the old one deprecated until its sunset', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  const original = await a.app.keygate.createKey({
    name: 'svc', keyFor: 'AWS', prefix: 'mlo', scopes: ['query'], plan: 'pro', rateLimit: { perMinute: 7 }, expiresInDays: 30
  })
  clock.advance(1000)
  const res = await a.call(admin, 'POST', '/api/v1/keys/svc/rotate', { gracePeriodSeconds: 3600 })
  t.equal(res.statusCode, 200)
  const rotated = res.json()
  t.match(rotated.apiKey, /^mlo_[0-9A-Za-z]{32}$/, 'same prefix')
  t.not(rotated.apiKey, original.apiKey)
  const sunset = new Date(clock.now() + HOUR).toISOString()
  t.same(rotated, {
    apiKey: rotated.apiKey,
    name: 'svc',
    identifier: `mlo.${keyIdOf(rotated.apiKey)}`,
    created: new Date(clock.now()).toISOString(),
    for: 'AWS',
    scopes: ['query'],
    plan: 'pro',
    limits: { perMinute: 7, perHour: 10_000 },
    expires: original.expires,
    owner: null,
    serviceAccount: true,
    rotationDue: false,
    rotatingFrom: { identifier: original.identifier, sunset },
    lastUsed: null,
    requests: 0,
    credits: null
  }, 'the same name, type, scopes, plan, limits and expiry; a new identifier')

  const old = await a.call(original.apiKey, 'GET', '/data')
  t.equal(old.statusCode, 200, 'the old text still works')
  t.equal(old.headers.deprecation, `@${Math.floor((clock.now()) / 1000)}`, 'Deprecation: since the rotation (RFC 9745)')
  t.equal(old.headers.sunset, new Date(clock.now() + HOUR).toUTCString(), 'Sunset: when the grace ends (RFC 8594)')
  t.same(old.json(), { scopes: ['query'] })
  const fresh = await a.call(rotated.apiKey, 'GET', '/data')
  t.equal(fresh.statusCode, 200)
  t.equal(fresh.headers.deprecation, undefined, 'the new text carries neither')
  t.equal(fresh.headers.sunset, undefined)

  const listed = await a.call(admin, 'GET', '/api/v1/keys/list')
  const svc = listed.json().filter((k: { name: string }) => k.name === 'svc')
  t.same(svc.map((k: { identifier: string, rotatingFrom: unknown }) => [k.identifier, k.rotatingFrom]),
    [[rotated.identifier, { identifier: original.identifier, sunset }]], 'one entry, the live one, naming the old while its grace lasts')

  clock.advance(HOUR - 1)
  t.equal((await a.call(original.apiKey)).statusCode, 200, 'a millisecond before the sunset')
  const reads = a.selects()
  clock.advance(1)
  const after = await a.call(original.apiKey)
  t.same([after.statusCode, after.json()], [401, UNAUTHORIZED], 'from the sunset on, 401')
  t.equal(a.selects(), reads, 'known from the cached record, no read')
  t.equal((await a.call(rotated.apiKey)).statusCode, 200)
  t.same((await a.app.keygate.listKeys()).find((k) => k.name === 'svc')?.rotatingFrom, null, 'the listing forgets it')
})

t.test('rotate without a grace period (or a body): the old text gets 401 at its next request', async (t) => {
  const a = await instance(t, await database(t))
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  const original = (await a.app.keygate.createKey({ name: 'svc' })).apiKey
  t.equal((await a.call(original)).statusCode, 200, 'cached')
  const res = await a.app.inject({ method: 'POST', url: '/api/v1/keys/svc/rotate', headers: { authorization: admin } })
  t.equal(res.statusCode, 200, 'no body at all is the defaults')
  t.equal(res.json().rotatingFrom, null)
  t.same((await a.call(original)).json(), UNAUTHORIZED)
  t.equal((await a.call(res.json().apiKey)).statusCode, 200)
})

t.test('rate-limit windows carry over: a rotation does not reset them', async (t) => {
  const a = await instance(t, await database(t))
  const original = (await a.app.keygate.createKey({ name: 'svc', rateLimit: { perMinute: 5 } })).apiKey
  for (let i = 0; i < 3; i++) await a.call(original)
  const rotated = await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 60 })
  t.equal((await a.call(rotated.apiKey)).headers['x-ratelimit-remaining'], '1', 'the fourth request of the minute')
  t.equal((await a.call(original)).headers['x-ratelimit-remaining'], '0', 'the old text counts in the same window')
  t.equal((await a.call(rotated.apiKey)).statusCode, 429, 'two texts cannot double the limit')
})

t.test('one old text at a time: a second rotation ends the first one\'s grace; a delete ends every text', async (t) => {
  const a = await instance(t, await database(t))
  const first = (await a.app.keygate.createKey({ name: 'svc' })).apiKey
  const second = (await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 3600 })).apiKey
  t.equal((await a.call(first)).statusCode, 200)
  const third = await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 3600 })
  t.equal((await a.call(first)).statusCode, 401, 'the first text stops at the second rotation')
  t.equal((await a.call(second)).statusCode, 200, 'the second is now the old one, in its grace')
  t.equal(third.rotatingFrom?.identifier, `metlo.${keyIdOf(second)}`)
  await a.app.keygate.deleteKey('svc')
  t.same([(await a.call(second)).statusCode, (await a.call(third.apiKey)).statusCode], [401, 401], 'deleted: the old text too')
  t.same(await a.app.keygate.listKeys(), [])
})

t.test('rotation refuses what it must, in the envelope', async (t) => {
  const a = await instance(t, await database(t), { maxGracePeriodSeconds: 600 })
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  await a.app.keygate.createKey({ name: 'svc' })
  const grace = { error: 'grace_period_invalid', message: 'gracePeriodSeconds must be a whole number of seconds from 0 to 600.' }
  const cases: Array<[string, unknown, number, object]> = [
    ['beyond maxGracePeriodSeconds', { gracePeriodSeconds: 601 }, 400, grace],
    ['negative', { gracePeriodSeconds: -1 }, 400, grace],
    ['a string', { gracePeriodSeconds: '60' }, 400, grace],
    ['a fraction', { gracePeriodSeconds: 1.5 }, 400, grace],
    ['an unknown property', { gracePeriodSeconds: 1, name: 'other' }, 400, grace]
  ]
  for (const [label, body, status, expected] of cases) {
    const res = await a.call(admin, 'POST', '/api/v1/keys/svc/rotate', body as object)
    t.same([res.statusCode, res.json()], [status, expected], label)
  }
  const unknown = await a.call(admin, 'POST', '/api/v1/keys/nobody/rotate', {})
  t.same([unknown.statusCode, unknown.json()], [404, { error: 'key_not_found', message: 'Did not find any matching keys for nobody' }])
  const reads = a.selects()
  const invalid = await a.call(admin, 'POST', `/api/v1/keys/${'x'.repeat(129)}/rotate`, {})
  t.equal(invalid.statusCode, 404, 'a name no key can have')
  t.equal(a.selects(), reads, 'is refused without a query')
  const hashes = a.counts.hash
  await a.call(admin, 'POST', '/api/v1/keys/nobody/rotate', {})
  t.equal(a.counts.hash, hashes, 'an unknown name costs no argon2')
  const route = await a.call(admin, 'POST', '/api/v1/keys/svc/rotat', {})
  t.same([route.statusCode, route.json()], [404, { error: 'not_found', message: 'Route POST /api/v1/keys/svc/rotat not found.' }])
  t.equal((await a.app.keygate.listKeys()).find((k) => k.name === 'svc')?.rotatingFrom, null, 'nothing was rotated')
})

t.test('a caller rotates only keys whose permissions it holds', async (t) => {
  const a = await instance(t, await database(t))
  await a.app.keygate.createKey({ name: 'root' })
  const manager = (await a.app.keygate.createKey({ name: 'manager', scopes: ['keys:write', 'query'] })).apiKey
  await a.app.keygate.createKey({ name: 'reader', scopes: ['query'] })
  const refused = await a.call(manager, 'POST', '/api/v1/keys/root/rotate', {})
  t.same([refused.statusCode, refused.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: *' }])
  t.equal((await a.call(manager, 'POST', '/api/v1/keys/reader/rotate', {})).statusCode, 200, 'one within its own')
  const readOnly = (await a.app.keygate.createKey({ name: 'ro', scopes: ['keys:read'] })).apiKey
  const noWrite = await a.call(readOnly, 'POST', '/api/v1/keys/reader/rotate', {})
  t.same([noWrite.statusCode, noWrite.json()], [403, { error: 'insufficient_scope', message: 'API key lacks required permission: keys:write' }])
})

t.test('with Redis: another instance learns of a rotation at the old text\'s next request', { skip: needsRedis }, async (t) => {
  const db = await database(t)
  const a = await instance(t, db, { withRedis: true })
  const b = await instance(t, db, { withRedis: true })
  const original = (await a.app.keygate.createKey({ name: 'svc' })).apiKey
  t.equal((await b.call(original)).statusCode, 200, 'cached on b')

  let changed = heard(b.app, keyIdOf(original))
  const graced = await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 600 })
  await changed
  const during = await b.call(original)
  t.equal(during.statusCode, 200)
  t.equal(typeof during.headers.sunset, 'string', 'b tells the old text\'s client of its sunset')
  t.equal(during.headers.sunset, new Date(Date.parse(graced.rotatingFrom?.sunset as string)).toUTCString())
  t.equal((await b.call(graced.apiKey)).statusCode, 200)

  changed = heard(b.app, keyIdOf(graced.apiKey))
  const ended = heard(b.app, keyIdOf(original))
  const immediate = await a.app.keygate.rotateKey('svc')
  await Promise.all([changed, ended])
  t.same((await b.call(graced.apiKey)).json(), UNAUTHORIZED, 'no grace: 401 on b at once')
  t.same((await b.call(original)).json(), UNAUTHORIZED, 'and the text before it, whose grace the rotation ended')
  t.equal((await b.call(immediate.apiKey)).statusCode, 200)
})

t.test('concurrent changes to one key run one after another: every rotation succeeds, one old text remains', async (t) => {
  const a = await instance(t, await database(t))
  await a.app.keygate.createKey({ name: 'svc' })
  const results = await Promise.allSettled([
    ...Array.from({ length: 5 }, async () => await a.app.keygate.rotateKey('svc', { gracePeriodSeconds: 600 })),
    a.app.keygate.updateKey('svc', { scopes: ['query'] })
  ])
  t.same(results.map((r) => r.status), Array(6).fill('fulfilled'), 'none answered 404 for a key rotated meanwhile')
  const texts = results.slice(0, 5).map((r) => (r as PromiseFulfilledResult<{ apiKey: string }>).value.apiKey)
  const statuses = await Promise.all(texts.map(async (text) => (await a.call(text)).statusCode))
  t.same(statuses.filter((s) => s === 200).length, 2, 'the live text and the one old text in its grace')
  const listed = await a.app.keygate.listKeys()
  t.equal(listed.length, 1)
  t.same(listed[0]?.scopes, ['query'], 'the update landed on whichever text was live, and was carried on')
})
