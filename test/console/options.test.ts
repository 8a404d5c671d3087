import Fastify from 'fastify'
import t from 'tap'
import keygate from '../../lib/index.js'
import { type KeygateOptions, resolveOptions } from '../../lib/options.js'

// Option `console`: off by default, `true` for /keys-console, `{ path }` elsewhere; anything else
// fails registration with the coded options error, never a silent default.

const db = { connectionString: 'postgres://127.0.0.1/unused' }

t.test('console: false by default, true is /keys-console, { path } is that path', async (t) => {
  t.equal(resolveOptions({ db }).console, false)
  t.equal(resolveOptions({ db, console: false }).console, false)
  t.same(resolveOptions({ db, console: true }).console, { path: '/keys-console' })
  t.same(resolveOptions({ db, console: {} }).console, { path: '/keys-console' })
  t.same(resolveOptions({ db, console: { path: '/admin/api-keys' } }).console, { path: '/admin/api-keys' })
  t.ok(Object.isFrozen(resolveOptions({ db, console: true }).console), 'frozen like the rest')
})

t.test('a bad console value throws FST_KEYGATE_INVALID_OPTION with its exact message', async (t) => {
  const path = 'Invalid keygate option "console.path": expected a path like /keys-console: segments of letters, digits, ".", "_", "~" and "-", no trailing "/"'
  const cases: Array<[Partial<KeygateOptions>, string]> = [
    [{ console: 'yes' as never }, 'Invalid keygate option "console": expected true, false or { path }'],
    [{ console: null as never }, 'Invalid keygate option "console": expected true, false or { path }'],
    [{ console: { port: 8080 } as never }, 'Invalid keygate option "console": expected true, false or { path }'],
    [{ console: { path: 'keys-console' } }, path],
    [{ console: { path: '/keys-console/' } }, path],
    [{ console: { path: '/' } }, path],
    [{ console: { path: '/keys console' } }, path],
    [{ console: { path: '/keys/"><script>' } }, path],
    [{ console: { path: 42 as never } }, path],
    [{ console: { path: '/api/v1/keys' } }, 'Invalid keygate option "console.path": must not be the management routes\' prefix (/api/v1/keys), inside it, or around it'],
    [{ console: { path: '/api/v1/keys/console' } }, 'Invalid keygate option "console.path": must not be the management routes\' prefix (/api/v1/keys), inside it, or around it'],
    [{ console: { path: '/api' } }, 'Invalid keygate option "console.path": must not be the management routes\' prefix (/api/v1/keys), inside it, or around it'],
    [{ console: true, routes: false }, 'Invalid keygate option "console": needs the management routes (routes: true): the page calls them']
  ]
  for (const [overrides, message] of cases) {
    t.throws(() => resolveOptions({ db, ...overrides }), { code: 'FST_KEYGATE_INVALID_OPTION', message }, message)
  }
})

t.test('registration fails with it: ready() rejects', async (t) => {
  const app = Fastify()
  t.teardown(async () => await app.close())
  void app.register(keygate, { db, console: { path: 'nope' } })
  await t.rejects(async () => await app.ready(), { code: 'FST_KEYGATE_INVALID_OPTION', message: /"console\.path"/ })
})
