import t from 'tap'
import { testClock } from '../helpers/app.js'
import { database, heard, instance } from '../helpers/instance.js'
import { keyIdOf } from '../helpers/keys.js'
import { needsRedis } from '../helpers/redis.js'

// Issue 13, expiry: `expiresAt` or `expiresInDays` on create, capped by `maxLifetimeDays`; from
// that instant the key gets the contract's 401 on every instance, with no database read.

const UNAUTHORIZED = { error: 'unauthorized', message: 'Client unauthorized' }
const DAY = 86_400_000
const expiryInvalid = (message: string) => ({ error: 'expiry_invalid', message })

t.test('a key made with expiresInDays works until that instant and gets 401 from it, without a read', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const created = await a.app.keygate.createKey({ name: 'short', expiresInDays: 2 })
  t.equal(created.expires, new Date(clock.now() + 2 * DAY).toISOString())
  t.equal((await a.app.keygate.listKeys())[0]?.expires, created.expires, 'listed with it')
  t.equal((await a.call(created.apiKey)).statusCode, 200)

  clock.advance(2 * DAY - 1)
  const lastMoment = await a.call(created.apiKey)
  t.equal(lastMoment.statusCode, 200, 'the millisecond before (re-read: its freshness had ended)')
  const reads = a.selects()
  clock.advance(1)
  const expired = await a.call(created.apiKey)
  t.equal(expired.statusCode, 401)
  t.same(expired.json(), UNAUTHORIZED)
  t.equal(expired.headers['www-authenticate'], 'Bearer')
  t.equal(a.selects(), reads, 'the cached record knew: no database read')
  t.equal((await a.call(created.apiKey)).statusCode, 401, 'and it stays refused')
})

t.test('expiresAt: the instant given; an expired key is refused on first use without argon2', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const at = new Date(clock.now() + 3_600_000)
  const created = await a.app.keygate.createKey({ name: 'dated', expiresAt: at.toISOString().replace('.000Z', '+00:00') })
  t.equal(created.expires, at.toISOString(), 'stored and shown in UTC')
  const offset = await a.app.keygate.createKey({ name: 'offset', expiresAt: '2026-03-03T15:00:00+02:00' })
  t.equal(offset.expires, '2026-03-03T13:00:00.000Z', 'a time zone offset is honoured')

  clock.advance(3_600_000)
  const verifications = a.counts.verify
  t.equal((await a.call(created.apiKey)).statusCode, 401, 'never used before it expired')
  t.equal(a.counts.verify, verifications, 'refused on its row, with no argon2 run')
})

t.test('create refuses a bad expiry with the envelope\'s 400', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  const cases: Array<[string, object, object]> = [
    ['in the past', { expiresAt: '2026-03-03T11:59:59Z' }, expiryInvalid('expiresAt must be in the future.')],
    ['now is not the future', { expiresAt: '2026-03-03T12:00:00Z' }, expiryInvalid('expiresAt must be in the future.')],
    ['both', { expiresAt: '2027-01-01T00:00:00Z', expiresInDays: 3 }, expiryInvalid('Give expiresAt or expiresInDays, not both.')],
    ['no time zone', { expiresAt: '2027-01-01T00:00:00' }, expiryInvalid('expiresAt must be an ISO 8601 date-time with a time zone, like 2027-01-31T00:00:00Z.')],
    ['a date only', { expiresAt: '2027-01-01' }, expiryInvalid('expiresAt must be an ISO 8601 date-time with a time zone, like 2027-01-31T00:00:00Z.')],
    ['a number', { expiresAt: 1_800_000_000_000 }, expiryInvalid('expiresAt must be an ISO 8601 date-time with a time zone, like 2027-01-31T00:00:00Z.')],
    ['February 31st', { expiresAt: '2027-02-31T00:00:00Z' }, expiryInvalid('expiresAt is not a date and time that exist: 2027-02-31T00:00:00Z.')],
    ['hour 24', { expiresAt: '2027-01-01T24:00:00Z' }, expiryInvalid('expiresAt is not a date and time that exist: 2027-01-01T24:00:00Z.')],
    ['zero days', { expiresInDays: 0 }, expiryInvalid('expiresInDays must be a whole number of days, 1 or more.')],
    ['a fraction', { expiresInDays: 1.5 }, expiryInvalid('expiresInDays must be a whole number of days, 1 or more.')],
    ['a string', { expiresInDays: '3' }, expiryInvalid('expiresInDays must be a whole number of days, 1 or more.')]
  ]
  for (const [label, body, expected] of cases) {
    const res = await a.call(admin, 'POST', '/api/v1/keys/create', { name: 'k', ...body })
    t.equal(res.statusCode, 400, label)
    t.same(res.json(), expected, label)
  }
  t.same((await a.app.keygate.listKeys()).map((k) => k.name), ['admin'], 'nothing was created')
})

t.test('maxLifetimeDays caps both ways of asking and gives keys made without either that lifetime', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now, maxLifetimeDays: 30 })
  const tooLong = { code: 'FST_KEYGATE_EXPIRY_INVALID', statusCode: 400, message: 'A key may live at most 30 days (option maxLifetimeDays).' }
  await t.rejects(a.app.keygate.createKey({ name: 'k', expiresInDays: 31 }), tooLong)
  await t.rejects(a.app.keygate.createKey({ name: 'k', expiresAt: new Date(clock.now() + 30 * DAY + 1).toISOString() }), tooLong)
  t.equal((await a.app.keygate.createKey({ name: 'max', expiresInDays: 30 })).expires, new Date(clock.now() + 30 * DAY).toISOString(), 'exactly the cap is allowed')
  t.equal((await a.app.keygate.createKey({ name: 'plain' })).expires, new Date(clock.now() + 30 * DAY).toISOString(), 'no expiry asked: the longest allowed')
  await t.rejects(a.app.keygate.updateKey('plain', { expiresAt: null }), tooLong, 'nor can an update take the expiry away')
})

t.test('a caller that expires, without *, cannot make or change a key to outlive it', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now })
  const caller = await a.app.keygate.createKey({ name: 'temp-admin', scopes: ['keys:write', 'keys:read', 'query'], expiresInDays: 7 })
  const refused = { error: 'expiry_exceeds_caller', message: `API key expires at ${caller.expires as string} and cannot make a key that outlives it` }
  for (const body of [{ name: 'forever', scopes: ['query'] }, { name: 'longer', scopes: ['query'], expiresInDays: 8 }]) {
    const res = await a.call(caller.apiKey, 'POST', '/api/v1/keys/create', body)
    t.equal(res.statusCode, 403, body.name)
    t.same(res.json(), refused, body.name)
  }
  const within = await a.call(caller.apiKey, 'POST', '/api/v1/keys/create', { name: 'within', scopes: ['query'], expiresInDays: 7 })
  t.equal(within.statusCode, 200, 'as long as itself is fine')
  const extend = await a.call(caller.apiKey, 'PATCH', '/api/v1/keys/within', { expiresAt: null })
  t.equal(extend.statusCode, 403)
  t.same(extend.json(), refused, 'an update cannot take the expiry away either')
  const self = await a.call(caller.apiKey, 'PATCH', '/api/v1/keys/temp-admin', { expiresAt: '2030-01-01T00:00:00Z' })
  t.same([self.statusCode, self.json()], [403, refused], 'nor extend its own')
})

t.test('listings say rotationDue once a key is older than rotateAfterDays', async (t) => {
  const clock = testClock()
  const a = await instance(t, await database(t), { now: clock.now, rotateAfterDays: 90 })
  await a.app.keygate.createKey({ name: 'k' })
  clock.advance(90 * DAY - 1)
  t.equal((await a.app.keygate.listKeys())[0]?.rotationDue, false)
  clock.advance(1)
  t.equal((await a.app.keygate.listKeys())[0]?.rotationDue, true, 'from 90 days on')
  const rotated = await a.app.keygate.rotateKey('k')
  t.equal(rotated.rotationDue, false, 'a rotation makes a new text, due again in 90 days')
})

t.test('with Redis: a key expires on every instance at the same instant, none reading the database', { skip: needsRedis }, async (t) => {
  const clock = testClock()
  const db = await database(t)
  const a = await instance(t, db, { withRedis: true, now: clock.now })
  const b = await instance(t, db, { withRedis: true, now: clock.now })
  const created = await a.app.keygate.createKey({ name: 'shared', expiresInDays: 1 })
  t.equal((await a.call(created.apiKey)).statusCode, 200)
  t.equal((await b.call(created.apiKey)).statusCode, 200, 'b found it in the shared level')
  clock.advance(DAY)
  const reads = [a.selects(), b.selects()]
  t.equal((await a.call(created.apiKey)).statusCode, 401)
  t.equal((await b.call(created.apiKey)).statusCode, 401)
  t.same([a.selects(), b.selects()], reads, 'neither read the database')
  // Extending an expired key brings it back everywhere at its next request.
  const changed = heard(b.app, keyIdOf(created.apiKey))
  await a.app.keygate.updateKey('shared', { expiresAt: new Date(clock.now() + DAY).toISOString() })
  await changed
  t.equal((await b.call(created.apiKey)).statusCode, 200, 'b re-read it')
})
