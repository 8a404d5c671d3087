import t from 'tap'
import { buildAppWithDatabase, createKey } from './helpers/app.js'
import { captureLogs } from './helpers/log-capture.js'

t.test('no key, secret or hash reaches a log line, an error message or a listing', async (t) => {
  const logs = captureLogs()
  const { app, database } = await buildAppWithDatabase(t, {
    fastify: { logger: logs.logger },
    routes: (app) => {
      app.get('/data', async () => ({ ok: true }))
      app.get('/boom', async () => { throw new Error('host route failed') })
    }
  })
  const admin = await createKey(app, 'admin')
  const secrets = [admin]
  const headers = { authorization: `Bearer ${admin}` }

  const created = await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers, payload: { name: 'made-over-http' } })
  t.equal(created.statusCode, 200)
  secrets.push(created.json().apiKey)
  const wrong = `${admin.slice(0, 20)}${admin.slice(20).split('').reverse().join('')}`
  for (const authorization of [admin, `Bearer ${created.json().apiKey}`, wrong, 'metlo_short', `${admin}${admin}`]) {
    await app.inject({ url: '/data', headers: { authorization } })
  }
  await app.inject({ url: '/boom', headers })
  await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers, payload: { name: 'admin' } })
  await app.inject({ method: 'POST', url: '/api/v1/keys/create', headers, payload: { name: 'k', keyFor: admin } })
  const list = await app.inject({ url: '/api/v1/keys/list', headers })
  await app.inject({ method: 'DELETE', url: '/api/v1/keys/made-over-http/delete', headers })

  const stored = await database.db.withSchema(database.schema).selectFrom('keygate_api_keys').select('hash').execute()
  const hashes = stored.map((row) => row.hash as string)
  t.equal(hashes.length, 2, 'both keys are stored, the deleted one marked deleted')
  const logText = logs.text()
  t.equal(app.log.level, 'trace')
  t.match(logText, /"msg":"incoming request"/, 'requests were logged')
  t.match(logText, /host route failed/, 'errors were logged')
  for (const key of secrets) {
    const secret = key.slice(key.indexOf('_') + 1 + 8)
    t.equal(logText.includes(secret), false, 'no key secret in the log')
    t.equal(list.body.includes(secret), false, 'no key secret in the listing')
  }
  for (const hash of hashes) {
    const digest = hash.slice(hash.lastIndexOf('$') + 1)
    t.equal(logText.includes(digest), false, 'no hash in the log')
    t.equal(list.body.includes(digest), false, 'no hash in the listing')
  }
  t.equal(logText.includes('$argon2id$'), false)
  t.equal(list.body.includes('argon2'), false)
})
