// Run in a process of its own by the issue 12 regression test: an app created, and given routes,
// before the plugin is loaded. Prints the answers to three requests as JSON on stdout; the app's
// error log goes to stderr.
import Fastify from 'fastify'

const app = Fastify({ logger: { level: 'error', stream: process.stderr } })
app.post('/typo', { config: { apiKey: { scope: ['connector:write'] } } } as never, async () => ({ ok: true }))
app.post('/scoped', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))

// Only now, after the app exists, is the plugin loaded.
const { default: keygate } = await import('../../lib/index.js')
const { openTestDatabase } = await import('./database.js')
const { FAST_ARGON2 } = await import('./app.js')
const db = await openTestDatabase()
await app.register(keygate, { db: db.db, schema: db.schema, argon2: FAST_ARGON2 })
await app.ready()
const { apiKey } = await app.keygate.createKey({ name: 'query-only', scopes: ['query'] })
const call = async (url: string) => await app.inject({ method: 'POST', url, headers: { authorization: apiKey } })
const answers = [await call('/typo'), await call('/typo'), await call('/scoped')]
process.stdout.write(JSON.stringify(answers.map((res) => [res.statusCode, res.json()])))
await app.close()
await db.close()
