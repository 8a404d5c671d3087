import t from 'tap'
import { createKeyRecordMapper } from '../../lib/records/key-info.js'
import { buildApp, buildAppWithDatabase, countingHasher } from '../helpers/app.js'

t.test('the programmatic API validates like the routes and throws coded errors', async (t) => {
  const app = await buildApp(t, { keygate: { routes: false, maxKeys: 2 } })
  const created = await app.keygate.createKey({ name: 'signup-123', keyFor: 'AWS', prefix: 'mlo' })
  t.match(created, { name: 'signup-123', for: 'AWS' })
  t.match(created.apiKey, /^mlo_[0-9A-Za-z]{32}$/)

  const input = { name: 'untouched' }
  await app.keygate.createKey(input)
  t.same(input, { name: 'untouched' }, 'the caller\'s object is not changed')

  const cases: Array<[unknown, { code: string, statusCode?: number, message?: string }]> = [
    [{ name: 'third' }, { code: 'FST_KEYGATE_KEY_LIMIT_REACHED', statusCode: 400 }],
    [{}, { code: 'FST_KEYGATE_KEY_NAME_REQUIRED', statusCode: 400, message: 'Key name is required.' }],
    [undefined, { code: 'FST_KEYGATE_KEY_NAME_REQUIRED' }],
    [{ name: 'x', keyFor: 'toString' }, { code: 'FST_KEYGATE_KEY_FOR_INVALID' }],
    [{ name: 'x', prefix: 'sk' }, { code: 'FST_KEYGATE_KEY_PREFIX_INVALID', message: 'The key prefix must be one of the following: metlo, mlo' }],
    [{ name: 'x', extra: 1 }, { code: 'FST_KEYGATE_INVALID_REQUEST' }]
  ]
  for (const [body, expected] of cases) {
    await t.rejects(app.keygate.createKey(body as never), expected, JSON.stringify(body))
  }
  await app.keygate.deleteKey('untouched')
  await t.rejects(app.keygate.createKey({ name: 'signup-123' }), { code: 'FST_KEYGATE_KEY_NAME_TAKEN', message: 'Can not create key with name signup-123' })
  await t.rejects(app.keygate.deleteKey('untouched'), { code: 'FST_KEYGATE_KEY_NOT_FOUND', statusCode: 404, message: 'Did not find any matching keys for untouched' })
  t.same((await app.keygate.listKeys()).map((k) => k.name), ['signup-123'])
  t.same(await app.keygate.listOnboardingKeys(), [])
})

t.test('a host-configured prefix list: the first is issued', async (t) => {
  const app = await buildApp(t, { keygate: { prefixes: ['acme', 'mlo'] } })
  const { apiKey, identifier } = await app.keygate.createKey({ name: 'k' })
  t.match(apiKey, /^acme_[0-9A-Za-z]{32}$/)
  t.match(identifier, /^acme\.[0-9A-Za-z]{8}$/)
  const res = await app.inject({ url: '/api/v1/keys/list', headers: { authorization: apiKey } })
  t.equal(res.statusCode, 200)
  const { generateKey } = await import('../../lib/keys/key-text.js')
  const metlo = await app.inject({ url: '/api/v1/keys/list', headers: { authorization: generateKey('metlo').text } })
  t.equal(metlo.statusCode, 401, 'metlo is not accepted unless configured')
})

t.test('a drawn key id already taken means a new draw; five taken ones fail', async (t) => {
  const { app, database } = await buildAppWithDatabase(t)
  const taken = (await app.keygate.createKey({ name: 'holder' })).apiKey
  const real = await import('../../lib/keys/key-text.js')
  // Key ids come from node:crypto; to land on a taken one the test replays the holder's key.
  let collisions = 1
  const { createKeygateApi } = await t.mockImport<typeof import('../../lib/api/keygate-api.js')>('../../lib/api/keygate-api.js', {
    '../../lib/keys/key-text.js': { ...real, generateKey: (prefix: string) => collisions-- > 0 ? real.parseKey(taken, new Set([prefix])) : real.generateKey(prefix) }
  })
  const { hasher, counts } = countingHasher()
  const api = createKeygateApi({
    db: database.db.withSchema(database.schema),
    migrate: async () => {},
    flushUsage: async () => {},
    runAuditJob: async () => {},
    hasher,
    choices: { prefixes: ['metlo'], grantableScopes: ['*'], plans: ['free'] },
    defaultPlan: 'free',
    planOf: () => ({ perMinute: 60 }),
    toKeyRecord: createKeyRecordMapper(() => ({ perMinute: 60 })),
    maxKeys: 50,
    lockSpace: '',
    maxLifetimeDays: undefined,
    rotateAfterDays: 90,
    maxGracePeriodSeconds: 604_800,
    now: Date.now
  })
  const created = await api.createKey({ name: 'second' })
  t.not(created.apiKey, taken)
  t.equal(counts.hash, 2, 'one hash for the taken id, one for the new draw')
  collisions = 5
  await t.rejects(api.createKey({ name: 'third' }), { message: 'Could not draw an unused key id' })
  t.same((await api.listKeys()).map((key) => key.name), ['holder', 'second'])
})
