import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { MemoryRateLimitStore } from '../../lib/ratelimit/memory.store.js'
import { batches, RedisRateLimitStore } from '../../lib/ratelimit/redis.store.js'
import type { RateLimitStore, WindowRequest } from '../../lib/ratelimit/store.js'
import { LIVE_REDIS_TIMEOUT, monitorRedis, needsRedis, redisClient, uniqueKeyPrefix } from '../helpers/redis.js'

// 2026-03-03T12:00:00Z: aligned to the minute and the hour.
const T0 = Date.UTC(2026, 2, 3, 12, 0, 0)

function windows (at: number, perMinute: number, perHour: number): WindowRequest[] {
  return [
    { name: 'minute', limit: perMinute, start: at - (at % 60_000), durationMs: 60_000 },
    { name: 'hour', limit: perHour, start: at - (at % 3_600_000), durationMs: 3_600_000 }
  ]
}

/** The one contract every store keeps; run against each implementation. */
function storeContract (name: string, makeStore: (t: Test) => RateLimitStore, skip: string | false = false): void {
  t.test(`${name}: the RateLimitStore contract`, { skip }, async (t) => {
    await t.test('counts every window and refuses at the limit, consuming none', async (t) => {
      const store = makeStore(t)
      const request = { keyId: 'k1', windows: windows(T0, 3, 10), now: T0 }
      t.same(await store.consume(request), { allowed: true, counts: [1, 1] })
      t.same(await store.consume(request), { allowed: true, counts: [2, 2] })
      t.same(await store.consume(request), { allowed: true, counts: [3, 3] })
      t.same(await store.consume(request), { allowed: false, counts: [3, 3] }, 'minute full: refused')
      t.same(await store.consume(request), { allowed: false, counts: [3, 3] }, 'and the hour was not counted')
      const nextMinute = T0 + 60_000
      t.same(await store.consume({ keyId: 'k1', windows: windows(nextMinute, 3, 10), now: nextMinute }), { allowed: true, counts: [1, 4] },
        'a new minute starts at zero; the hour goes on')
    })

    await t.test('the hour refuses while the minute has room', async (t) => {
      const store = makeStore(t)
      for (let minute = 0; minute < 2; minute++) {
        const at = T0 + minute * 60_000
        t.equal((await store.consume({ keyId: 'k2', windows: windows(at, 10, 2), now: at })).allowed, true)
      }
      const at = T0 + 2 * 60_000
      t.same(await store.consume({ keyId: 'k2', windows: windows(at, 10, 2), now: at }), { allowed: false, counts: [0, 2] })
      const nextHour = T0 + 3_600_000
      t.same(await store.consume({ keyId: 'k2', windows: windows(nextHour, 10, 2), now: nextHour }), { allowed: true, counts: [1, 1] })
    })

    await t.test('keys are counted apart', async (t) => {
      const store = makeStore(t)
      await store.consume({ keyId: 'a', windows: windows(T0, 1, 10), now: T0 })
      t.same(await store.consume({ keyId: 'b', windows: windows(T0, 1, 10), now: T0 }), { allowed: true, counts: [1, 1] })
      t.same(await store.consume({ keyId: 'a', windows: windows(T0, 1, 10), now: T0 }), { allowed: false, counts: [1, 1] })
    })

    await t.test('a single window', async (t) => {
      const store = makeStore(t)
      const hourOnly = [windows(T0, 1, 2)[1] as WindowRequest]
      t.same(await store.consume({ keyId: 'h', windows: hourOnly, now: T0 }), { allowed: true, counts: [1] })
      t.same(await store.consume({ keyId: 'h', windows: hourOnly, now: T0 }), { allowed: true, counts: [2] })
      t.same(await store.consume({ keyId: 'h', windows: hourOnly, now: T0 }), { allowed: false, counts: [2] })
    })

    await t.test('exact under concurrency: 200 at once against 60 admit 60', async (t) => {
      const store = makeStore(t)
      const results = await Promise.all(Array.from({ length: 200 }, async () =>
        await store.consume({ keyId: 'busy', windows: windows(T0, 60, 1000), now: T0 })))
      t.equal(results.filter((r) => r.allowed).length, 60)
      t.same(results.filter((r) => r.allowed).map((r) => r.counts[0]).sort((a, b) => (a ?? 0) - (b ?? 0)),
        Array.from({ length: 60 }, (_, i) => i + 1), 'each admitted request saw its own count')
    })

    await t.test('credits: a counter per version in one window name, a window that never ends, and peek', async (t) => {
      const store = makeStore(t)
      const credits = (counter: string, limit: number): WindowRequest => ({ name: 'credits', counter, limit, start: 0, durationMs: Infinity })
      const request = (counter: string, limit: number) => ({ keyId: 'c', windows: [...windows(T0, 10, 100), credits(counter, limit)], now: T0 })
      t.same(await store.consume(request('v1', 1)), { allowed: true, counts: [1, 1, 1] })
      t.same(await store.consume(request('v1', 1)), { allowed: false, counts: [1, 1, 1] }, 'credits refuse; the minute and hour were not counted')
      t.same(await store.consume(request('v2', 1)), { allowed: true, counts: [2, 2, 1] }, 'another version counts apart; the rate windows go on')
      const later = T0 + 7_200_000
      t.same(await store.consume({ keyId: 'c', windows: [credits('v2', 2)], now: later }), { allowed: true, counts: [2] }, 'hours later, the count is still there')
      t.ok(store.peek, 'the store can peek')
      t.same(await store.peek!([
        { keyId: 'c', windows: [credits('v1', 1), credits('v2', 2)], now: later },
        { keyId: 'nobody', windows: [credits('v1', 1)], now: later },
        { keyId: 'c', windows: windows(later, 10, 100), now: later }
      ]), [[1, 2], [0], [0, 0]], 'counts as they are, 0 for counters not started, and nothing counted')
      t.same(await store.consume({ keyId: 'c', windows: [credits('v2', 3)], now: later }), { allowed: true, counts: [3] })
    })

    await t.test('several keys at once, a refusal among them: each request counted as if alone', async (t) => {
      const store = makeStore(t)
      const consume = async (keyId: string, perMinute: number) => await store.consume({ keyId, windows: windows(T0, perMinute, 10), now: T0 })
      t.same(await Promise.all([consume('x', 1), consume('y', 2), consume('x', 1), consume('y', 2), consume('y', 2), consume('z', 5)]), [
        { allowed: true, counts: [1, 1] },
        { allowed: true, counts: [1, 1] },
        { allowed: false, counts: [1, 1] },
        { allowed: true, counts: [2, 2] },
        { allowed: false, counts: [2, 2] },
        { allowed: true, counts: [1, 1] }
      ])
    })
  })
}

storeContract('memory', () => new MemoryRateLimitStore())
storeContract('redis', (t) => new RedisRateLimitStore({ client: redisClient(t), keyPrefix: uniqueKeyPrefix(), timeoutMs: LIVE_REDIS_TIMEOUT }), needsRedis)

t.test('memory: ended windows are dropped, so keys seen once do not stay', async (t) => {
  const store = new MemoryRateLimitStore()
  for (let i = 0; i < 100_000; i++) await store.consume({ keyId: `key-${i}`, windows: windows(T0, 60, 1000), now: T0 })
  t.equal(store.size, 200_000, 'one minute and one hour counter per key')
  const later = T0 + 3_600_000
  await store.consume({ keyId: 'last', windows: windows(later, 60, 1000), now: later })
  t.equal(store.size, 2, 'an hour later only the newest key\'s counters remain')
})

t.test('redis: counters expire with their window and share a hash tag', { skip: needsRedis }, async (t) => {
  const client = redisClient(t)
  const keyPrefix = uniqueKeyPrefix()
  const store = new RedisRateLimitStore({ client, keyPrefix, timeoutMs: LIVE_REDIS_TIMEOUT })
  const at = T0 + 15_000
  await store.consume({ keyId: 'ttl', windows: windows(at, 60, 1000), now: at })
  const keys = (await client.keys(`${keyPrefix}*`)).sort()
  t.same(keys, [`${keyPrefix}{ttl}:hour:${T0}`, `${keyPrefix}{ttl}:minute:${T0}`])
  const minuteTtl = await client.pttl(`${keyPrefix}{ttl}:minute:${T0}`)
  t.ok(minuteTtl > 45_000 && minuteTtl <= 50_000, `the minute counter lives to its window's end plus 5 s slack (${minuteTtl} ms)`)
  const hourTtl = await client.pttl(`${keyPrefix}{ttl}:hour:${T0}`)
  t.ok(hourTtl > 3_585_000 && hourTtl <= 3_590_000, `the hour counter likewise (${hourTtl} ms)`)
  await client.del(...keys)
})

t.test('redis: credits counters share the hash tag; one that never ends does not expire, a refill period\'s does', { skip: needsRedis }, async (t) => {
  const client = redisClient(t)
  const keyPrefix = uniqueKeyPrefix()
  const store = new RedisRateLimitStore({ client, keyPrefix, timeoutMs: LIVE_REDIS_TIMEOUT })
  const dayStart = Date.UTC(2026, 2, 3)
  await store.consume({
    keyId: 'lin',
    windows: [
      { name: 'credits', counter: '1700000000000', limit: 5, start: 0, durationMs: Infinity },
      { name: 'credits:day', counter: '1700000000001', limit: 5, start: dayStart, durationMs: 86_400_000 }
    ],
    now: T0
  })
  const forever = `${keyPrefix}{lin}:credits:0:1700000000000`
  const daily = `${keyPrefix}{lin}:credits:day:${dayStart}:1700000000001`
  t.same((await client.keys(`${keyPrefix}*`)).sort(), [forever, daily].sort())
  t.equal(await client.pttl(forever), -1, 'no expiry: expiring it would hand the credits back')
  const dailyTtl = await client.pttl(daily)
  t.ok(dailyTtl > 43_195_000 && dailyTtl <= 43_205_000, `the day's counter lives to the day's end plus 5 s slack (${dailyTtl} ms)`)
  await client.del(forever, daily)
})

/**
 * Redis's own view of what the store sends, in order: each script call as its number of keys, and
 * `'ping'` where the test sent a PING of its own. Redis runs a connection's commands in the order
 * they were written, so a call listed before a PING was written before it.
 */
async function sentToRedis (t: Test, client: Redis, keyPrefix: string): Promise<() => Promise<Array<number | 'ping'>>> {
  const monitor = await monitorRedis(t)
  const sent: Array<number | 'ping'> = []
  const marker = `${keyPrefix}done`
  const seenAll = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[]) => {
      // A fresh client sends its first call as EVAL (the script's text), then EVALSHA.
      const command = args[0]?.toLowerCase()
      if ((command === 'eval' || command === 'evalsha') && args[3]?.startsWith(keyPrefix) === true) sent.push(Number(args[2]))
      if (command === 'ping' && args[1] === keyPrefix) sent.push('ping')
      if (command === 'ping' && args[1] === marker) resolve()
    })
  })
  return async () => {
    await client.ping(marker)
    await seenAll
    return sent
  }
}

t.test('redis: a call goes out as soon as 8 requests wait, the rest when the event-loop turn ends', { skip: needsRedis }, async (t) => {
  const client = redisClient(t)
  const keyPrefix = uniqueKeyPrefix()
  const store = new RedisRateLimitStore({ client, keyPrefix, timeoutMs: LIVE_REDIS_TIMEOUT })
  const sent = await sentToRedis(t, client, keyPrefix)
  // 19 requests in one turn, as when a busy server reads many at once; a PING written after them,
  // still in the same turn, shows which calls had already gone out.
  const consumed = Array.from({ length: 19 }, (_, i) => store.consume({ keyId: `key${i % 3}`, windows: windows(T0, 1000, 1000), now: T0 }))
  void client.ping(keyPrefix)
  const results = await Promise.all(consumed)
  t.equal(results.filter((r) => r.allowed).length, 19)
  t.same(results.slice(0, 6).map((r) => r.counts), [[1, 1], [1, 1], [1, 1], [2, 2], [2, 2], [2, 2]])
  // Each call holds one group per key (requests of one key with the same windows), two counters each.
  t.same(await sent(), [6, 6, 'ping', 6], 'two calls of 8 requests at once, the last 3 at the end of the turn')
})

t.test('redis: a burst goes out in calls of 8, each request counted in order', { skip: needsRedis }, async (t) => {
  const client = redisClient(t)
  const keyPrefix = uniqueKeyPrefix()
  const store = new RedisRateLimitStore({ client, keyPrefix, timeoutMs: LIVE_REDIS_TIMEOUT })
  const sent = await sentToRedis(t, client, keyPrefix)
  const results = await Promise.all(Array.from({ length: 250 }, async (_, i) =>
    await store.consume({ keyId: 'one', windows: windows(T0, 100, 1000), now: T0 })))
  t.same(results.map((r) => r.allowed), Array.from({ length: 250 }, (_, i) => i < 100), 'the first 100 admitted, then refused')
  t.same(results.map((r) => r.counts[1]), Array.from({ length: 250 }, (_, i) => Math.min(i + 1, 100)), 'each saw the count after its own turn')
  t.same(await sent(), Array.from({ length: 32 }, () => 2), '31 calls of 8 requests and one of 2, each one group of one key: its two counters')
})

t.test('redis: requests of one key in one call are counted in order, whatever their windows', { skip: needsRedis }, async (t) => {
  const client = redisClient(t)
  const keyPrefix = uniqueKeyPrefix()
  const store = new RedisRateLimitStore({ client, keyPrefix, timeoutMs: LIVE_REDIS_TIMEOUT })
  const sent = await sentToRedis(t, client, keyPrefix)
  // One call of 8 (sent at once): a limit raised from 2 to 4 a minute between the third and the
  // fourth request, lowered again before the seventh; another key between them, an hour of 3 for
  // the last. Counted one by one, this is what each sees.
  const asked: Array<[string, number, number]> = [['a', 2, 10], ['a', 2, 10], ['a', 2, 10], ['b', 1, 10], ['a', 4, 10], ['a', 4, 10], ['a', 2, 10], ['a', 4, 3]]
  const results = await Promise.all(asked.map(async ([keyId, perMinute, perHour]) =>
    await store.consume({ keyId, windows: windows(T0, perMinute, perHour), now: T0 })))
  t.same(results, [
    { allowed: true, counts: [1, 1] },
    { allowed: true, counts: [2, 2] },
    { allowed: false, counts: [2, 2] },
    { allowed: true, counts: [1, 1] },
    { allowed: true, counts: [3, 3] },
    { allowed: true, counts: [4, 4] },
    { allowed: false, counts: [4, 4] },
    { allowed: false, counts: [4, 4] }
  ])
  t.same(await sent(), [2 + 2 + 2 + 2 + 2], 'one call: a (3 requests), b, a (2), a (1), a (1), two counters each')
})

t.test('batches: any mix of key ids, or one key id per call on a cluster; at most max per call', async (t) => {
  const item = (keyId: string, n: number) => ({ request: { keyId }, n })
  const pending = [item('a', 1), item('b', 2), item('a', 3), item('a', 4), item('c', 5)]
  const ns = (calls: Array<Array<{ n: number }>>) => calls.map((call) => call.map(({ n }) => n))
  t.same(ns(batches(pending, false, 100)), [[1, 2, 3, 4, 5]])
  t.same(ns(batches(pending, false, 2)), [[1, 2], [3, 4], [5]])
  t.same(ns(batches(pending, true, 100)), [[1, 3, 4], [2], [5]])
  t.same(ns(batches(pending, true, 2)), [[1, 3], [4], [2], [5]])
  t.same(batches([], false, 100), [])
})
