import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import ts from 'typescript'
import { serveApp } from '../helpers/served-app.js'

const run = promisify(execFile)

// The client's files compiled on their own, as CommonJS and as ES modules, into a folder with no
// node_modules anywhere above it: what runs there runs with nothing installed.
function compile (into: string, module: 'commonjs' | 'module'): void {
  const folder = fileURLToPath(new URL('../../lib/client/', import.meta.url))
  mkdirSync(into)
  writeFileSync(join(into, 'package.json'), JSON.stringify({ type: module }))
  for (const file of readdirSync(folder).filter((name) => name.endsWith('.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(join(folder, file), 'utf8'), {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: module === 'commonjs' ? ts.ModuleKind.CommonJS : ts.ModuleKind.ES2022 }
    })
    writeFileSync(join(into, file.replace(/\.ts$/, '.js')), outputText)
  }
}

const PROGRAM = `
  const { data, rateLimit } = await new client.KeygateClient().listKeys()
  process.stdout.write(JSON.stringify({ names: data.map((key) => key.name), rateLimit }))
`

t.test('the client runs alone, required as CommonJS and imported as an ES module, configured by the environment', async (t) => {
  const { app, baseUrl } = await serveApp(t)
  const admin = await app.keygate.createKey({ name: 'admin', rateLimit: { perMinute: 5, perHour: 100 } })
  const folder = mkdtempSync(join(tmpdir(), 'keygate-client-'))
  t.teardown(() => rmSync(folder, { recursive: true, force: true }))
  compile(join(folder, 'cjs'), 'commonjs')
  compile(join(folder, 'esm'), 'module')
  const env = { PATH: process.env.PATH, KEYGATE_API_KEY: admin.apiKey, KEYGATE_BASE_URL: baseUrl }

  const cjs = await run(process.execPath, ['-e', `const client = require('./index.js'); (async () => { ${PROGRAM} })()`], { cwd: join(folder, 'cjs'), env })
  t.same(JSON.parse(cjs.stdout), { names: ['admin'], rateLimit: { limit: 5, remaining: 4, reset: '2026-03-03T12:01:00.000Z' } })
  const esm = await run(process.execPath, ['--input-type=module', '-e', `import * as client from './index.js'; ${PROGRAM}`], { cwd: join(folder, 'esm'), env })
  t.same(JSON.parse(esm.stdout), { names: ['admin'], rateLimit: { limit: 5, remaining: 3, reset: '2026-03-03T12:01:00.000Z' } })
  t.equal(cjs.stderr + esm.stderr, '')
})
