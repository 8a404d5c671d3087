import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import t from 'tap'
import { buildApp, TEST_SECRET } from '../helpers/app.js'

// The console's page and files: served by the plugin under a strict Content-Security-Policy, with
// their content types, caching and the same security headers on every answer under the path;
// nothing about keys or the server in them.

const assets = resolve(import.meta.dirname, '../../lib/console/assets')
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}

t.test('GET /keys-console: the page, with the policy and no inline script or style', async (t) => {
  const app = await buildApp(t, { keygate: { console: true, secret: TEST_SECRET } })
  const apiKey = (await app.keygate.createKey({ name: 'admin' })).apiKey
  const page = await app.inject({ url: '/keys-console' })
  t.equal(page.statusCode, 200)
  t.match(page.headers, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', etag: /^"[A-Za-z0-9_-]{27}"$/ })
  const html = page.body
  t.match(html, '<script src="/keys-console/assets/console.js" defer></script>')
  t.match(html, '<link rel="stylesheet" href="/keys-console/assets/console.css">')
  t.match(html, '<h1>API Keys</h1>')
  t.notMatch(html, /<script(?![^>]*\bsrc=)/, 'no inline script')
  t.notMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or event handler attribute')
  t.notMatch(html, /%CONSOLE_PATH%/, 'every placeholder filled')
  for (const secret of [TEST_SECRET, apiKey, 'metlo_']) t.notOk(html.includes(secret), 'nothing of keys or secrets')
  const again = await app.inject({ url: '/keys-console', headers: { 'if-none-match': page.headers.etag as string } })
  t.equal(again.statusCode, 304)
})

t.test('the files: content types, revalidation, the same headers; nothing else is served', async (t) => {
  const app = await buildApp(t, { keygate: { console: true, secret: TEST_SECRET } })
  for (const [file, type] of [['console.js', 'text/javascript; charset=utf-8'], ['console.css', 'text/css; charset=utf-8']] as const) {
    const answer = await app.inject({ url: `/keys-console/assets/${file}` })
    t.equal(answer.statusCode, 200, file)
    t.match(answer.headers, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-cache', etag: /^"[A-Za-z0-9_-]{27}"$/ }, file)
    t.equal(answer.body, await readFile(join(assets, file), 'utf8'), `${file} as written`)
    const revalidated = await app.inject({ url: `/keys-console/assets/${file}`, headers: { 'if-none-match': answer.headers.etag as string } })
    t.same([revalidated.statusCode, revalidated.body], [304, ''], `${file}: 304 when unchanged`)
  }
  for (const url of ['/keys-console/assets/index.html', '/keys-console/assets/..%2Fsession-cookie.ts', '/keys-console/assets/nope.js']) {
    const missing = await app.inject({ url })
    t.same([missing.statusCode, missing.json()], [404, { error: 'not_found', message: 'No such console file.' }], url)
    t.match(missing.headers, SECURITY_HEADERS, `${url}: the headers on errors too`)
  }
  const unknown = await app.inject({ url: '/keys-console/elsewhere' })
  t.same([unknown.statusCode, unknown.json()], [401, { error: 'unauthorized', message: 'Client unauthorized' }], 'other paths need a key, as everywhere')
  t.match(unknown.headers, SECURITY_HEADERS)
})

t.test('the page\'s script writes text, never markup, and stores nothing', async (t) => {
  const script = await readFile(join(assets, 'console.js'), 'utf8')
  for (const forbidden of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'localStorage', 'sessionStorage', 'eval(', 'new Function', '.style.', "setAttribute('style'"]) {
    t.notOk(script.includes(forbidden), `no ${forbidden}`)
  }
  t.match(script, "credentials: 'same-origin'")
})

t.test('{ path } serves it there; without the option nothing is served', async (t) => {
  const moved = await buildApp(t, { keygate: { console: { path: '/admin/keys-console' }, secret: TEST_SECRET } })
  const page = await moved.inject({ url: '/admin/keys-console' })
  t.equal(page.statusCode, 200)
  t.match(page.body, '<script src="/admin/keys-console/assets/console.js" defer></script>')
  t.match(page.body, 'data-console-path="/admin/keys-console"')
  t.equal((await moved.inject({ url: '/admin/keys-console/assets/console.css' })).statusCode, 200)

  const off = await buildApp(t)
  for (const url of ['/keys-console', '/keys-console/assets/console.js', '/keys-console/session']) {
    t.equal((await off.inject({ url })).statusCode, 401, `${url}: no such route, so a key is asked for`)
  }
})
