import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

// The type tests (typetests/*.tst.ts) run with tstyche: what must compile and what must not (an
// unknown option, a wrong config.apiKey, a scope that is not a string).
t.setTimeout(300_000)

t.test('the type tests pass', async (t) => {
  const root = resolve(import.meta.dirname, '..')
  const result = await promisify(execFile)(process.execPath, [resolve(root, 'node_modules/tstyche/build/bin.js')], { cwd: root, maxBuffer: 10_000_000 })
    .then(({ stdout }) => ({ code: 0, stdout }), (error: { code: number, stdout: string }) => ({ code: error.code, stdout: error.stdout }))
  t.equal(result.code, 0, result.code === 0 ? 'tstyche passed' : result.stdout)
  t.match(result.stdout, /Tests:\s+(\S+ )?\d+ passed, \d+ total/)
  t.notMatch(result.stdout, /failed/)
})
