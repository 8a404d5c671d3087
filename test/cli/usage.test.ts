import t from 'tap'
import { AUDIT_HELP, COMMAND_HELP, KEYS_HELP, TOP_HELP } from '../../lib/cli/help.js'
import { keygateCli } from '../helpers/cli.js'

// None of these opens a database: the command line is checked first, and no database is given.

t.test('help: asked for, on stdout with 0; given for a missing command, on stderr with 2', async (t) => {
  t.same(await keygateCli([]), { code: 2, stdout: '', stderr: TOP_HELP })
  t.same(await keygateCli(['--help']), { code: 0, stdout: TOP_HELP, stderr: '' })
  t.same(await keygateCli(['-h']), { code: 0, stdout: TOP_HELP, stderr: '' })
  t.same(await keygateCli(['keys']), { code: 2, stdout: '', stderr: KEYS_HELP })
  t.same(await keygateCli(['keys', '--help']), { code: 0, stdout: KEYS_HELP, stderr: '' })
  t.same(await keygateCli(['audit']), { code: 2, stdout: '', stderr: AUDIT_HELP })
  t.same(await keygateCli(['audit', '-h']), { code: 0, stdout: AUDIT_HELP, stderr: '' })
  t.same(Object.keys(COMMAND_HELP), ['migrate', 'keys create', 'keys list', 'keys delete', 'keys rotate', 'keys update', 'audit export'])
  for (const [command, help] of Object.entries(COMMAND_HELP)) {
    t.same(await keygateCli([...command.split(' '), '--help']), { code: 0, stdout: help, stderr: '' }, `${command} --help`)
    t.same(await keygateCli([...command.split(' '), '-h', '--pglite', '/nowhere']), { code: 0, stdout: help, stderr: '' }, `${command} -h wins over the rest`)
    t.ok(help.startsWith(`Usage: keygate ${command}`))
  }
})

const USAGE_ERRORS: Array<[string[], string]> = [
  [['--json'], 'missing command (see keygate --help)'],
  [['-x'], 'unknown option -x (see keygate --help)'],
  [['foo'], "unknown command 'foo' (see keygate --help)"],
  [['keys', 'lis'], "unknown command 'keys lis' (see keygate keys --help)"],
  [['audit', '--json'], 'missing subcommand of audit (see keygate audit --help)'],
  [['migrate', 'now'], "unexpected argument 'now' (see keygate migrate --help)"],
  [['migrate', '--tenant', 'a'], 'migrate takes no option --tenant (see keygate migrate --help)'],
  [['keys', 'create', '--foo'], 'unknown option --foo (see keygate keys create --help)'],
  [['keys', 'create'], '--name is required (see keygate keys create --help)'],
  [['keys', 'create', 'ci'], "unexpected argument 'ci' (see keygate keys create --help)"],
  [['keys', 'create', '--name'], '--name needs a value (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--name', 'b'], '--name given twice (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--for', 'AZURE'], '--for must be one of GCP, AWS, GENERIC, ONBOARDING: AZURE (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--expires-in-days', '0'], '--expires-in-days must be a whole number, 1 or more: 0 (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--per-minute', '1.5'], '--per-minute must be a whole number, 1 or more: 1.5 (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--expires-in-days', '1', '--expires-at', '2030-01-01T00:00:00Z'], 'give only one of --expires-in-days, --expires-at (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--expires-at', 'tomorrow'], '--expires-at must be an ISO 8601 date-time with a time zone, e.g. 2027-01-31T00:00:00Z: tomorrow (see keygate keys create --help)'],
  [['keys', 'create', '--name', 'a', '--scopes', 'query,,federate'], '--scopes takes scopes separated by commas, none empty (see keygate keys create --help)'],
  [['keys', 'list', '--json=yes'], '--json takes no value (see keygate keys list --help)'],
  [['keys', 'list', '--grace-period', '1h'], 'keys list takes no option --grace-period (see keygate keys list --help)'],
  [['keys', 'list'], 'no database: set DATABASE_URL, or give --database-url <url> or --pglite <dir> (see keygate keys list --help)'],
  [['keys', 'list', '--pglite', 'data', '--database-url', 'postgres://db/x'], 'give --database-url or --pglite, not both (see keygate keys list --help)'],
  [['keys', 'list', '--pglite', 'data', '--config', '/nonexistent/keygate.json'], 'cannot read --config /nonexistent/keygate.json: ENOENT (see keygate keys list --help)'],
  [['keys', 'delete'], 'missing the key name: keygate keys delete <name> (see keygate keys delete --help)'],
  [['keys', 'delete', 'a', 'b'], "unexpected argument 'b' (see keygate keys delete --help)"],
  [['keys', 'rotate', 'a', '--grace-period', '1w'], '--grace-period must be seconds, or a whole number with s, m, h or d (90m, 1d): 1w (see keygate keys rotate --help)'],
  [['keys', 'update', 'a'], 'nothing to change: give at least one option (see keygate keys update --help)'],
  [['keys', 'update', 'a', '--owner', 'x', '--no-owner'], 'give only one of --owner, --no-owner (see keygate keys update --help)'],
  [['keys', 'update', 'a', '--no-expiry', '--expires-in-days', '3'], 'give only one of --expires-in-days, --no-expiry (see keygate keys update --help)'],
  [['keys', 'update', 'a', '--no-rate-limit', '--per-hour', '3'], 'give --no-rate-limit or --per-minute/--per-hour, not both (see keygate keys update --help)'],
  [['audit', 'export', '--format', 'xml'], '--format must be ndjson or csv: xml (see keygate audit export --help)'],
  [['audit', 'export', '--action', 'key.exploded'], '--action must be one of key.created, key.updated, key.rotated, key.deleted, key.expired, access.denied: key.exploded (see keygate audit export --help)'],
  [['audit', 'export', '--since', 'yesterday'], '--since must be an ISO 8601 date-time with a time zone, e.g. 2027-01-31T00:00:00Z: yesterday (see keygate audit export --help)']
]

t.test('a wrong command line: exit 2, one line on stderr naming the help to read, nothing on stdout', async (t) => {
  for (const [argv, message] of USAGE_ERRORS) {
    t.same(await keygateCli(argv), { code: 2, stdout: '', stderr: `keygate: ${message}\n` }, argv.join(' '))
  }
})
