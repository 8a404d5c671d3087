// Builds the benchmark contenders. Each answers GET /hello with the same small JSON body.
import { randomBytes } from 'node:crypto'
import { PGlite } from '@electric-sql/pglite'
import bearerAuth from '@fastify/bearer-auth'
import rateLimit from '@fastify/rate-limit'
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import keygate from '../lib/index.js'
import { argon2idHasher, type Argon2Options, OWASP_ARGON2 } from '../lib/keys/hasher.js'
import { generateKey } from '../lib/keys/key-text.js'
import { seedKeys } from './seed.js'
import { handRolledAuth } from './hand-rolled.js'

export type Contender = 'bare' | 'keygate' | 'keygate-redis' | 'bearer-auth' | 'bearer-auth-rate-limit-local' | 'bearer-auth-rate-limit' | 'hand-rolled'

export interface BuiltApp {
  app: FastifyInstance
  keys: string[]
  close: () => Promise<void>
}

// Far above anything a run can send: throughput runs must never be refused.
const NO_LIMIT = { perMinute: 2_000_000_000, perHour: 2_000_000_000 }
const SECRET = randomBytes(32)
const hello = { hello: 'world' }

/** The cheapest argon2id, for seeding thousands of keys; the first-use run uses OWASP's. */
export const SEED_ARGON2: Argon2Options = { memoryCost: 256, timeCost: 1, parallelism: 1 }

async function database (): Promise<{ db: Kysely<any>, schema: string, close: () => Promise<void> }> {
  const schema = `keygate_bench_${process.pid}`
  const url = process.env.DATABASE_URL
  const db = url !== undefined && url !== ''
    ? new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) })
    : new Kysely<any>({ dialect: new PGliteDialect({ pglite: new PGlite() }) })
  return {
    db,
    schema,
    close: async () => {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
      await db.destroy()
    }
  }
}

export interface BuildOptions {
  keyCount?: number
  argon2?: Argon2Options
  cacheSize?: number
}

export async function buildApp (contender: Contender, options: BuildOptions = {}): Promise<BuiltApp> {
  // No plugin timeout: startup is not measured, and the servers start all at once.
  const app = Fastify({ pluginTimeout: 0 })
  const closers: Array<() => Promise<void>> = [async () => await app.close()]
  let keys: string[] = []

  if (contender === 'keygate' || contender === 'keygate-redis') {
    const { db, schema, close } = await database()
    closers.push(close)
    if (contender === 'keygate-redis') await app.register(fastifyRedis, { url: process.env.REDIS_URL, closeClient: true })
    const argon2 = options.argon2 ?? SEED_ARGON2
    await app.register(keygate, { db, schema, secret: SECRET, argon2, maxKeys: 1_000_000, cacheSize: options.cacheSize ?? 10_000 })
    app.get('/hello', { config: { apiKey: { scopes: ['query'] } } }, async () => hello)
    await app.ready()
    keys = await seedKeys(db.withSchema(schema), { count: options.keyCount ?? 1, hasher: argon2idHasher(argon2), rateLimit: NO_LIMIT, scopes: ['query'] })
  } else if (contender === 'bearer-auth' || contender === 'bearer-auth-rate-limit-local' || contender === 'bearer-auth-rate-limit') {
    keys = [generateKey('metlo').text]
    await app.register(bearerAuth, { keys: new Set(keys) })
    const limit = { max: NO_LIMIT.perMinute, timeWindow: '1 minute', keyGenerator: (request: FastifyRequest) => request.headers.authorization ?? '' }
    if (contender === 'bearer-auth-rate-limit-local') {
      // @fastify/rate-limit's own store: an LRU map in this process.
      await app.register(rateLimit, limit)
    } else if (contender === 'bearer-auth-rate-limit') {
      const redis = new Redis(process.env.REDIS_URL as string)
      closers.push(async () => { redis.disconnect() })
      await app.register(rateLimit, { ...limit, redis })
    }
    app.get('/hello', async () => hello)
  } else if (contender === 'hand-rolled') {
    keys = [generateKey('metlo').text]
    handRolledAuth(app, keys, NO_LIMIT.perMinute)
    app.get('/hello', async () => hello)
  } else {
    app.get('/hello', async () => hello)
  }
  await app.ready()
  return { app, keys, close: async () => { for (const close of closers) await close() } }
}

export { OWASP_ARGON2 }
