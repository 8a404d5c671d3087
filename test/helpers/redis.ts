import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined

export const needsRedis = REDIS_URL === undefined ? 'needs REDIS_URL' : false

/** A Redis client for one test, closed when it ends. */
export function redisClient (t: Test): Redis {
  const client = new Redis(REDIS_URL as string)
  t.teardown(() => client.disconnect())
  return client
}

/** A counter prefix of its own, so tests never share counters. */
export function uniqueKeyPrefix (): string {
  return `keygate-test:${process.pid}:${randomBytes(4).toString('hex')}:`
}
