import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { cliDatabase, keygateCli, occurrences, whoami } from './cli.js'

const MIGRATIONS = '001_api_keys, 002_scopes_and_plans, 003_lifecycle, 004_tenants_and_owners, 005_audit_events'
const KEY_TEXT = /^(metlo|mlo)_[0-9A-Za-z]{32}$/

// Every keys command on one database, in the order an operator would use them. Split in three so
// that a PGlite run (it starts in seconds, once per command) stays within a test file's time.

/** migrate, create (human and --json) and list; the key created works. */
export async function createAndList (t: Test, backend: string): Promise<void> {
  const database = await cliDatabase(t, backend)
  const cli = async (...argv: string[]) => await keygateCli([...argv, ...database.args])

  t.same(await cli('keys', 'list'), {
    code: 1,
    stdout: '',
    stderr: backend === 'pglite'
      ? `keygate: this database needs migrating (5 pending: ${MIGRATIONS}); run keygate migrate first\n`
      : `keygate: schema ${database.args[3] as string} needs migrating (5 pending: ${MIGRATIONS}); run keygate migrate first\n`
  }, 'an un-migrated database is refused, and left alone')
  t.same(await cli('migrate'), { code: 0, stdout: `Applied 5 migrations: ${MIGRATIONS}.\n`, stderr: '' })
  t.same(await cli('migrate'), { code: 0, stdout: 'The database is up to date: nothing to migrate.\n', stderr: '' })
  t.same(await cli('migrate', '--json'), { code: 0, stdout: '{"applied":[]}\n', stderr: '' })
  t.same(await cli('keys', 'list'), { code: 0, stdout: 'No keys in tenant default.\n', stderr: '' })
  t.same(await cli('keys', 'list', '--json'), { code: 0, stdout: '[]\n', stderr: '' })

  // create, human: the key once, on its own last line, on stdout only.
  const created = await cli('keys', 'create', '--name', 'ci', '--scopes', 'query,keys:read', '--plan', 'pro', '--owner', 'alice')
  t.equal(created.code, 0)
  t.equal(created.stderr, '')
  const key = created.stdout.trimEnd().split('\n').pop() as string
  t.match(key, KEY_TEXT)
  t.equal(occurrences(created.stdout, key), 1, 'printed once')
  const [listed] = JSON.parse((await cli('keys', 'list', '--json')).stdout)
  t.equal(listed.identifier, `metlo.${key.slice(6, 14)}`)
  t.equal(created.stdout, [
    'Created key ci in tenant default.',
    `  identifier ${listed.identifier as string}`,
    '  for        GENERIC',
    '  scopes     query, keys:read',
    '  plan       pro (300/min, 10000/h)',
    '  owner      alice',
    '  expires    never',
    `  created    ${listed.created as string}`,
    '',
    'API key (shown once, store it now):',
    key,
    ''
  ].join('\n'))
  t.same(listed, {
    name: 'ci',
    identifier: listed.identifier,
    created: listed.created,
    for: 'GENERIC',
    scopes: ['query', 'keys:read'],
    plan: 'pro',
    limits: { perMinute: 300, perHour: 10000 },
    expires: null,
    owner: 'alice',
    serviceAccount: false,
    rotationDue: false,
    rotatingFrom: null,
    lastUsed: null,
    requests: 0,
    credits: null
  })

  // The key works: an app on the same database lets it in.
  let app = await database.app()
  t.same(await whoami(app, key), { status: 200, body: { name: 'ci' } })
  await app.close()

  // create, --json: the API's answer, the key in it once.
  const second = await cli('keys', 'create', '--name', 'deploy', '--for', 'AWS', '--expires-in-days', '30', '--per-minute', '5', '--json')
  t.equal(second.code, 0)
  t.equal(second.stderr, '')
  const answer = JSON.parse(second.stdout)
  t.match(answer.apiKey, KEY_TEXT)
  t.equal(occurrences(second.stdout, answer.apiKey), 1)
  t.equal(second.stdout, JSON.stringify(answer) + '\n', 'one line of JSON')
  t.same({ ...answer, apiKey: 'k', identifier: 'i', created: 'c', expires: 'e' }, {
    apiKey: 'k',
    name: 'deploy',
    identifier: 'i',
    created: 'c',
    for: 'AWS',
    scopes: ['*'],
    plan: 'free',
    limits: { perMinute: 5, perHour: 1000 },
    expires: 'e',
    owner: null,
    serviceAccount: true,
    rotationDue: false,
    rotatingFrom: null,
    lastUsed: null,
    requests: 0,
    credits: null
  })
  t.equal(Date.parse(answer.expires) - Date.parse(answer.created), 30 * 86_400_000)

  // list, human: a table, oldest first, no key text. The app above counted one use of ci.
  const lastUsed = JSON.parse((await cli('keys', 'list', '--json')).stdout)[0].lastUsed as string
  t.equal(Number.isNaN(Date.parse(lastUsed)), false)
  const table = await cli('keys', 'list')
  t.equal(table.code, 0)
  t.equal(table.stdout, [
    'NAME    IDENTIFIER      FOR      SCOPES           PLAN  OWNER  EXPIRES                   LAST USED',
    `ci      ${listed.identifier as string}  GENERIC  query,keys:read  pro   alice  never                     ${lastUsed}`,
    `deploy  ${answer.identifier as string}  AWS      *                free  -      ${answer.expires as string}  never`,
    ''
  ].join('\n'))
  t.equal(occurrences(table.stdout, key) + occurrences(table.stdout, answer.apiKey), 0)
  t.same(await cli('keys', 'list', '--owner', 'alice', '--json').then((r) => JSON.parse(r.stdout).map((k: { name: string }) => k.name)), ['ci'])
  t.same(await cli('keys', 'list', '--tenant', 'acme'), { code: 0, stdout: 'No keys in tenant acme.\n', stderr: '' })
}

/** update, rotate and delete, on keys made with create --json. */
export async function updateRotateDelete (t: Test, backend: string): Promise<void> {
  const database = await cliDatabase(t, backend)
  const cli = async (...argv: string[]) => await keygateCli([...argv, ...database.args])
  t.equal((await cli('migrate')).code, 0)
  const made = await cli('keys', 'create', '--name', 'ci', '--scopes', 'query,keys:read', '--plan', 'pro', '--owner', 'alice', '--json')
  t.equal(made.code, 0)
  const listed = JSON.parse(made.stdout)
  const key = listed.apiKey as string
  t.equal((await cli('keys', 'create', '--name', 'deploy', '--expires-in-days', '30', '--per-minute', '5')).code, 0)

  // update changes scopes (and the key keeps its text).
  const updated = await cli('keys', 'update', 'ci', '--scopes', 'query', '--scopes', 'federate', '--no-owner')
  t.same(updated, {
    code: 0,
    stderr: '',
    stdout: [
      'Updated key ci.',
      `  identifier ${listed.identifier as string}`,
      '  for        GENERIC',
      '  scopes     query, federate',
      '  plan       pro (300/min, 10000/h)',
      '  owner      none (service account)',
      '  expires    never',
      `  created    ${listed.created as string}`,
      ''
    ].join('\n')
  })
  const afterUpdate = JSON.parse((await cli('keys', 'list', '--json')).stdout)
  t.same(afterUpdate.map((k: { name: string, scopes: string[], owner: string | null }) => [k.name, k.scopes, k.owner]), [
    ['ci', ['query', 'federate'], null],
    ['deploy', ['*'], null]
  ])
  const renamed = await cli('keys', 'update', 'deploy', '--name', 'deploy-2', '--no-expiry', '--no-rate-limit', '--json')
  t.equal(renamed.code, 0)
  t.same(JSON.parse(renamed.stdout).name, 'deploy-2')
  t.same(JSON.parse(renamed.stdout).expires, null)
  t.same(JSON.parse(renamed.stdout).limits, { perMinute: 60, perHour: 1000 })

  // rotate prints the new key once; the old one works for its grace period.
  const rotated = await cli('keys', 'rotate', 'ci', '--grace-period', '1h')
  t.equal(rotated.code, 0)
  t.equal(rotated.stderr, '')
  const newKey = rotated.stdout.trimEnd().split('\n').pop() as string
  t.match(newKey, KEY_TEXT)
  t.not(newKey, key)
  t.equal(occurrences(rotated.stdout, newKey), 1)
  t.equal(occurrences(rotated.stdout, key), 0, 'the old text is never printed again')
  // A rotated key is listed by its new text's creation: now the newest.
  const afterRotate = JSON.parse((await cli('keys', 'list', '--json')).stdout).find((k: { name: string }) => k.name === 'ci')
  const sunset = afterRotate.rotatingFrom.sunset as string
  t.same(afterRotate.rotatingFrom, { identifier: listed.identifier, sunset })
  t.equal(Date.parse(sunset) - Date.parse(afterRotate.created), 3_600_000)
  t.equal(rotated.stdout, [
    `Rotated key ci. The old text ${listed.identifier as string} works until ${sunset}.`,
    `  identifier ${afterRotate.identifier as string}`,
    '  for        GENERIC',
    '  scopes     query, federate',
    '  plan       pro (300/min, 10000/h)',
    '  owner      none (service account)',
    '  expires    never',
    `  created    ${afterRotate.created as string}`,
    `  old text   ${listed.identifier as string} works until ${sunset}`,
    '',
    'API key (shown once, store it now):',
    newKey,
    ''
  ].join('\n'))
  let app = await database.app()
  t.same(await whoami(app, newKey), { status: 200, body: { name: 'ci' } })
  t.same(await whoami(app, key), { status: 200, body: { name: 'ci' } }, 'the old text in its grace')
  await app.close()

  const again = await cli('keys', 'rotate', 'ci', '--json')
  t.equal(again.code, 0)
  const third = JSON.parse(again.stdout)
  t.equal(third.rotatingFrom, null)

  // delete, then list: gone, and the key stops working.
  t.same(await cli('keys', 'delete', 'ci'), { code: 0, stdout: 'Deleted key ci.\n', stderr: '' })
  t.same(await cli('keys', 'delete', 'deploy-2', '--json'), { code: 0, stdout: '{"deleted":"deploy-2"}\n', stderr: '' })
  t.same(await cli('keys', 'list'), { code: 0, stdout: 'No keys in tenant default.\n', stderr: '' })
  app = await database.app()
  t.same(await whoami(app, third.apiKey), { status: 401, body: { error: 'unauthorized', message: 'Client unauthorized' } })
  await app.close()

}

/** What the API refuses: exit 1, its message and code, nothing on stdout. */
export async function refusals (t: Test, backend: string): Promise<void> {
  const database = await cliDatabase(t, backend)
  const cli = async (...argv: string[]) => await keygateCli([...argv, ...database.args])
  t.equal((await cli('migrate')).code, 0)
  // What the API refuses: exit 1, its message and code, nothing on stdout.
  t.same(await cli('keys', 'delete', 'ci'), { code: 1, stdout: '', stderr: 'keygate: Did not find any matching keys for ci (key_not_found)\n' })
  t.same(await cli('keys', 'rotate', 'nobody'), { code: 1, stdout: '', stderr: 'keygate: Did not find any matching keys for nobody (key_not_found)\n' })
  t.same(await cli('keys', 'update', 'nobody', '--plan', 'pro'), { code: 1, stdout: '', stderr: 'keygate: Did not find any matching keys for nobody (key_not_found)\n' })
  t.same(await cli('keys', 'create', '--name', 'x', '--scopes', 'nope'), {
    code: 1,
    stdout: '',
    stderr: 'keygate: Unknown scope "nope". Allowed: *, query, federate, connector:read, connector:write, audit:read, audit:export, keys:read, keys:write, connector:*, audit:*, keys:* (scope_invalid)\n'
  })
  t.same(await cli('keys', 'create', '--name', 'x', '--plan', 'gold'), {
    code: 1,
    stdout: '',
    stderr: 'keygate: The plan must be one of the following: free, pro, enterprise (plan_invalid)\n'
  })
  t.same(await cli('keys', 'create', '--name', 'x', '--expires-at', '2020-01-01T00:00:00Z'), {
    code: 1,
    stdout: '',
    stderr: 'keygate: expiresAt must be in the future. (expiry_invalid)\n'
  })
  // The host's own vocabulary and plans, from --config, are what the API checks against.
  const dir = await mkdtemp(join(tmpdir(), 'keygate-config-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const config = join(dir, 'keygate.json')
  await writeFile(config, JSON.stringify({ scopes: ['reports:read'], plans: { gold: { perMinute: 7 } }, defaultPlan: 'gold' }))
  const custom = await cli('keys', 'create', '--name', 'custom', '--scopes', 'reports:read', '--config', config, '--json')
  t.equal(custom.code, 0)
  t.same([JSON.parse(custom.stdout).scopes, JSON.parse(custom.stdout).plan, JSON.parse(custom.stdout).limits], [['reports:read'], 'gold', { perMinute: 7, perHour: null }])
  await writeFile(config, JSON.stringify({ maxKeys: 0 }))
  t.same(await cli('keys', 'list', '--config', config), {
    code: 2,
    stdout: '',
    stderr: 'keygate: Invalid keygate option "maxKeys": expected a positive integer (invalid_option)\n'
  }, 'a bad option in --config is a usage error')
  await writeFile(config, JSON.stringify({ secret: 'x' }))
  t.same(await cli('keys', 'list', '--config', config), {
    code: 2,
    stdout: '',
    stderr: `keygate: --config ${config}: unknown option "secret" (allowed: scopes, plans, defaultPlan, prefixes, maxKeys, maxLifetimeDays, rotateAfterDays, maxGracePeriodSeconds, argon2) (see keygate keys list --help)\n`
  })

  t.equal((await cli('keys', 'create', '--name', 'dup')).code, 0)
  t.same(await cli('keys', 'create', '--name', 'dup'), { code: 1, stdout: '', stderr: 'keygate: Can not create key with name dup (key_name_taken)\n' })
}
