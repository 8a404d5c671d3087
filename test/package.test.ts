import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)

// `npm pack` runs prepack, the real build: tsc type-checks lib/ (Kysely's types make that most of
// it) to emit the declarations. Measured on a 2-core machine: 14-16 s idle, 10 s of it tsc; 15-18 s
// in full runs with one core kept busy. It was reported near tap's 120 s per file on a busier
// machine, so this file sets its own limit, with room to spare.
t.setTimeout(300_000)

t.test('npm pack builds dist/ and ships the library, its types and docs, nothing else', async (t) => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts=false'], { maxBuffer: 10_000_000 })
  const [pack] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ name: string, files: Array<{ path: string }> }>
  const files = pack!.files.map((f) => f.path)
  t.equal(pack!.name, 'fastify-keygate')
  for (const expected of ['dist/index.js', 'dist/index.d.ts', 'dist/types.d.ts', 'README.md', 'CHANGELOG.md', 'LICENSE', 'package.json']) {
    t.ok(files.includes(expected), expected)
  }
  t.same(files.filter((f) => /^(test|examples|lib|bench|\.ci)\//.test(f)), [], 'no sources, tests or examples')

  const built = await import('../dist/index.js' as string)
  t.equal(built.default, built.keygate, 'default and named export are the same plugin')
  t.equal(built.default[Symbol.for('fastify.display-name')], 'fastify-keygate')
  t.same(built.default[Symbol.for('plugin-meta')], { fastify: '5.x', name: 'fastify-keygate' })
})
