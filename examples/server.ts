// The example host app that `npm start` runs.
//   DATABASE_URL  PostgreSQL connection string; without it, PGlite (Postgres in WASM) in memory
//   PGLITE_DIR    keep the PGlite data in this folder instead of memory
//   REDIS_URL     register @fastify/redis
//   REDIS_CLUSTER_NODES  host:port,host:port,...: register @fastify/redis with a Redis Cluster
//                 on those nodes instead (any of them will do; the others are discovered)
//   KEYGATE_SECRET, PORT (3000), HOST (127.0.0.1)
//   GET /docs     the OpenAPI document with Swagger UI (as JSON at /docs/json); public
//   GET /metrics  Prometheus metrics (examples/metrics.ts); public in this example only
//   GET /keys-console  the key-management console (sign in with a key holding keys:read); its URL
//                 is printed once the server listens
//   OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL  let people sign in to the management routes with
//                 an ID token from that OpenID Connect provider (see examples/oidc-sign-in.ts)
import { PGlite } from '@electric-sql/pglite'
import fastifyRedis from '@fastify/redis'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify from 'fastify'
import { Cluster } from 'ioredis'
import { Kysely, PGliteDialect } from 'kysely'
import keygate, { type KeygateOptions } from '../lib/index.js'
import { metricsRoute } from './metrics.js'
import { oidcSignIn } from './oidc-sign-in.js'

const env = process.env

function database (): KeygateOptions['db'] {
  if (env.DATABASE_URL !== undefined && env.DATABASE_URL !== '') return { connectionString: env.DATABASE_URL }
  // Host-owned: the plugin never closes a Kysely it is given, so the server does on close.
  return new Kysely({ dialect: new PGliteDialect({ pglite: new PGlite(env.PGLITE_DIR) }) })
}

/** `host:port,host:port` as ioredis's startup nodes; a bad entry stops the server at once. */
function clusterNodes (list: string): Array<{ host: string, port: number }> {
  return list.split(',').map((entry) => {
    const match = /^\s*(.+):(\d+)\s*$/.exec(entry)
    if (match === null) throw new Error(`REDIS_CLUSTER_NODES: expected host:port, got "${entry}"`)
    return { host: match[1] as string, port: Number(match[2]) }
  })
}

// PGlite's first start (WebAssembly) and the migrations can take more than avvio's default 10 s
// on a busy machine.
const app = Fastify({ logger: true, pluginTimeout: 60_000 })
const db = database()
if ('destroy' in db) app.addHook('onClose', async () => await db.destroy())

if (env.REDIS_CLUSTER_NODES !== undefined && env.REDIS_CLUSTER_NODES !== '') {
  await app.register(fastifyRedis, { client: new Cluster(clusterNodes(env.REDIS_CLUSTER_NODES)), closeClient: true })
} else if (env.REDIS_URL !== undefined && env.REDIS_URL !== '') {
  await app.register(fastifyRedis, { url: env.REDIS_URL, closeClient: true })
}
const oidc = env.OIDC_ISSUER !== undefined && env.OIDC_AUDIENCE !== undefined && env.OIDC_JWKS_URL !== undefined
  ? oidcSignIn({ issuer: env.OIDC_ISSUER, audience: env.OIDC_AUDIENCE, jwksUrl: env.OIDC_JWKS_URL })
  : undefined
// Before keygate: @fastify/swagger documents the routes registered after it, the key routes included.
await app.register(fastifySwagger, { openapi: { openapi: '3.1.0', info: { title: 'fastify-keygate example', version: '1.0.0' } } })
await app.register(keygate, { db, secret: env.KEYGATE_SECRET, console: true, ...(oidc === undefined ? {} : { authenticateManagement: oidc }) })
// The documentation is public: in this context every route is marked so as it is added.
await app.register(async (docs) => {
  docs.addHook('onRoute', (route) => { route.config = { ...route.config, apiKey: false } })
  await docs.register(fastifySwaggerUi, { routePrefix: '/docs' })
})

app.get('/health', { config: { apiKey: false } }, async () => ({ status: 'ok' }))
// Prometheus metrics from keygate's diagnostics channels. Public here; protect it in a real deployment.
await app.register(metricsRoute)

app.get('/api/v1/endpoints', async (request) => ({
  key: request.apiKey?.identifier,
  endpoints: ['/v1/federate', '/v1/connectors']
}))

app.post('/v1/federate', { config: { apiKey: { scopes: ['federate'] } } }, async (request) => ({
  query: (request.body as { query?: unknown } | undefined)?.query ?? null,
  answer: 'federated'
}))

app.get('/v1/connectors', { config: { apiKey: { scopes: ['connector:read'] } } }, async () => ({
  connectors: []
}))

app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async (request, reply) => {
  return await reply.code(201).send({ created: request.body ?? null })
})

await app.ready()
if ((await app.keygate.listKeys()).length === 0) {
  const { apiKey } = await app.keygate.createKey({ name: 'bootstrap', keyFor: 'GENERIC' })
  // Printed straight to stdout, never through the logger: the key must not land in log storage.
  process.stdout.write(`First API key (shown once): ${apiKey}\n`)
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { void app.close().then(() => process.exit(0)) })
}

const address = await app.listen({ port: Number(env.PORT ?? 3000), host: env.HOST ?? '127.0.0.1' })
process.stdout.write(`Key-management console: ${address}/keys-console\n`)
