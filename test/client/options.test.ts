import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { KeygateClient, KeygateConfigError } from '../../lib/client/index.js'
import { serveApp } from '../helpers/served-app.js'

const VARIABLES = ['KEYGATE_API_KEY', 'METALOGUE_API_KEY', 'METLO_API_KEY', 'KEYGATE_BASE_URL', 'METALOGUE_BASE_URL']

/** Sets (or, for undefined, removes) environment variables for one test, as they were after it. */
function withEnv (t: Test, values: Record<string, string | undefined>): void {
  const before = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]))
  for (const name of VARIABLES) {
    const value = values[name]
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  t.teardown(() => {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
}

// Well-formed key texts, for which key a client picked (its identifier is public).
const KEY_A = 'metlo_AAAAAAAA' + 'x'.repeat(24)
const KEY_B = 'mlo_BBBBBBBB' + 'x'.repeat(24)
const KEY_C = 'metlo_CCCCCCCC' + 'x'.repeat(24)

t.test('the key and the address come from the options, then the environment in a fixed order', async (t) => {
  withEnv(t, { KEYGATE_API_KEY: KEY_A, METALOGUE_API_KEY: KEY_B, METLO_API_KEY: KEY_C, KEYGATE_BASE_URL: 'https://keygate.example', METALOGUE_BASE_URL: 'https://api.metalogue.example' })
  const fromEnv = new KeygateClient()
  t.equal(fromEnv.keyIdentifier, 'metlo.AAAAAAAA')
  t.equal(fromEnv.baseUrl, 'https://keygate.example')
  t.equal(fromEnv.routePrefix, '/api/v1/keys')

  delete process.env.KEYGATE_API_KEY
  delete process.env.KEYGATE_BASE_URL
  t.equal(new KeygateClient().keyIdentifier, 'mlo.BBBBBBBB', 'METALOGUE_API_KEY second')
  t.equal(new KeygateClient().baseUrl, 'https://api.metalogue.example', 'METALOGUE_BASE_URL second')
  process.env.METALOGUE_API_KEY = '  '
  t.equal(new KeygateClient().keyIdentifier, 'metlo.CCCCCCCC', 'METLO_API_KEY last; a blank variable is not set')

  const given = new KeygateClient({ apiKey: KEY_B, baseUrl: 'http://localhost:3000/gateway/', routePrefix: '/keys' })
  t.equal(given.keyIdentifier, 'mlo.BBBBBBBB', 'an option wins over the environment')
  t.equal(given.baseUrl, 'http://localhost:3000/gateway', 'a path is kept, the trailing slash dropped')
  t.equal(given.routePrefix, '/keys')
  t.equal(new KeygateClient({ apiKey: 'not-a-keygate-key' }).keyIdentifier, null)
})

t.test('a clear error when something is missing or unusable, never with the key in it', async (t) => {
  withEnv(t, {})
  t.throws(() => new KeygateClient({ baseUrl: 'http://localhost' }), new KeygateConfigError('No API key: pass apiKey, or set KEYGATE_API_KEY, METALOGUE_API_KEY, METLO_API_KEY.'))
  t.throws(() => new KeygateClient({ baseUrl: 'http://localhost', apiKey: '' }), KeygateConfigError)
  t.throws(() => new KeygateClient({ apiKey: KEY_A }), new KeygateConfigError('No server address: pass baseUrl, or set KEYGATE_BASE_URL or METALOGUE_BASE_URL.'))
  const badUrl = 'baseUrl must be an absolute http(s) URL without query or fragment, e.g. https://api.example.com.'
  for (const baseUrl of ['localhost:3000', 'ftp://example.com', 'https://example.com/?key=1', 'https://example.com/#x', '/relative']) {
    t.throws(() => new KeygateClient({ apiKey: KEY_A, baseUrl }), new KeygateConfigError(badUrl), baseUrl)
  }
  for (const routePrefix of ['api/v1/keys', '/api/v1/keys/', '']) {
    t.throws(() => new KeygateClient({ apiKey: KEY_A, baseUrl: 'http://localhost', routePrefix }),
      new KeygateConfigError('routePrefix must be a path that starts with "/" and does not end with one, e.g. /api/v1/keys.'), routePrefix)
  }
  for (const apiKey of [`${KEY_A}\n`, `Bearer ${KEY_A}`, `${KEY_A}é`]) {
    const error = t.throws(() => new KeygateClient({ apiKey, baseUrl: 'http://localhost' })) as KeygateConfigError
    t.same({ name: error.name, code: error.code, message: error.message }, { name: 'KeygateConfigError', code: 'config_invalid', message: 'apiKey must be the key text: visible ASCII characters, no spaces.' })
    t.notOk(String(error.stack).includes('AAAAAAAA'))
  }
  t.throws(() => new KeygateClient({ apiKey: KEY_A, baseUrl: 'http://localhost', maxRetryWaitSeconds: -1 }), new KeygateConfigError('maxRetryWaitSeconds must be a number of seconds, 0 or more.'))
})

t.test('a client configured by the environment alone, against a server on another route prefix', async (t) => {
  const { app, baseUrl } = await serveApp(t, { routePrefix: '/manage/keys' })
  const admin = await app.keygate.createKey({ name: 'admin', rateLimit: { perMinute: 5, perHour: 100 } })
  withEnv(t, { METLO_API_KEY: admin.apiKey, METALOGUE_BASE_URL: baseUrl })
  const client = new KeygateClient({ routePrefix: '/manage/keys' })
  const listed = await client.listKeys()
  t.same(listed.data.map((key) => key.name), ['admin'])
  t.same(listed.rateLimit, { limit: 5, remaining: 4, reset: new Date('2026-03-03T12:01:00.000Z') })
})

t.test('the client imports nothing but its own files: it runs without the server side installed', async (t) => {
  const folder = fileURLToPath(new URL('../../lib/client/', import.meta.url))
  const files = readdirSync(folder).filter((name) => name.endsWith('.ts'))
  t.same(files.sort(), ['client.ts', 'errors.ts', 'index.ts', 'options.ts', 'rate-limit.ts', 'types.ts'])
  for (const file of files) {
    const source = readFileSync(folder + file, 'utf8')
    const specifiers = [...source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/g)].map((match) => match[1])
    t.ok(specifiers.every((specifier) => specifier?.startsWith('./')), `${file} imports ${specifiers.join(', ') || 'nothing'}`)
    t.notOk(/\bimport\s*\(|\brequire\s*\(|import\.meta/.test(source), `${file}: no dynamic import, require or import.meta`)
  }
})
