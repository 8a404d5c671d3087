import t from 'tap'
import { keygateCli } from '../helpers/cli.js'
import { DATABASE_URL, usingPostgres } from '../helpers/database.js'

// Nothing listens on port 1: the connection is refused at once.
const UNREACHABLE = 'postgres://nobody@127.0.0.1:1/x'
const REFUSED = 'keygate: cannot reach the database: connect ECONNREFUSED 127.0.0.1:1\n'

t.test('an unreachable database: exit 1, one clear line, no stack, and no wait', async (t) => {
  for (const argv of [['migrate'], ['keys', 'list'], ['keys', 'create', '--name', 'a'], ['keys', 'delete', 'a'], ['audit', 'export']]) {
    const started = Date.now()
    t.same(await keygateCli(argv, { DATABASE_URL: UNREACHABLE }), { code: 1, stdout: '', stderr: REFUSED }, argv.join(' '))
    // A guard against a hang, not a speed measure: well inside the pool's 5 s connect timeout.
    t.ok(Date.now() - started < 5_000, `${argv.join(' ')} gave up at once`)
  }
  t.same(await keygateCli(['keys', 'list', '--database-url', UNREACHABLE]), { code: 1, stdout: '', stderr: REFUSED }, '--database-url')
})

t.test('--database-url wins over DATABASE_URL', { skip: usingPostgres ? false : 'needs DATABASE_URL' }, async (t) => {
  t.same(await keygateCli(['keys', 'list', '--database-url', DATABASE_URL as string, '--schema', 'keygate_cli_never_created'], { DATABASE_URL: UNREACHABLE }), {
    code: 1,
    stdout: '',
    stderr: 'keygate: schema keygate_cli_never_created needs migrating (5 pending: 001_api_keys, 002_scopes_and_plans, 003_lifecycle, 004_tenants_and_owners, 005_audit_events); run keygate migrate first\n'
  }, 'it reached the server named by the flag, and created nothing there')
})

t.test('a server that answers but refuses: exit 1, its reason and SQLSTATE', { skip: usingPostgres ? false : 'needs DATABASE_URL' }, async (t) => {
  const url = new URL(DATABASE_URL as string)
  url.pathname = '/keygate_cli_no_such_database'
  t.same(await keygateCli(['keys', 'list', '--database-url', url.href]), {
    code: 1,
    stdout: '',
    stderr: 'keygate: database error: database "keygate_cli_no_such_database" does not exist (SQLSTATE 3D000)\n'
  })
})

t.test('a bad --schema is a usage error, before any query', async (t) => {
  t.same(await keygateCli(['keys', 'list', '--database-url', UNREACHABLE, '--schema', 'Bad-Schema']), {
    code: 2,
    stdout: '',
    stderr: 'keygate: Invalid keygate option "schema": expected a lower-case PostgreSQL identifier: letters, digits and _, at most 63 (invalid_option)\n'
  })
})
