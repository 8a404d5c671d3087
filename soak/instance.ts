// One soak instance: Fastify + @fastify/redis + fastify-keygate with one guarded route, on
// loopback. Forked by soak/run.ts, which it talks to over IPC:
//   → { type: 'ready', port }         listening
//   → { type: 'heard', keyId, at }    an invalidation reached this instance's key cache (at: Date.now())
//   ← 'heap' → { type: 'heap', ... }  heapUsed after a full GC, event-loop delay since the last sample
//   ← 'close'                         close the app and exit
// Settings come in the environment (the secret too: never on a command line).
import { monitorEventLoopDelay } from 'node:perf_hooks'
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import keygate from '../lib/index.js'
import { SOAK_ARGON2 } from './seed.js'

export interface HeapSample {
  type: 'heap'
  at: number
  heapUsed: number
  rss: number
  /** CPU time used so far (user + system), µs. */
  cpu: number
  /** Event-loop delay since the previous sample, ms. */
  loopP99: number
  loopMax: number
}

export type InstanceMessage =
  | { type: 'ready', port: number }
  | { type: 'heard', keyId: string | null, at: number }
  | HeapSample

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`soak instance: ${name} is not set`)
  return value
}

const send = (message: InstanceMessage): void => { process.send?.(message) }
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('soak instance: run with --expose-gc')

const app = Fastify({ logger: { level: 'warn' } })
await app.register(fastifyRedis, { url: env('SOAK_REDIS_URL'), closeClient: true })
await app.register(keygate, {
  db: { connectionString: env('SOAK_DATABASE_URL'), pool: { max: 4 } },
  schema: env('SOAK_SCHEMA'),
  secret: Buffer.from(env('SOAK_SECRET'), 'hex'),
  argon2: SOAK_ARGON2,
  maxKeys: 1_000_000,
  // The soak judges the plugin, not the machine's scheduling: on a loaded machine an event loop
  // stalls past the 250 ms default, and `allow` then admits uncounted, as documented. 2 s still
  // fails the run when Redis is really gone.
  redisTimeout: 2_000
})
app.get('/soak', { config: { apiKey: { scopes: ['query'] } } }, async () => ({ ok: true }))
await app.ready()
// When this instance's cache heard of a change: the soak's "one pub/sub hop" for this instance.
// Registered after the plugin's own listener, so by now the plugin has applied it.
app.keygateCache?.onInvalidate((keyId) => send({ type: 'heard', keyId, at: Date.now() }))

const loop = monitorEventLoopDelay({ resolution: 10 })
loop.enable()
process.on('message', (message) => {
  if (message === 'heap') {
    gc()
    const { heapUsed, rss } = process.memoryUsage()
    const { user, system } = process.cpuUsage()
    send({ type: 'heap', at: Date.now(), heapUsed, rss, cpu: user + system, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 })
    loop.reset()
  } else if (message === 'close') {
    const forced = setTimeout(() => process.exit(1), 10_000)
    forced.unref()
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
})
// The driver is gone (it crashed or was killed): never outlive it.
process.on('disconnect', () => process.exit(1))

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
send({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 })
