import { Redis } from 'ioredis'
import t from 'tap'
import { createFingerprinter } from '../lib/auth/fingerprint.js'
import { buildAppWithDatabase, createKey, TEST_SECRET } from './helpers/app.js'
import { forgeKey, keyIdOf } from './helpers/keys.js'
import { captureLogs } from './helpers/log-capture.js'
import { privateRedis } from './helpers/private-redis.js'
import { needsRedis } from './helpers/redis.js'

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

t.test('store errors reach the log without what they carried: no entry, fingerprint, digest or key', { skip: needsRedis }, async (t) => {
  // A Redis that refuses every write (the memory limit reached, no eviction): ioredis then puts
  // the refused command, a whole cache entry included, on the error it raises.
  const url = await privateRedis(t, ['--maxmemory', '1', '--maxmemory-policy', 'noeviction'])
  const client = new Redis(url)
  t.teardown(() => client.disconnect())
  const logs = captureLogs()
  const { app, database } = await buildAppWithDatabase(t, {
    fastify: { logger: logs.logger },
    keygate: { redis: client, secret: TEST_SECRET },
    routes: (app) => { app.get('/data', async () => ({ ok: true })) }
  })
  const { apiKey } = await app.keygate.createKey({ name: 'k' })
  const res = await app.inject({ url: '/data', headers: { authorization: apiKey } })
  t.equal(res.statusCode, 200, 'the failed writes fail no request (onStoreError: allow)')
  const wrong = Array.from({ length: 3 }, (_, n) => forgeKey('metlo', keyIdOf(apiKey), `wrong${n}`))
  for (const key of wrong) t.equal((await app.inject({ url: '/data', headers: { authorization: key } })).statusCode, 401)

  const logText = logs.text()
  t.match(logText, /Redis key cache write failed/, 'the cache write failed, and said so')
  t.match(logText, /OOM command not allowed/, 'with the reason Redis gave')
  t.match(logText, /rate-limit store failed/)
  // The error's own kind, not the "Object" of the plain object a safe copy once was.
  const errors = logText.split('\n').filter((line) => line.includes('OOM command not allowed')).map((line) => JSON.parse(line).err)
  t.ok(errors.length > 0)
  t.same(new Set(errors.map((err: { type: string }) => err.type)), new Set(['ReplyError']), 'logged as a ReplyError')
  const fingerprint = createFingerprinter(Buffer.from(TEST_SECRET))
  const [row] = await database.db.withSchema(database.schema).selectFrom('keygate_api_keys').select('hash').execute()
  const secrets: Array<[string, string]> = [
    ['the key secret', apiKey.slice(apiKey.indexOf('_') + 9)],
    ['the key fingerprint', fingerprint(apiKey)],
    ['the stored hash digest', fingerprint(row!.hash as string)],
    ['the stored hash', (row!.hash as string).slice((row!.hash as string).lastIndexOf('$') + 1)],
    ...wrong.flatMap((key, n): Array<[string, string]> => [[`wrong secret ${n}`, key.slice(key.indexOf('_') + 9)], [`wrong secret ${n}'s fingerprint`, fingerprint(key)]])
  ]
  for (const [what, text] of secrets) t.equal(logText.includes(text), false, `${what} is not in the log`)
  t.equal(logText.includes('"args"'), false, 'no command arguments at all')
})
