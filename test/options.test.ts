import Fastify from 'fastify'
import t from 'tap'
import keygate, { type KeygateOptions } from '../lib/index.js'
import { DEFAULTS, resolveOptions } from '../lib/options.js'
import { openTestDatabase } from './helpers/database.js'

t.test('defaults', async (t) => {
  const { db } = await openTestDatabase()
  const resolved = resolveOptions({ db })
  t.equal(resolved.db, db, 'a host Kysely is used as it is')
  t.equal(resolved.migrate, true)
  t.same(resolved.prefixes, ['metlo', 'mlo'])
  t.equal(resolved.routePrefix, '/api/v1/keys')
  t.equal(resolved.routes, true)
  t.equal(resolved.maxKeys, 50)
  t.equal(resolved.schema, undefined)
  t.same(resolved.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 })
  t.equal(resolved.secret.length, 32, 'a random 32-byte secret')
  t.not(resolveOptions({ db }).secret.equals(resolved.secret), true, 'drawn anew each time')
  t.equal(resolved.now, Date.now)
  t.equal(Object.isFrozen(resolved), true)
  t.equal(Object.isFrozen(DEFAULTS.prefixes), true)
  t.same(resolveOptions({ db, argon2: { timeCost: 3 } }).argon2, { memoryCost: 19456, timeCost: 3, parallelism: 1 }, 'argon2 merges')
  t.same(resolveOptions({ db: { connectionString: 'postgres://x' } }).db, { connectionString: 'postgres://x' })
})

t.test('a bad option fails ready() with a coded error naming the option', async (t) => {
  const { db } = await openTestDatabase()
  const cases: Array<[string, Partial<KeygateOptions> | undefined, RegExp]> = [
    ['db', { db: undefined as never }, /^Invalid keygate option "db": expected a Kysely instance or \{ connectionString \}$/],
    ['db string', { db: 'postgres://x' as never }, /"db"/],
    ['db empty string', { db: { connectionString: '' } }, /"db"/],
    ['prefixes empty', { prefixes: [] }, /"prefixes": expected a non-empty array of strings/],
    ['prefix with underscore', { prefixes: ['my_app'] }, /"prefixes": "my_app" must be 1 to 16 lower-case letters/],
    ['prefix upper case', { prefixes: ['Metlo'] }, /"prefixes"/],
    ['prefix too long', { prefixes: ['a'.repeat(17)] }, /"prefixes"/],
    ['duplicate prefix', { prefixes: ['mlo', 'mlo'] }, /"prefixes": contains a duplicate/],
    ['routePrefix', { routePrefix: 'keys' }, /"routePrefix"/],
    ['routePrefix trailing slash', { routePrefix: '/keys/' }, /"routePrefix"/],
    ['routes', { routes: 'no' as never }, /"routes": expected true or false/],
    ['migrate', { migrate: 0 as never }, /"migrate"/],
    ['maxKeys zero', { maxKeys: 0 }, /"maxKeys": expected a positive integer/],
    ['maxKeys fraction', { maxKeys: 1.5 }, /"maxKeys"/],
    ['maxKeys string', { maxKeys: '50' as never }, /"maxKeys"/],
    ['secret short', { secret: 'short' }, /"secret": expected a string or Buffer of at least 32 bytes/],
    ['secret number', { secret: 42 as never }, /"secret"/],
    ['argon2 cost', { argon2: { timeCost: 0 } }, /"argon2\.timeCost"/],
    ['argon2 memory', { argon2: { memoryCost: 4 } }, /"argon2\.memoryCost"/],
    ['schema', { schema: 'Bad-Schema' }, /"schema"/],
    ['now', { now: 5 as never }, /"now"/]
  ]
  for (const [label, overrides, message] of cases) {
    const app = Fastify()
    void app.register(keygate, { db, ...overrides } as KeygateOptions)
    await t.rejects(async () => await app.ready(), { code: 'FST_KEYGATE_INVALID_OPTION', message }, label)
    await app.close()
  }
})

t.test('argon2 concurrency and queue: defaults and bad values', async (t) => {
  const { db } = await openTestDatabase()
  const resolved = resolveOptions({ db })
  t.equal(resolved.hashConcurrency, Number(process.env.UV_THREADPOOL_SIZE ?? 4), "libuv's thread-pool size")
  t.equal(resolved.hashQueue, 100)
  t.equal(resolveOptions({ db, hashQueue: 0 }).hashQueue, 0, 'no queue at all is allowed')
  const cases: Array<[Partial<KeygateOptions>, string]> = [
    [{ hashConcurrency: 0 }, 'Invalid keygate option "hashConcurrency": expected a positive integer'],
    [{ hashConcurrency: 2.5 }, 'Invalid keygate option "hashConcurrency": expected a positive integer'],
    [{ hashQueue: -1 }, 'Invalid keygate option "hashQueue": expected a whole number, 0 or more'],
    [{ hashQueue: '10' as never }, 'Invalid keygate option "hashQueue": expected a whole number, 0 or more']
  ]
  for (const [overrides, message] of cases) {
    t.throws(() => resolveOptions({ db, ...overrides }), { code: 'FST_KEYGATE_INVALID_OPTION', message }, message)
  }
})
