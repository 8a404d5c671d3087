import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined

export const needsRedis = REDIS_URL === undefined ? 'needs REDIS_URL' : false

/**
 * `redisTimeout` for tests against the live Redis: long enough that only a Redis that is really
 * gone trips it. A loaded machine can starve the event loop for far longer than the 250 ms
 * default, and a timeout there turns an expected 200 into a 503. Tiny timeouts belong to the
 * tests of a Redis that never answers.
 */
export const LIVE_REDIS_TIMEOUT = 10_000

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

/**
 * A connection in MONITOR mode, closed when the test ends. ioredis marks a connection as
 * monitoring a microtask after Redis confirms MONITOR, so a line about another client's command
 * in the same read is reported as "Command queue state error" (redis/ioredis#1981), and its own
 * `monitor()` then rejects. Such a line is from before the monitor was ready, so before anything
 * the test sends: it is ignored here.
 */
export async function monitorRedis (t: Test): Promise<Redis> {
  const monitor = new Redis(REDIS_URL as string, { monitor: true })
  t.teardown(() => monitor.disconnect())
  monitor.on('error', (error: Error) => {
    if (!error.message.startsWith('Command queue state error')) throw error
  })
  await new Promise((resolve) => monitor.once('monitoring', resolve))
  return monitor
}
