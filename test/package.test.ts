import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { readmeSnippets } from './helpers/readme.js'

// The package as a user gets it: packed (which runs the real build), checked by attw, installed
// into a fresh host with npm, then used from `require` and from `import`, on PGlite, over HTTP;
// and the host's TypeScript compiles against the installed types with every strict flag on.
//
// Measured on a 2-core machine: the build is 13 s (two tsc runs), the installs take seconds
// from npm's cache and longer from the registry. This file sets its own limit, with room to spare.
t.setTimeout(600_000)

const execFileAsync = promisify(execFile)
const root = resolve(import.meta.dirname, '..')
const tsc = join(root, 'node_modules/typescript/bin/tsc')

/** Runs a command with npm's own variables removed: the outer `npm test` must not steer the host's npm. */
async function run (command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ stdout: string, stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')))
  return await execFileAsync(command, args, { cwd, env: { ...clean, ...env }, maxBuffer: 20_000_000 })
}

/** The version of a dev dependency this checkout has installed: the host takes the same, from npm's cache. */
async function installed (name: string): Promise<string> {
  return (JSON.parse(await readFile(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

const work = await mkdtemp(join(tmpdir(), 'keygate-install-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', work, '--ignore-scripts=false'], root)
const [pack] = JSON.parse(packed.slice(packed.indexOf('['))) as Array<{ name: string, filename: string, files: Array<{ path: string }> }>
const tarball = join(work, pack!.filename)

t.test('npm pack builds both module systems and ships them with their types and the docs, nothing else', async (t) => {
  const files = pack!.files.map((f) => f.path)
  t.equal(pack!.name, 'fastify-keygate')
  for (const expected of [
    'dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/esm/types.d.ts', 'dist/esm/package.json',
    'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/types.d.ts', 'dist/cjs/package.json',
    'README.md', 'CHANGELOG.md', 'LICENSE', 'package.json'
  ]) {
    t.ok(files.includes(expected), expected)
  }
  t.same(files.filter((f) => !f.startsWith('dist/') && !['README.md', 'CHANGELOG.md', 'LICENSE', 'package.json', 'client/package.json'].includes(f)), [], 'nothing but dist/, the docs and the client entry for old resolvers')
  for (const entry of ['dist/esm/client/index.js', 'dist/esm/client/index.d.ts', 'dist/cjs/client/index.js', 'dist/cjs/client/index.d.ts']) t.ok(files.includes(entry), entry)
  // The console's page, beside the code that serves it, in both builds.
  for (const build of ['dist/esm', 'dist/cjs']) {
    for (const file of ['console/asset-dir.cjs', 'console/assets/index.html', 'console/assets/console.js', 'console/assets/console.css']) t.ok(files.includes(`${build}/${file}`), `${build}/${file}`)
  }
  t.same(files.filter((f) => f.endsWith('.map')), [], 'no source maps: the sources they would point at are not shipped')
  t.same(files.filter((f) => /\.(test|tst)\./.test(f)), [], 'no tests')
  t.same(JSON.parse(await readFile(join(root, 'dist/cjs/package.json'), 'utf8')), { type: 'commonjs' })
})

t.test('attw finds no problem with the types of the plugin and the client, from require, import or an old resolver', async (t) => {
  // attw exits 1 when it finds a problem; its table says which.
  const result = await run(process.execPath, [join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js'), tarball, '--no-color'], root)
    .then(({ stdout }) => ({ code: 0, stdout }), (error: { code: number, stdout: string }) => ({ code: error.code, stdout: error.stdout }))
  t.equal(result.code, 0, result.code === 0 ? 'attw exits 0' : result.stdout)
  t.match(result.stdout, 'No problems found')
  t.match(result.stdout, '"fastify-keygate/client"', 'the client entry was analysed')
})

// One host, made as a user would: its own package.json, the tarball and what it needs beside it.
// Installed while the first tests run; every test of the host waits for it.
const host = join(work, 'host')
const hostInstalled = (async () => {
  await mkdir(host)
  await writeFile(join(host, 'package.json'), JSON.stringify({ name: 'host', private: true }))
  const versions = await Promise.all(['fastify', 'kysely', '@electric-sql/pglite', '@fastify/redis', 'ioredis', '@fastify/swagger', '@fastify/swagger-ui', '@fastify/auth', '@fastify/jwt', 'prom-client', 'typescript', '@types/node'].map(async (name) => `${name}@${await installed(name)}`))
  // PGlite's own declarations need Emscripten's: a host that checks libraries installs them too.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...versions, '@types/emscripten@1'], host)
})()

// Registers the plugin on PGlite, makes a key, and calls a guarded route with it and without.
const hostApp = (syntax: 'require' | 'import'): string => `${syntax === 'require'
  ? `const Fastify = require('fastify')
const keygate = require('fastify-keygate')
const { Kysely, PGliteDialect } = require('kysely')
const { PGlite } = require('@electric-sql/pglite')
const { KeygateClient, NotFoundError } = require('fastify-keygate/client')`
  : `import Fastify from 'fastify'
import keygate from 'fastify-keygate'
import { Kysely, PGliteDialect } from 'kysely'
import { PGlite } from '@electric-sql/pglite'
import { KeygateClient, NotFoundError } from 'fastify-keygate/client'`}

async function main () {
  // PGlite's start and the migrations take seconds on a busy machine: more than avvio's default 10.
  const app = Fastify({ pluginTimeout: 120000 })
  const db = new Kysely({ dialect: new PGliteDialect({ pglite: new PGlite() }) })
  await app.register(keygate, { db, console: true })
  app.get('/whoami', async (request) => ({ name: request.apiKey.name, scopes: request.apiKey.scopes }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = 'http://127.0.0.1:' + app.server.address().port
  const { apiKey } = await app.keygate.createKey({ name: '${syntax}', keyFor: 'GENERIC', scopes: ['query'] })
  const withKey = await fetch(base + '/whoami', { headers: { authorization: 'Bearer ' + apiKey } })
  const without = await fetch(base + '/whoami')
  // The SDK from the same install, with a key that may manage keys.
  const admin = await app.keygate.createKey({ name: 'admin', keyFor: 'GENERIC' })
  const client = new KeygateClient({ baseUrl: base, apiKey: admin.apiKey })
  const listed = await client.listKeys()
  const missing = await client.deleteKey('nobody').catch((error) => error)
  // The console, served from the installed package's own files, and its session.
  const page = await fetch(base + '/keys-console')
  const pageText = await page.text()
  const script = await fetch(base + '/keys-console/assets/console.js')
  const scriptText = await script.text()
  const signIn = await fetch(base + '/keys-console/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: admin.apiKey }) })
  const cookie = (signIn.headers.get('set-cookie') || '').split(';')[0]
  const viaCookie = await fetch(base + '/api/v1/keys/list', { headers: { cookie } })
  const answer = {
    withKey: { status: withKey.status, body: await withKey.json(), limit: withKey.headers.get('x-ratelimit-limit') },
    without: { status: without.status, body: await without.json() },
    sdk: {
      names: listed.data.map((key) => key.name),
      limit: listed.rateLimit.limit,
      remaining: listed.rateLimit.remaining,
      resetIsDate: listed.rateLimit.reset instanceof Date,
      notFound: [missing instanceof NotFoundError, missing.status, missing.code]
    },
    console: {
      page: [page.status, page.headers.get('content-type'), page.headers.get('content-security-policy') !== null, pageText.includes('<script src="/keys-console/assets/console.js" defer></script>')],
      script: [script.status, script.headers.get('content-type'), scriptText.length],
      signIn: [signIn.status, cookie.startsWith('keygate_console=v1.')],
      listWithCookie: viaCookie.status
    }
  }
  await app.close()
  await db.destroy()
  process.stdout.write(JSON.stringify(answer))
}
main().catch((error) => { console.error(error); process.exit(1) })
`

const consoleScriptLength = (await readFile(join(root, 'lib/console/assets/console.js'), 'utf8')).length

for (const [syntax, file] of [['require', 'app.cjs'], ['import', 'app.mjs']] as const) {
  t.test(`from ${syntax}: the installed plugin registers on PGlite, makes a key, guards a route over HTTP and serves the console`, async (t) => {
    await hostInstalled
    await writeFile(join(host, file), hostApp(syntax))
    const { stdout } = await run(process.execPath, [file], host)
    t.same(JSON.parse(stdout), {
      withKey: { status: 200, body: { name: syntax, scopes: ['query'] }, limit: '60' },
      without: { status: 401, body: { error: 'unauthorized', message: 'Client unauthorized' } },
      sdk: { names: [syntax, 'admin'], limit: 60, remaining: 59, resetIsDate: true, notFound: [true, 404, 'key_not_found'] },
      console: {
        page: [200, 'text/html; charset=utf-8', true, true],
        script: [200, 'text/javascript; charset=utf-8', consoleScriptLength],
        signIn: [200, true],
        listWithCookie: 200
      }
    })
  })
}

t.test('the host compiles against the installed types with strict, exactOptionalPropertyTypes and no skipLibCheck', async (t) => {
  await hostInstalled
  await writeFile(join(host, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM'],
      types: ['node', 'emscripten'],
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      skipLibCheck: false,
      noEmit: true
    },
    include: ['*.mts', '*.cts', '*.d.ts']
  }))
  // The README's snippets use `app` and `db` as the text around them introduces them.
  await writeFile(join(host, 'readme-globals.d.ts'), `import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
declare global {
  const keygate: typeof import('fastify-keygate').default
  const app: FastifyInstance
  const db: Kysely<any>
  const mySessions: { verify: (cookie: string | undefined) => Promise<{ orgId: string, userId: string, keyScopes: string[] } | null> }
}
`)
  const snippets = await readmeSnippets(join(root, 'README.md'))
  t.ok(snippets.length >= 5, `the README's TypeScript snippets (${snippets.length})`)
  for (const [i, snippet] of snippets.entries()) {
    await writeFile(join(host, `readme-${i + 1}.mts`), `${snippet.code}\nexport {}\n`)
  }
  // The same use from a CommonJS file: `require` gets the CommonJS types.
  await writeFile(join(host, 'typed.cts'), `import Fastify = require('fastify')
import keygate = require('fastify-keygate')
import type { KeygateOptions } from 'fastify-keygate'

const app = Fastify.fastify()
const options: KeygateOptions = { db: { connectionString: 'postgres://localhost/app', pool: { max: 5 } }, maxKeys: 10 }
void app.register(keygate.keygate, options)
app.get('/x', { config: { apiKey: { scopes: ['query'] } } }, async (request) => request.apiKey?.identifier ?? null)
`)
  const result = await run(process.execPath, [tsc, '-p', '.'], host).then(() => ({ code: 0, output: '' }), (error: { code: number, stdout: string }) => ({ code: error.code, output: error.stdout }))
  t.same(result, { code: 0, output: '' }, 'tsc reports nothing')
})

// A host on Kysely 0.28 (the line for Node 20: 0.29 declares Node 22), with nothing else of ours:
// the peer range is tested, not claimed. Its types must accept the host's own Kysely instance.
const host28 = join(work, 'host-kysely-0.28')
const host28Installed = (async () => {
  await mkdir(host28)
  await writeFile(join(host28, 'package.json'), JSON.stringify({ name: 'host-kysely-0-28', private: true, type: 'module' }))
  const versions = await Promise.all(['fastify', 'pg', '@types/pg', 'typescript', '@types/node'].map(async (name) => `${name}@${await installed(name)}`))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...versions, 'kysely@0.28'], host28)
  await writeFile(join(host28, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023', 'DOM'], types: ['node'], strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true },
    include: ['*.ts']
  }))
  await writeFile(join(host28, 'app.ts'), `import Fastify from 'fastify'
import keygate from 'fastify-keygate'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'

const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: process.env.DATABASE_URL }) }) })
const schema = process.env.SCHEMA ?? 'keygate'
const app = Fastify({ pluginTimeout: 120000 })
await app.register(keygate, { db, schema })
app.get('/whoami', async (request) => ({ name: request.apiKey?.name ?? null }))
await app.ready()
const { apiKey } = await app.keygate.createKey({ name: 'on-0.28', keyFor: 'GENERIC' })
const rotated = await app.keygate.rotateKey('on-0.28', { gracePeriodSeconds: 3600 })
const withOld = await app.inject({ url: '/whoami', headers: { authorization: 'Bearer ' + apiKey } })
const withNew = await app.inject({ url: '/whoami', headers: { authorization: 'Bearer ' + rotated.apiKey } })
await app.keygate.deleteKey('on-0.28')
const actions = (await app.keygate.listAuditEvents({})).events.map((event) => event.action)
await app.close()
await sql\`drop schema \${sql.id(schema)} cascade\`.execute(db)
await db.destroy()
process.stdout.write(JSON.stringify({ old: [withOld.statusCode, withOld.json()], new: [withNew.statusCode, withNew.json()], actions }))
`)
})()

t.test('a host on Kysely 0.28 type-checks passing its own instance, with one Kysely installed', async (t) => {
  await host28Installed
  t.match(JSON.parse(await readFile(join(host28, 'node_modules/kysely/package.json'), 'utf8')), { version: /^0\.28\./ })
  t.equal(await readFile(join(host28, 'node_modules/fastify-keygate/node_modules/kysely/package.json'), 'utf8').catch(() => 'none'), 'none', 'no second Kysely')
  const checked = await run(process.execPath, [tsc, '-p', '.'], host28).then(() => ({ code: 0, output: '' }), (error: { code: number, stdout: string }) => ({ code: error.code, output: error.stdout }))
  t.same(checked, { code: 0, output: '' }, 'tsc reports nothing')
})

// PGlite needs Kysely 0.29's dialect, so a 0.28 host is used on PostgreSQL.
const needsDatabase = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '' ? 'needs PostgreSQL (DATABASE_URL)' : false
t.test('a host on Kysely 0.28 migrates, creates, rotates, authenticates and deletes on PostgreSQL', { skip: needsDatabase }, async (t) => {
  await host28Installed
  await run(process.execPath, [tsc, '-p', '.', '--noEmit', 'false', '--outDir', 'out'], host28)
  const { stdout } = await run(process.execPath, ['out/app.js'], host28, { SCHEMA: `keygate_k28_${process.pid}` })
  t.same(JSON.parse(stdout), {
    old: [200, { name: 'on-0.28' }],
    new: [200, { name: 'on-0.28' }],
    actions: ['key.deleted', 'key.rotated', 'key.created']
  })
})

t.test('the installed `keygate` command migrates, creates, lists and deletes keys on PGlite, and says how it is used', async (t) => {
  await hostInstalled
  const keygateBin = join(host, 'node_modules/.bin/keygate')
  const data = join(work, 'cli-data')
  const cli = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> =>
    await run(keygateBin, args, host).then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number, stdout: string, stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }))

  const help = await cli('--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: keygate <command> \[options\]/)
  const wrong = await cli('keys', 'frobnicate')
  t.equal(wrong.code, 2, 'a usage error')
  t.equal(wrong.stdout, '')
  t.notMatch(wrong.stderr, /\n\s+at /, 'no stack trace')

  t.equal((await cli('migrate', '--pglite', data)).code, 0)
  const created = await cli('keys', 'create', '--pglite', data, '--name', 'from-cli', '--for', 'GENERIC', '--scopes', 'query', '--json')
  t.equal(created.code, 0, created.stderr)
  const key = JSON.parse(created.stdout) as { apiKey: string, name: string, scopes: string[] }
  t.match(key, { name: 'from-cli', scopes: ['query'], apiKey: /^metlo_[0-9A-Za-z]+$/ })
  t.notMatch(created.stderr, key.apiKey, 'the key is on stdout only')
  const listed = await cli('keys', 'list', '--pglite', data, '--json')
  t.same((JSON.parse(listed.stdout) as Array<{ name: string }>).map(({ name }) => name), ['from-cli'])
  t.notMatch(listed.stdout, key.apiKey, 'a listing never shows a key')
  t.same(JSON.parse((await cli('keys', 'delete', 'from-cli', '--pglite', data, '--json')).stdout), { deleted: 'from-cli' })
  const again = await cli('keys', 'delete', 'from-cli', '--pglite', data)
  t.equal(again.code, 1, 'deleting it twice is an error')
  t.notMatch(again.stderr, /\n\s+at /, 'no stack trace')
})
