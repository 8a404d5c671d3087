import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'

const FIRST_KEY = /^First API key \(shown once\): (metlo_[0-9A-Za-z]{32})$/m
const LISTENING = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/

// Two server starts: the first builds a fresh PGlite data directory (initdb in WASM, 7-11 s of the
// 15-16 s this file takes on an idle 2-core machine), the second reopens it (about 4 s with node
// and tsx). In full runs with one core kept busy it took 15-27 s; it was reported near tap's 120 s
// per file on a busier machine, so this file sets its own limit with room to spare, and each start
// may take up to half of it.
const FILE_TIMEOUT = 300_000
const START_TIMEOUT = FILE_TIMEOUT / 2
t.setTimeout(FILE_TIMEOUT)

interface Running { child: ChildProcess, url: string, stdout: () => string }

/** Runs the example server as `npm start` does, on PGlite, on a free port. */
async function start (dataDir: string): Promise<Running> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', PGLITE_DIR: dataDir }
  delete env.DATABASE_URL
  delete env.REDIS_URL
  delete env.REDIS_CLUSTER_NODES
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), START_TIMEOUT)
    child.stdout!.on('data', () => {
      const match = LISTENING.exec(out)
      if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)) })
  })
  return { child, url, stdout: () => out }
}

async function stop (running: Running): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => running.child.once('exit', resolve))
  running.child.kill('SIGTERM')
  return await exited
}

t.test('npm start: prints a first key once, then serves the example routes with it', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'keygate-example-'))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))

  const first = await start(dataDir)
  t.teardown(() => { first.child.kill('SIGKILL') })
  const key = FIRST_KEY.exec(first.stdout())?.[1]
  t.ok(key, 'the first key is printed on its own line')
  t.equal(first.stdout().split(key!).length, 2, 'exactly once, and not in any log line')

  const health = await fetch(`${first.url}/health`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })

  // The documentation needs no key: Swagger UI and the document it shows.
  const docs = await fetch(`${first.url}/docs`)
  t.equal(docs.status, 200)
  t.equal(docs.headers.get('content-type'), 'text/html; charset=utf-8')
  t.match(await docs.text(), /<title>Swagger UI<\/title>/)
  const documentAnswer = await fetch(`${first.url}/docs/json`)
  t.equal(documentAnswer.status, 200)
  t.equal(documentAnswer.headers.get('content-type'), 'application/json; charset=utf-8')
  const document = await documentAnswer.json() as Record<string, any>
  t.same(await new Validator().validate(structuredClone(document)), { valid: true })
  t.equal(document.openapi, '3.1.0')
  t.same(document.info, { title: 'fastify-keygate example', version: '1.0.0' })
  t.same(document.components.securitySchemes, {
    apiKey: {
      type: 'apiKey',
      in: 'header',
      name: 'Authorization',
      description: 'An API key: `Authorization: <key>` or `Authorization: Bearer <key>`. A route lists the scopes a key must hold; a key with `*` holds them all.'
    }
  })
  t.same(Object.keys(document.paths), [
    '/api/v1/keys/create', '/api/v1/keys/audit', '/api/v1/keys/audit/export', '/api/v1/keys/list', '/api/v1/keys/onboarding',
    '/api/v1/keys/{name}/usage', '/api/v1/keys/{name}/delete', '/api/v1/keys/{name}/rotate', '/api/v1/keys/{name}',
    '/health', '/metrics', '/api/v1/endpoints', '/v1/federate', '/v1/connectors'
  ], 'the documentation routes are not in the document')
  t.same(document.paths['/health'].get.security, [])
  t.same(document.paths['/metrics'].get.security, [], 'public in the example, and documented so')
  t.same(document.paths['/api/v1/endpoints'].get.security, [{ apiKey: [] }])
  t.same(document.paths['/v1/federate'].post.security, [{ apiKey: ['federate'] }])
  t.same(document.paths['/v1/connectors'].post.security, [{ apiKey: ['connector:write'] }])

  const anonymous = await fetch(`${first.url}/api/v1/endpoints`)
  t.equal(anonymous.status, 401)
  t.equal(anonymous.headers.get('www-authenticate'), 'Bearer')
  t.same(await anonymous.json(), { error: 'unauthorized', message: 'Client unauthorized' })

  const endpoints = await fetch(`${first.url}/api/v1/endpoints`, { headers: { authorization: key! } })
  t.equal(endpoints.status, 200)
  t.same(await endpoints.json(), { key: `metlo.${key!.slice(6, 14)}`, endpoints: ['/v1/federate', '/v1/connectors'] })

  const federate = await fetch(`${first.url}/v1/federate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key!}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'What was the auth decision?' })
  })
  t.equal(federate.status, 200)
  t.same(await federate.json(), { query: 'What was the auth decision?', answer: 'federated' })

  t.equal(federate.headers.get('x-ratelimit-limit'), '60', 'the bootstrap key is on the free plan')
  // The example runs on the wall clock, so a minute may turn between requests: 58 or 59 left.
  t.match(federate.headers.get('x-ratelimit-remaining'), /^5[89]$/)

  const created = await fetch(`${first.url}/api/v1/keys/create`, {
    method: 'POST',
    headers: { authorization: key!, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'my-api-key', keyFor: 'GENERIC', scopes: ['query', 'connector:read'] })
  })
  t.equal(created.status, 200)
  const scoped = ((await created.json()) as { apiKey: string }).apiKey
  const readConnectors = await fetch(`${first.url}/v1/connectors`, { headers: { authorization: `Bearer ${scoped}` } })
  t.equal(readConnectors.status, 200)
  const writeConnectors = await fetch(`${first.url}/v1/connectors`, { method: 'POST', headers: { authorization: `Bearer ${scoped}` } })
  t.equal(writeConnectors.status, 403, 'the example routes enforce their scopes')
  t.same(await writeConnectors.json(), { error: 'insufficient_scope', message: 'API key lacks required permission: connector:write' })
  t.equal(await stop(first), 0, 'SIGTERM closes the server cleanly')

  const second = await start(dataDir)
  t.teardown(() => { second.child.kill('SIGKILL') })
  t.notMatch(second.stdout(), /First API key/, 'with keys on disk, no new key is made or printed')
  const list = await fetch(`${second.url}/api/v1/keys/list`, { headers: { authorization: key! } })
  t.equal(list.status, 200)
  t.same(((await list.json()) as Array<{ name: string }>).map((k: { name: string }) => k.name), ['bootstrap', 'my-api-key'], 'PGLITE_DIR kept the keys')
  t.equal(await stop(second), 0)
})
