// Builds the package twice from lib/: dist/esm for `import` and dist/cjs for `require`, each with
// declarations of its own module system (what TypeScript and attw expect of a dual package).
// No source maps: the sources are not shipped, and a map pointing at nothing helps no one.
import { execFileSync } from 'node:child_process'
import { cpSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const tsc = (args) => execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), ...args], { cwd: root, stdio: 'inherit' })
const typeOf = (dir, type) => writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ type })}\n`)

rmSync(join(root, 'dist'), { recursive: true, force: true })

tsc(['-p', 'tsconfig.build.json'])
typeOf(join(root, 'dist/esm'), 'module')

// The CommonJS build compiles a copy of lib/ marked `"type": "commonjs"`, so TypeScript (module
// NodeNext) emits require() and checks each import as a CommonJS file would make it. A copy, not
// a marker in lib/ itself: tests running meanwhile must keep seeing lib/ as ES modules. Inside the
// project, so that imports resolve from its node_modules.
const work = join(root, '.build-cjs')
rmSync(work, { recursive: true, force: true })
try {
  cpSync(join(root, 'lib'), join(work, 'lib'), { recursive: true })
  typeOf(work, 'commonjs')
  writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({
    extends: '../tsconfig.build.json',
    compilerOptions: { rootDir: 'lib', outDir: '../dist/cjs', verbatimModuleSyntax: false },
    include: ['lib']
  }))
  tsc(['-p', join(work, 'tsconfig.json')])
} finally {
  rmSync(work, { recursive: true, force: true })
}
typeOf(join(root, 'dist/cjs'), 'commonjs')

// The console's page (HTML, CSS and browser JavaScript, served as written: tsc does not touch them)
// goes beside the code that serves it in both builds; lib/console/asset-dir.cts finds it there.
for (const build of ['dist/esm', 'dist/cjs']) {
  cpSync(join(root, 'lib/console/assets'), join(root, build, 'console/assets'), { recursive: true })
}
