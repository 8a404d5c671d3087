import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { TOP_HELP } from '../../lib/cli/help.js'
import { occurrences } from '../helpers/cli.js'

// PGlite starts anew for every command (seconds each, more on a busy machine): this file gets more
// time than the suite's default.
t.setTimeout(360_000)

const BIN = join(import.meta.dirname, '..', '..', 'lib', 'cli', 'bin.ts')

// Makes `@electric-sql/pglite` unresolvable in the child, as it is where the optional package was
// never installed: Node's own module hooks, no change to the code under test.
const WITHOUT_PGLITE = 'data:text/javascript,' + encodeURIComponent(`
import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent(\`
export async function resolve (specifier, context, next) {
  if (specifier === '@electric-sql/pglite') {
    throw Object.assign(new Error("Cannot find package '@electric-sql/pglite' imported from the test"), { code: 'ERR_MODULE_NOT_FOUND' })
  }
  return await next(specifier, context)
}\`))
`)

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs the real executable and waits for it to end by itself: nothing here ever kills it. */
async function keygate (argv: string[], env: Record<string, string> = {}, imports: string[] = []): Promise<Exit> {
  const { DATABASE_URL: _ignored, ...inherited } = process.env
  const child = spawn(process.execPath, ['--import', 'tsx', ...imports.flatMap((url) => ['--import', url]), BIN, ...argv], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  return await new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

t.test('the executable: exit codes, stdout for results, stderr for messages, and it ends by itself', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keygate-bin-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const data = ['--pglite', join(dir, 'data')]

  t.same(await keygate([]), { code: 2, signal: null, stdout: '', stderr: TOP_HELP })
  t.same(await keygate(['keys', 'create', '--bogus']), {
    code: 2,
    signal: null,
    stdout: '',
    stderr: 'keygate: unknown option --bogus (see keygate keys create --help)\n'
  })
  t.same(await keygate(['keys', 'list'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/x' }), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: 'keygate: cannot reach the database: connect ECONNREFUSED 127.0.0.1:1\n'
  })

  const migrated = await keygate(['migrate', '--json', ...data])
  t.same(migrated, {
    code: 0,
    signal: null,
    stdout: '{"applied":["001_api_keys","002_scopes_and_plans","003_lifecycle","004_tenants_and_owners","005_audit_events"]}\n',
    stderr: ''
  })
  const created = await keygate(['keys', 'create', '--name', 'spawned', ...data])
  t.equal(created.code, 0)
  t.equal(created.signal, null)
  t.equal(created.stderr, '', 'nothing on stderr: no log line, no key')
  const key = created.stdout.trimEnd().split('\n').pop() as string
  t.match(key, /^metlo_[0-9A-Za-z]{32}$/)
  t.equal(occurrences(created.stdout, key), 1)

  const listed = await keygate(['keys', 'list', '--json', ...data])
  t.same({ ...listed, stdout: JSON.parse(listed.stdout).map((k: { name: string, identifier: string }) => [k.name, k.identifier]) }, {
    code: 0,
    signal: null,
    stdout: [['spawned', `metlo.${key.slice(6, 14)}`]],
    stderr: ''
  })
  t.same(await keygate(['keys', 'delete', 'nobody', ...data]), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: 'keygate: Did not find any matching keys for nobody (key_not_found)\n'
  })
})

t.test('--pglite without the optional package: exit 1 and how to install it', async (t) => {
  t.same(await keygate(['keys', 'list', '--pglite', 'anywhere'], {}, [WITHOUT_PGLITE]), {
    code: 1,
    signal: null,
    stdout: '',
    stderr: 'keygate: --pglite needs the package @electric-sql/pglite, which is not installed: npm install @electric-sql/pglite\n'
  })
})
