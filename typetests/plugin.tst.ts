import Fastify from 'fastify'
import { Kysely, PostgresDialect } from 'kysely'
import { Cluster, Redis } from 'ioredis'
import pg from 'pg'
import { describe, expect, test } from 'tstyche'
import keygate, { type AuthenticatedKey, type CreatedKey, type KeyInfo, type KeygateOptions, type RedisClient, type SignedInUser } from '../lib/index.js'
import type { RedisClusterClient } from '../lib/redis/client.js'

const app = Fastify()
const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool() }) })
const handler = async (): Promise<object> => ({})
type SignIn = NonNullable<KeygateOptions['authenticateManagement']>

describe('registering the plugin', () => {
  test('takes a connection string or a Kysely instance', () => {
    expect(app.register).type.toBeCallableWith(keygate, { db: { connectionString: 'postgres://localhost/app' } })
    expect(app.register).type.toBeCallableWith(keygate, { db })
    expect(app.register).type.toBeCallableWith(keygate, { db: { connectionString: 'postgres://localhost/app', pool: { max: 5, statement_timeout: 1000 } } })
  })

  test('refuses a missing db, an unknown option and a value of the wrong type', () => {
    expect(app.register).type.not.toBeCallableWith(keygate, {})
    expect(app.register).type.not.toBeCallableWith(keygate, { db, maxkeys: 5 })
    expect(app.register).type.not.toBeCallableWith(keygate, { db, maxKeys: '5' })
    expect(app.register).type.not.toBeCallableWith(keygate, { db, headers: 'draft' })
    expect(app.register).type.not.toBeCallableWith(keygate, { db, onStoreError: 'ignore' })
    expect(app.register).type.not.toBeCallableWith(keygate, { db, scopes: 'query' })
    expect(app.register).type.not.toBeCallableWith(keygate, { db: { connectionString: 'x', pool: { max: '5' } } })
  })

  test('takes ioredis clients, single and cluster, as they are', () => {
    expect(app.register).type.toBeCallableWith(keygate, { db, redis: new Redis({ lazyConnect: true }) })
    expect(app.register).type.toBeCallableWith(keygate, { db, redis: new Cluster([], { lazyConnect: true }) })
    expect(app.register).type.not.toBeCallableWith(keygate, { db, redis: 'redis://localhost' })
  })

  test('a Cluster has what the plugin uses of one: sharded pub/sub, and a duplicate that takes options', () => {
    expect(new Cluster([], { lazyConnect: true, shardedSubscribers: true })).type.toBeAssignableTo<RedisClusterClient>()
    expect(new Redis({ lazyConnect: true })).type.toBeAssignableTo<RedisClient>()
  })

  test('the sign-in function answers a person or null', () => {
    expect(async () => null).type.toBeAssignableTo<SignIn>()
    expect((): SignedInUser => ({ tenant: 't', user: 'u', scopes: ['keys:read'] })).type.toBeAssignableTo<SignIn>()
    expect(async () => ({ user: 'u' })).type.not.toBeAssignableTo<SignIn>()
  })
})

describe('config.apiKey on a route', () => {
  test('is false or the scopes the key needs', () => {
    expect(app.get).type.toBeCallableWith('/health', { config: { apiKey: false } }, handler)
    expect(app.get).type.toBeCallableWith('/v1/federate', { config: { apiKey: { scopes: ['federate'] } } }, handler)
    expect(app.get).type.toBeCallableWith('/v1/any', { config: {} }, handler)
  })

  test('refuses true, an empty object, a scope that is not a string and an unknown property', () => {
    expect(app.get).type.not.toBeCallableWith('/x', { config: { apiKey: {} } }, handler)
    expect(app.get).type.not.toBeCallableWith('/x', { config: { apiKey: true } }, handler)
    expect(app.get).type.not.toBeCallableWith('/x', { config: { apiKey: { scopes: 'federate' } } }, handler)
    expect(app.get).type.not.toBeCallableWith('/x', { config: { apiKey: { scopes: [42] } } }, handler)
    expect(app.get).type.not.toBeCallableWith('/x', { config: { apiKey: { scope: ['federate'] } } }, handler)
    expect(app.route).type.not.toBeCallableWith({ method: 'GET', url: '/x', config: { apiKey: true }, handler })
  })
})

describe('what the plugin adds', () => {
  test('request.apiKey is the authenticated key or null', () => {
    app.get('/', async (request) => {
      expect(request.apiKey).type.toBe<AuthenticatedKey | null>()
      return {}
    })
  })

  test('app.keygate creates keys with a typed input and answers the created key once', async () => {
    expect(app.keygate.createKey({ name: 'ci', keyFor: 'GENERIC' })).type.toBe<Promise<CreatedKey>>()
    expect(app.keygate.createKey).type.not.toBeCallableWith({ name: 'ci', keyFor: 'SOMETHING' })
    expect(app.keygate.createKey).type.not.toBeCallableWith({ name: 'ci', keyFor: 'GENERIC', scopes: 'query' })
    expect(app.keygate.listKeys()).type.toBe<Promise<KeyInfo[]>>()
  })
})
