// What `npm run soak` (issue 16) found, one test each.
//
// Under load on a busy machine the instances' event loops stalled for longer than `redisTimeout`
// (250 ms). A Redis call's timer was then due in the same turn as Redis's answer, which had come
// within a millisecond, and timers run before the event loop reads its sockets: the call counted
// as a Redis failure. With `onStoreError: 'allow'` the request went through uncounted, also when
// its key was over its limit (the soak saw 200s without rate-limit headers); key-cache reads
// became misses and went to the database.
import { Redis } from 'ioredis'
import t from 'tap'
import { createLimiter } from '../../lib/ratelimit/limiter.js'
import { RedisRateLimitStore } from '../../lib/ratelimit/redis.store.js'
import { withTimeout } from '../../lib/redis/timeout.js'
import { needsRedis, REDIS_URL, uniqueKeyPrefix } from '../helpers/redis.js'

const TIMEOUT_MS = 250
// Half a minute into a minute: both requests of a test fall into one window.
const MID_MINUTE = Date.UTC(2026, 2, 3, 12, 0, 30)

/** Blocks the event loop, as a busy or starved process does, while Redis answers meanwhile. */
function stall (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* busy */ }
}

/** One turn of the event loop: what was queued with setImmediate before it has run. */
async function nextTurn (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

const silentLog = { warn: () => {} } as never

t.test('an answer that came in time is taken, though the event loop stalled past the timeout', { skip: needsRedis }, async (t) => {
  const redis = new Redis(REDIS_URL as string)
  t.teardown(() => redis.disconnect())
  await redis.ping()
  const answer = withTimeout(redis.ping(), TIMEOUT_MS)
  stall(TIMEOUT_MS + 150)
  t.equal(await answer, 'PONG')
})

t.test('a call that never settles still fails after the timeout', async (t) => {
  const started = Date.now()
  await t.rejects(withTimeout(new Promise(() => {}), 50), { message: 'Redis did not answer within 50 ms' })
  t.ok(Date.now() - started < 1000)
})

t.test('a key over its limit is refused, not let through uncounted, when the loop stalls past redisTimeout', { skip: needsRedis }, async (t) => {
  const redis = new Redis(REDIS_URL as string)
  t.teardown(() => redis.disconnect())
  const store = new RedisRateLimitStore({ client: redis, keyPrefix: uniqueKeyPrefix(), timeoutMs: TIMEOUT_MS })
  const limit = createLimiter({ store, now: () => MID_MINUTE, onStoreError: 'allow', log: silentLog })
  const limits = { perMinute: 1, perHour: null }

  const first = await limit('stalled', limits)
  t.equal(first?.allowed, true)
  t.equal(first?.windows[0]?.remaining, 0)

  const second = limit('stalled', limits) as Promise<unknown>
  // The store sends its script call one turn later; then the loop stalls while Redis answers.
  await nextTurn()
  stall(TIMEOUT_MS + 150)
  const decision = await second as { allowed: boolean, retryAfter: number } | null
  // Before the fix: null, i.e. "store failed, let it through" (onStoreError: 'allow'), a second
  // request admitted under a limit of one a minute.
  t.not(decision, null, 'Redis answered in time: the store did not fail')
  t.equal(decision?.allowed, false)
  t.equal(decision?.retryAfter, 30)
})
