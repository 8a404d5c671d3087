import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { serveApp } from '../helpers/served-app.js'

// The console in a real browser: the example server (`npm start`, on PGlite in memory) driven by
// headless Chromium through playwright-core. It signs in with the printed key, makes, uses,
// rotates and revokes a key, reads and exports the audit log, checks what must never happen (a
// key's text kept by the page, script from a key's name, a policy violation), signs out, and
// takes the README's screenshots as it goes.
//
// Measured on a 2-core machine: about 30 s. The example server's flow takes about 20 s (its PGlite
// start, and waiting up to one usage flush for the chart), the host's sign-in about 9 s.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const browserMissing = existsSync(CHROMIUM)
  ? false
  : `the browser is missing: no Chromium at ${CHROMIUM}. Install it (Debian: apt-get install chromium) or set CHROMIUM_PATH to one`

const FILE_TIMEOUT = 300_000
t.setTimeout(FILE_TIMEOUT)

const root = resolve(import.meta.dirname, '../..')
// The README's screenshots are rewritten only when asked, as tap's snapshots are
// (`npx tap --snapshot test/console/browser.test.ts`); otherwise they go to a temporary folder,
// so a test run leaves the checkout as it was.
const UPDATE_SCREENSHOTS = process.env.TAP_SNAPSHOT === '1'
const FIRST_KEY = /^First API key \(shown once\): (metlo_[0-9A-Za-z]{32})$/m
const CONSOLE_URL = /^Key-management console: (http:\/\/127\.0\.0\.1:\d+)(\/keys-console)$/m
const XSS_NAME = '<img src=x onerror=alert(1)>'

interface Running { child: ChildProcess, origin: string, consoleUrl: string, key: string }

/** The example server on a free port, its data in memory; resolves once it prints the console's URL. */
async function startServer (): Promise<Running> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1' }
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'REDIS_CLUSTER_NODES', 'PGLITE_DIR', 'OIDC_ISSUER']) delete env[name]
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  return await new Promise<Running>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), FILE_TIMEOUT / 2)
    child.stdout!.on('data', () => {
      const url = CONSOLE_URL.exec(out)
      const key = FIRST_KEY.exec(out)
      if (url !== null && key !== null) {
        clearTimeout(timer)
        resolve({ child, origin: url[1]!, consoleUrl: url[1]! + url[2]!, key: key[1]! })
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)) })
  })
}

t.test('the console in headless Chromium: sign in, create, use, rotate, revoke, audit, export, sign out', { skip: browserMissing }, async (t) => {
  const { chromium } = await import('playwright-core')
  const server = await startServer()
  t.teardown(() => { server.child.kill('SIGTERM') })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  t.teardown(async () => await browser.close())
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 820 } })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin })
  // Every policy violation the page reports, from before its first script runs.
  await context.addInitScript('window.__violations = []; document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI))')
  const page = await context.newPage()
  const consoleMessages: string[] = []
  const dialogs: string[] = []
  const pageErrors: string[] = []
  page.on('console', (message) => { consoleMessages.push(message.text()) })
  page.on('dialog', (dialog) => { dialogs.push(dialog.message()); void dialog.dismiss() })
  page.on('pageerror', (error) => { pageErrors.push(error.message) })
  const SCREENSHOTS = UPDATE_SCREENSHOTS ? join(root, 'docs/console') : await mkdtemp(join(tmpdir(), 'keygate-console-'))
  if (UPDATE_SCREENSHOTS) await mkdir(SCREENSHOTS, { recursive: true })
  else t.teardown(async () => await rm(SCREENSHOTS, { recursive: true, force: true }))
  const api = (path: string, init: RequestInit = {}): Promise<Response> => fetch(server.origin + path, init)
  const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } })
  const keyTexts: string[] = [server.key]

  // Nothing before sign-in but the form.
  await page.goto(server.consoleUrl)
  await page.getByRole('heading', { name: 'API Keys' }).waitFor()
  await page.getByLabel('API key', { exact: true }).waitFor()
  t.equal(await page.locator('#keys-body tr').count(), 0, 'no keys shown before sign-in')

  // From the keyboard: the key typed into its labelled field, Enter to sign in.
  await page.getByLabel('API key', { exact: true }).fill(server.key)
  await page.getByLabel('API key', { exact: true }).press('Enter')
  await page.getByRole('cell', { name: 'bootstrap', exact: true }).waitFor()
  t.match(await page.locator('#who-text').textContent(), /^Signed in with metlo\.[0-9A-Za-z]{8} \(bootstrap, tenant default\)$/)
  t.equal(await page.getByLabel('API key', { exact: true }).inputValue(), '', 'the sign-in field is emptied at once')
  const cookies = await context.cookies()
  t.match(cookies, [{ name: 'keygate_console', httpOnly: true, sameSite: 'Strict', secure: false, path: '/' }], 'an HttpOnly, SameSite=Strict session cookie')
  const sessionCookie = `keygate_console=${cookies[0]!.value}`

  // A dialog opens from the keyboard, takes the focus, and gives it back when Escape closes it.
  const create = page.getByRole('dialog', { name: 'Create API Key' })
  await page.getByRole('button', { name: 'Create API Key' }).focus()
  await page.keyboard.press('Enter')
  await create.waitFor()
  t.equal(await page.evaluate('document.activeElement.id'), 'create-name', 'focus goes to Name')
  await page.keyboard.press('Escape')
  await create.waitFor({ state: 'hidden' })
  t.equal(await page.evaluate('document.activeElement.textContent'), 'Create API Key', 'and back to the button')

  // Create a key with two permissions; it is shown once.
  await page.getByRole('button', { name: 'Create API Key' }).click()
  await create.getByLabel('Name').fill('ci-reader')
  t.ok(await create.getByLabel('Full access').isChecked(), 'Full access is preselected')
  await create.getByLabel('Type').selectOption('GENERIC')
  await create.getByLabel('federate', { exact: true }).check()
  await create.getByLabel('connector:read', { exact: true }).check()
  t.notOk(await create.getByLabel('Full access').isChecked(), 'a single permission unchecks Full access')
  await create.getByLabel('Plan').selectOption('pro')
  await create.getByRole('button', { name: 'Create' }).click()
  const secret = page.getByRole('dialog', { name: 'Key created: ci-reader' })
  await secret.getByText("it won't be shown again").waitFor()
  const created = (await secret.locator('#secret-value').textContent())!
  t.match(created, /^metlo_[0-9A-Za-z]{32}$/, 'the new key, shown once')
  keyTexts.push(created)
  await secret.getByRole('button', { name: 'Copy' }).click()
  await secret.getByText(/^(Copied\.|Selected: press Ctrl\+C)/).waitFor()
  await page.screenshot({ path: join(SCREENSHOTS, 'create-key.png') })
  await secret.getByRole('button', { name: 'Done' }).click()
  await secret.waitFor({ state: 'hidden' })
  // The dialog's close event comes a moment after it is hidden.
  await page.locator('#secret-value').waitFor({ state: 'detached', timeout: 2000 })
  t.equal(await page.locator('#secret-value').count(), 0, 'gone from the page once the dialog closes')
  t.notOk((await page.content()).includes(created), 'nowhere in the document')

  // Listed with its permissions and plan.
  const row = page.locator('#keys-body tr', { has: page.getByRole('cell', { name: 'ci-reader', exact: true }) })
  await row.waitFor()
  t.same(await row.locator('td').allTextContents().then((cells) => [cells[2], cells[3], cells[4], cells[8]]), ['GENERIC', 'federate, connector:read', 'pro', 'Service account'])

  // Used over HTTP with one of its permissions, refused where it has none.
  t.equal((await api('/v1/connectors', bearer(created))).status, 200, 'connector:read: 200')
  t.equal((await api('/v1/connectors', { method: 'POST', ...bearer(created) })).status, 403, 'connector:write: 403')

  // Rotate with no grace: the new key shown once, the old one refused.
  await row.getByRole('button', { name: 'Rotate ci-reader' }).click()
  const rotate = page.getByRole('dialog', { name: 'Rotate key' })
  await rotate.getByLabel('Grace period for the old key').selectOption('0')
  await rotate.getByRole('button', { name: 'Rotate' }).click()
  const rotatedDialog = page.getByRole('dialog', { name: 'Key rotated: ci-reader' })
  await rotatedDialog.getByText("it won't be shown again").waitFor()
  const rotated = (await rotatedDialog.locator('#secret-value').textContent())!
  t.match(rotated, /^metlo_[0-9A-Za-z]{32}$/)
  t.not(rotated, created)
  keyTexts.push(rotated)
  await page.keyboard.press('Escape')
  await rotatedDialog.waitFor({ state: 'hidden' })
  await page.locator('#secret-value').waitFor({ state: 'detached', timeout: 2000 })
  t.equal(await page.locator('#secret-value').count(), 0, 'Escape closes it and the key goes with it')
  t.equal((await api('/v1/connectors', bearer(rotated))).status, 200, 'the new key works')
  t.equal((await api('/v1/connectors', bearer(created))).status, 401, 'the old key is refused')

  // Revoke, with a confirmation naming the key; its next use is refused.
  await row.getByRole('button', { name: 'Revoke ci-reader' }).click()
  const revoke = page.getByRole('dialog', { name: 'Revoke key' })
  t.match(await revoke.locator('#revoke-text').textContent(), /^Revoke “ci-reader” \(metlo\.[0-9A-Za-z]{8}\)\?/)
  await revoke.getByRole('button', { name: 'Revoke' }).click()
  await page.getByText('Revoked “ci-reader”.').waitFor()
  await row.waitFor({ state: 'detached' })
  const refused = await api('/v1/connectors', bearer(rotated))
  t.equal(refused.status, 401, 'a revoked key is refused at its next use')
  t.same(await refused.json(), { error: 'unauthorized', message: 'Client unauthorized' })

  // A name that is markup shows as its characters and runs nothing.
  await page.getByRole('button', { name: 'Create API Key' }).click()
  await create.getByLabel('Name').fill(XSS_NAME)
  await create.getByRole('button', { name: 'Create' }).click()
  const xssSecret = page.getByRole('dialog', { name: `Key created: ${XSS_NAME}` })
  keyTexts.push((await xssSecret.locator('#secret-value').textContent())!)
  await xssSecret.getByRole('button', { name: 'Done' }).click()
  await page.getByRole('cell', { name: XSS_NAME, exact: true }).waitFor()
  t.equal(await page.locator('img').count(), 0, 'no <img> element exists')
  t.same(dialogs, [], 'no alert fired')

  // A second error path: a duplicate name is said in words, in the dialog.
  await page.getByRole('button', { name: 'Create API Key' }).click()
  await create.getByLabel('Name').fill('bootstrap')
  await create.getByRole('button', { name: 'Create' }).click()
  await create.getByText('Can not create key with name bootstrap').waitFor()
  await create.getByRole('button', { name: 'Cancel' }).click()

  // Usage: a chart of 30 days with a text summary. The server writes usage every 10 s, so the
  // chart is asked again until today's requests are in (they are by the second write at most).
  const summary = page.locator('#usage-summary')
  for (let tries = 0; tries < 25; tries++) {
    await page.getByRole('button', { name: 'Usage bootstrap' }).click()
    await page.getByRole('heading', { name: 'Usage of “bootstrap”: daily requests, last 30 days' }).waitFor()
    if (!(await summary.textContent())!.startsWith('No requests')) break
    await page.waitForTimeout(1000)
  }
  t.equal(await page.locator('#usage-chart svg rect').count(), 30, 'one bar a day')
  await page.getByRole('button', { name: 'Refresh' }).click()
  const bootstrapRow = page.locator('#keys-body tr', { has: page.getByRole('cell', { name: 'bootstrap', exact: true }) })
  await bootstrapRow.locator('td:nth-child(7)', { hasNotText: 'Never' }).waitFor()
  t.match(await bootstrapRow.locator('td:nth-child(7)').textContent(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/, 'last used, once written')
  t.match(await summary.textContent(), /^\d+ requests in the last 30 days; the busiest day was \d{4}-\d{2}-\d{2} with \d+\.$/)
  await page.screenshot({ path: join(SCREENSHOTS, 'keys.png'), fullPage: true })

  // The audit log, filtered, and exported as CSV and NDJSON.
  await page.getByRole('button', { name: 'Audit log' }).click()
  await page.getByRole('heading', { name: 'Audit log' }).waitFor()
  await page.locator('#audit-body tr', { hasText: 'key.deleted' }).first().waitFor()
  const actions = await page.locator('#audit-body tr td:nth-child(2)').allTextContents()
  for (const action of ['key.created', 'key.rotated', 'key.deleted']) t.ok(actions.includes(action), `the log shows ${action}`)
  await page.screenshot({ path: join(SCREENSHOTS, 'audit-log.png'), fullPage: true })
  await page.getByLabel('Action').selectOption('key.rotated')
  await page.getByRole('button', { name: 'Apply' }).click()
  // Locators, not waitForFunction: its string predicates need eval, which the page's policy forbids.
  await page.locator('#audit-body tr', { hasNotText: 'key.rotated' }).first().waitFor({ state: 'detached' })
  t.same(await page.locator('#audit-body tr td:nth-child(2)').allTextContents(), ['key.rotated'])

  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()])
  t.equal(csv.suggestedFilename(), 'audit-log.csv')
  const csvLines = (await readFile((await csv.path())!, 'utf8')).trimEnd().split('\r\n')
  t.equal(csvLines[0], 'id,at,action,actor,target_identifier,target_name,target_from,ip,request_id')
  t.equal(csvLines.length, 2, 'the header and the one rotation: the filter applies')
  t.match(csvLines[1], /^\d+,[^,]+,key\.rotated,/)
  const [ndjson] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export NDJSON' }).click()])
  t.equal(ndjson.suggestedFilename(), 'audit-log.ndjson')
  const events = (await readFile((await ndjson.path())!, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { action: string, target: { name: string } })
  t.same(events.map((event) => [event.action, event.target.name]), [['key.rotated', 'ci-reader']])

  // What the page must never do.
  const stored = await page.evaluate('JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), location.href, document.cookie])') as string
  for (const text of keyTexts) t.notOk(stored.includes(text), 'no key text in storage, the URL or a cookie the page can read')
  t.equal(await page.evaluate('document.cookie'), '', 'the session cookie is out of the page\'s reach')
  t.same(await page.evaluate('window.__violations'), [], 'no Content-Security-Policy violation')
  t.same(consoleMessages.filter((text) => /Content Security Policy|Refused to/i.test(text)), [], 'none reported on the console either')
  t.same(pageErrors, [], 'no script error')

  // The cookie works from outside the browser as long as the session does.
  t.equal((await api('/api/v1/keys/list', { headers: { cookie: sessionCookie } })).status, 200, 'the session cookie reads the list')

  // Sign out: the form again, the cookie gone, and the old cookie refused.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('API key', { exact: true }).waitFor()
  await page.getByText('Signed out.').waitFor()
  t.equal(await page.locator('#keys-body tr').count(), 0, 'the keys are gone from the page')
  t.same((await context.cookies()).filter((cookie) => cookie.name === 'keygate_console'), [], 'the browser dropped the cookie')
  const after = await api('/api/v1/keys/list', { headers: { cookie: sessionCookie } })
  t.equal(after.status, 401, 'the old cookie is refused after sign-out')
  await page.reload()
  await page.getByLabel('API key', { exact: true }).waitFor()
  t.equal(await page.locator('#workspace').isVisible(), false, 'a reload shows the form, nothing else')
})

t.test('the console with the host\'s sign-in, in Chromium: the host\'s person is used as they are', { skip: browserMissing }, async (t) => {
  const { chromium } = await import('playwright-core')
  // The host's own sign-in, here a cookie it set: alice manages acme's keys.
  const authenticateManagement = (request: FastifyRequest) =>
    /(?:^|;\s*)host_session=alice(?:;|$)/.test(request.headers.cookie ?? '') ? { tenant: 'acme', user: 'alice', scopes: ['keys:read', 'keys:write', 'query'] } : null
  const { app, baseUrl, clock } = await serveApp(t, { console: true, rotateAfterDays: 1, authenticateManagement })
  await app.keygate.createKey({ tenant: 'acme', name: 'old-key', scopes: ['query'] })
  clock.advance(2 * 24 * 60 * 60_000)

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  t.teardown(async () => await browser.close())
  const context = await browser.newContext()
  await context.addCookies([{ name: 'host_session', value: 'alice', url: baseUrl }])
  const page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => { pageErrors.push(error.message) })
  await page.goto(`${baseUrl}/keys-console`)

  await page.getByText('Signed in as alice (tenant acme)').waitFor()
  t.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), false, 'signing out is the host\'s')
  t.equal(await page.getByRole('button', { name: 'Audit log' }).isVisible(), false, 'no audit log without audit:read')
  const oldRow = page.locator('#keys-body tr', { has: page.getByRole('cell', { name: /^old-key/ }) })
  await oldRow.getByText('rotation due').waitFor()
  t.equal(await oldRow.locator('td').first().textContent(), 'old-key rotation due', 'marked for rotation past rotateAfterDays')

  await page.getByRole('button', { name: 'Create API Key' }).click()
  const create = page.getByRole('dialog', { name: 'Create API Key' })
  await create.getByLabel('Name').fill('alice-laptop')
  await create.getByLabel('query', { exact: true }).check()
  await create.getByRole('button', { name: 'Create' }).click()
  const secret = page.getByRole('dialog', { name: 'Key created: alice-laptop' })
  await secret.getByText("it won't be shown again").waitFor()
  await secret.getByRole('button', { name: 'Done' }).click()
  const row = page.locator('#keys-body tr', { has: page.getByRole('cell', { name: 'alice-laptop', exact: true }) })
  t.equal(await row.locator('td:nth-child(9)').textContent(), 'alice', 'owned by the person who made it, with no CSRF token (the host guards its own sign-in)')

  await page.getByRole('button', { name: 'Create API Key' }).click()
  await create.getByLabel('Name').fill('root')
  await create.getByRole('button', { name: 'Create' }).click()
  await create.getByText('API key lacks required permission: *').waitFor()
  t.pass('a grant beyond the person\'s scopes is refused, in words')
  await create.getByRole('button', { name: 'Cancel' }).click()

  await context.clearCookies()
  await page.reload()
  await page.getByLabel('API key', { exact: true }).waitFor()
  t.pass('nobody the host recognises: the key form')
  t.same(pageErrors, [])
})
