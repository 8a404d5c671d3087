import type { RedisClient } from '../redis/client.js'
import { DEFAULTS } from '../defaults.js'
import { withTimeout } from '../redis/timeout.js'
import type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './store.js'

/**
 * Counts a batch of requests, one after another, as if each had come alone. For each request it
 * counts every window, and undoes them all if any went over its limit, so a refused request
 * consumes none (a script runs atomically: nobody sees the counts in between). Counting first
 * keeps the common case, an allowed request, to one INCR per window.
 *
 * KEYS: every request's window counters, in order. ARGV: per request, its number of windows n,
 * then each window's limit, then each window's time to live in ms (relative, so a test clock
 * works too; 0 for a window that never ends, whose counter does not expire). Returns, per
 * request, 1 or 0 (allowed or not) followed by its n counts.
 */
const CONSUME_SCRIPT = `
local out = {}
local k = 0
local a = 1
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local counts = {}
  local over = false
  for i = 1, n do
    counts[i] = redis.call('INCR', KEYS[k + i])
    if counts[i] == 1 and tonumber(ARGV[a + n + i]) > 0 then redis.call('PEXPIRE', KEYS[k + i], ARGV[a + n + i]) end
    if counts[i] > tonumber(ARGV[a + i]) then over = true end
  end
  if over then
    for i = 1, n do counts[i] = redis.call('DECR', KEYS[k + i]) end
  end
  out[#out + 1] = over and 0 or 1
  for i = 1, n do out[#out + 1] = counts[i] end
  k = k + n
  a = a + 1 + 2 * n
end
return out
`

// Named for its version: a changed script must not meet a client that defined the old one.
const COMMAND = 'keygateRateLimit4'
// Counters outlive their window by this much, so a clock a little ahead of Redis's cannot reset one early.
const EXPIRY_SLACK_MS = 5_000
// Requests waiting when a call goes out without waiting for the turn to end: Redis counts them
// while this process reads the turn's other requests, so answers are back by the time it is done
// and the process never sits idle waiting for one call that holds the whole turn.
const EAGER_BATCH = 8

type ScriptClient = (RedisClient) & {
  [COMMAND]: (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<number[]>
}

interface Pending {
  request: ConsumeRequest
  resolve: (result: ConsumeResult) => void
  reject: (error: unknown) => void
}

export interface RedisRateLimitStoreOptions {
  client: RedisClient
  /** Prefix of every counter's name. Default `keygate:rl:`. */
  keyPrefix?: string
  /** Longest wait for Redis before the call fails, in ms. Default 250. */
  timeoutMs?: number
}

/**
 * Counters in Redis, shared by every instance. Requests are counted by script calls of up to 8:
 * a call goes out as soon as 8 wait, and what waits when the event-loop turn ends goes then. So a
 * busy process keeps several calls in flight while it reads requests (Redis counts one group
 * while the next is read) rather than one call for the whole turn that it would wait for, idle;
 * and there is never more than one round trip per request. On a Redis Cluster a call holds one
 * key id's requests, as its keys must share a slot.
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly #client: ScriptClient
  readonly #keyPrefix: string
  readonly #timeoutMs: number
  readonly #cluster: boolean
  #pending: Pending[] = []
  #flushScheduled = false

  constructor ({ client, keyPrefix = DEFAULTS.rateLimitKeyPrefix, timeoutMs = DEFAULTS.redisTimeout }: RedisRateLimitStoreOptions) {
    // Registered once per client; ioredis sends EVALSHA and falls back to EVAL by itself.
    if (typeof (client as unknown as Record<string, unknown>)[COMMAND] !== 'function') {
      client.defineCommand(COMMAND, { lua: CONSUME_SCRIPT })
    }
    this.#client = client as unknown as ScriptClient
    this.#keyPrefix = keyPrefix
    this.#timeoutMs = timeoutMs
    this.#cluster = client.isCluster === true
  }

  consume (request: ConsumeRequest): Promise<ConsumeResult> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ request, resolve, reject })
      if (this.#pending.length >= EAGER_BATCH) {
        this.#flush()
      } else if (!this.#flushScheduled) {
        // setImmediate runs once the event loop has read every request that was ready: what is
        // still waiting then goes in one call. A microtask would run after each request.
        this.#flushScheduled = true
        setImmediate(this.#flushAtTurnEnd)
      }
    })
  }

  /** Reads counters without counting: one MGET (one per key id on a cluster, whose slots differ). */
  async peek (requests: readonly ConsumeRequest[]): Promise<number[][]> {
    const groups = this.#cluster ? batches(requests.map((request) => ({ request })), true, Infinity) : [requests.map((request) => ({ request }))]
    const counts = new Map<ConsumeRequest, number[]>()
    await Promise.all(groups.map(async (group) => {
      const keys = group.flatMap(({ request }) => request.windows.map((window) => this.#counterName(request.keyId, window)))
      if (keys.length === 0) return
      const values = await withTimeout(this.#client.mget(...keys), this.#timeoutMs)
      let at = 0
      for (const { request } of group) {
        counts.set(request, request.windows.map((_, i) => Number(values[at + i] ?? 0)))
        at += request.windows.length
      }
    }))
    return requests.map((request) => counts.get(request) ?? [])
  }

  /** The {keyId} hash tag puts all counters of one key in one Redis Cluster slot. */
  #counterName (keyId: string, window: WindowRequest): string {
    const name = `${this.#keyPrefix}{${keyId}}:${window.name}:${window.start}`
    return window.counter === undefined ? name : `${name}:${window.counter}`
  }

  readonly #flushAtTurnEnd = (): void => {
    this.#flushScheduled = false
    this.#flush()
  }

  #flush (): void {
    if (this.#pending.length === 0) return
    const pending = this.#pending
    this.#pending = []
    for (const batch of batches(pending, this.#cluster, EAGER_BATCH)) void this.#send(batch)
  }

  async #send (batch: Pending[]): Promise<void> {
    const keys: string[] = []
    const args: number[] = []
    for (const { request: { keyId, windows, now } } of batch) {
      args.push(windows.length)
      for (const window of windows) {
        keys.push(this.#counterName(keyId, window))
        args.push(window.limit)
      }
      // A window that never ends (credits without refill) keeps its counter: expiring it would
      // hand the credits back.
      for (const window of windows) args.push(Number.isFinite(window.durationMs) ? window.start + window.durationMs - now + EXPIRY_SLACK_MS : 0)
    }
    try {
      const reply = await withTimeout(this.#client[COMMAND](keys.length, ...keys, ...args), this.#timeoutMs)
      let at = 0
      for (const { request, resolve } of batch) {
        const allowed = reply[at] === 1
        const counts = request.windows.map((_, i) => reply[at + 1 + i] ?? 0)
        at += 1 + request.windows.length
        resolve({ allowed, counts })
      }
    } catch (error) {
      // Every request of the call still waiting fails with it (a settled one stays settled).
      for (const { reject } of batch) reject(error)
    }
  }
}

/**
 * Splits waiting requests into script calls of at most `max` requests, in arrival order. On a
 * cluster each call holds one key id only; otherwise any mix.
 */
export function batches<T extends { request: { keyId: string } }> (pending: T[], byKeyId: boolean, max: number): T[][] {
  const groups = new Map<string, T[][]>()
  for (const item of pending) {
    const group = byKeyId ? item.request.keyId : ''
    let calls = groups.get(group)
    if (calls === undefined) groups.set(group, calls = [[]])
    let last = calls[calls.length - 1] as T[]
    if (last.length === max) calls.push(last = [])
    last.push(item)
  }
  return [...groups.values()].flat()
}
