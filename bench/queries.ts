// Database statements per request and per key created, counted by Kysely's `log` hook on the
// real path (PGlite, the plugin's defaults): the capacity guide's database figures.
// `node --import tsx bench/queries.ts`; `npm run bench` runs it too.
import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import Fastify from 'fastify'
import { Kysely, PGliteDialect } from 'kysely'
import keygate from '../lib/index.js'
import { SEED_ARGON2 } from './app.js'

const KEYS = 100
const ROUNDS = 20
// Long enough to see each key renewed (cacheTtl 5 s) and its usage written (every 10 s) more than once.
const STEADY_MS = 21_000
// Far above what the run sends: no request is refused.
const NO_LIMIT = { perMinute: 1_000_000, perHour: 100_000_000 }

type Kind = 'select' | 'insert' | 'update' | 'delete' | 'other'
const counts: Record<Kind, number> = { select: 0, insert: 0, update: 0, delete: 0, other: 0 }
let counting = false

function kindOf (sql: string): Kind {
  const verb = /^\s*(?:with\b[\s\S]*?\)\s*)?(select|insert|update|delete)\b/i.exec(sql)?.[1]?.toLowerCase()
  return (verb as Kind | undefined) ?? 'other'
}

/** The counts so far, and zero again. */
function take (): Record<Kind, number> {
  const taken = { ...counts }
  for (const kind of Object.keys(counts) as Kind[]) counts[kind] = 0
  return taken
}

const db = new Kysely<any>({
  dialect: new PGliteDialect({ pglite: new PGlite() }),
  log: (event) => { if (counting && event.level === 'query') counts[kindOf(event.query.sql)]++ }
})
const app = Fastify({ pluginTimeout: 0 })
await app.register(keygate, { db, secret: randomBytes(32), argon2: SEED_ARGON2, maxKeys: 1_000_000 })
app.get('/hello', async () => ({ hello: 'world' }))
await app.ready()

counting = true
const created = []
for (let i = 0; i < KEYS; i++) created.push(await app.keygate.createKey({ name: `k${i}`, plan: 'enterprise', rateLimit: NO_LIMIT }))
const perKeyCreated = take()

const authorizations = created.map(({ apiKey }) => `Bearer ${apiKey}`)
async function everyKeyOnce (): Promise<void> {
  const responses = await Promise.all(authorizations.map(async (authorization) => await app.inject({ url: '/hello', headers: { authorization } })))
  const failed = responses.find((res) => res.statusCode !== 200)
  if (failed !== undefined) throw new Error(`a request failed: ${failed.statusCode}`)
}
// First use: each key read once (and put through argon2 once).
await everyKeyOnce()
const firstUse = take()
// Within the keys' freshness: the hot path.
for (let round = 0; round < ROUNDS; round++) await everyKeyOnce()
const hotPath = take()
// Steady use over several freshness periods and usage flushes: what runs beside the requests.
const started = performance.now()
let steadyRequests = 0
while (performance.now() - started < STEADY_MS) {
  await everyKeyOnce()
  steadyRequests += KEYS
  await new Promise((resolve) => setTimeout(resolve, 100))
}
const steadyMinutes = (performance.now() - started) / 60_000
const steady = take()
counting = false
await app.close()
await db.destroy()

function statements (c: Record<Kind, number>, per: number): string {
  const reads = c.select / per
  const writes = (c.insert + c.update + c.delete) / per
  return `${reads.toFixed(2)} reads, ${writes.toFixed(2)} writes${c.other > 0 ? `, ${(c.other / per).toFixed(2)} other` : ''}`
}
process.stdout.write([
  `Database statements (counted by Kysely's log hook; PGlite, default options, ${KEYS} keys):`,
  '',
  `- per key created (\`createKey\`, its audit event included): ${statements(perKeyCreated, KEYS)}`,
  `- per key at its first use: ${statements(firstUse, KEYS)}`,
  `- per request with a key read within \`cacheTtl\` (${(ROUNDS * KEYS).toLocaleString('en')} requests): ${statements(hotPath, ROUNDS * KEYS)}`,
  `- in steady use (${steadyRequests.toLocaleString('en')} requests over ${(steadyMinutes * 60).toFixed(0)} s, each key about 9 times a second): ` +
    `${statements(steady, steadyMinutes)} a minute in all, ${statements(steady, steadyMinutes * KEYS)} a minute per key in use (renewals batched, usage written per flush)`,
  ''
].join('\n'))
