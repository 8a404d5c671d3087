import type { RedisClient } from '../redis/client.js'
import { DEFAULTS } from '../defaults.js'
import { withTimeout } from '../redis/timeout.js'
import type { ConsumeRequest, ConsumeResult, RateLimitStore, WindowRequest } from './store.js'

/**
 * Counts a batch of requests, one after another, as if each had come alone. Requests come in
 * groups: a group is m requests in a row of one key with the same windows and limits, which
 * counted one by one would each be admitted while every window has room and refused from the
 * first that finds one full (a refused request consumes none). So the script adds m to each
 * window, and if any went over, takes back the requests that did not fit: the first
 * min(limit - count before) of the group are admitted. A script runs atomically: nobody sees the
 * counts in between. Counting first keeps the common case, all admitted, to one INCRBY per window.
 *
 * KEYS: every group's window counters, in order. ARGV: per group, its size m and number of
 * windows n, then each window's limit, then each window's time to live in ms (relative, so a test
 * clock works too; 0 for a window that never ends, whose counter does not expire). Returns, per
 * group, how many of its requests were admitted followed by each window's count before the group.
 */
const CONSUME_SCRIPT = `
local out = {}
local k = 0
local a = 1
while a <= #ARGV do
  local m = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local counts = {}
  local admitted = m
  for i = 1, n do
    counts[i] = redis.call('INCRBY', KEYS[k + i], m)
    local ttl = tonumber(ARGV[a + 1 + n + i])
    if counts[i] == m and ttl > 0 then redis.call('PEXPIRE', KEYS[k + i], ttl) end
    local room = tonumber(ARGV[a + 1 + i]) - (counts[i] - m)
    if room < admitted then admitted = room end
  end
  if admitted < 0 then admitted = 0 end
  out[#out + 1] = admitted
  for i = 1, n do
    if admitted < m then redis.call('DECRBY', KEYS[k + i], m - admitted) end
    out[#out + 1] = counts[i] - m
  end
  k = k + n
  a = a + 2 + 2 * n
end
return out
`

// Named for its version: a changed script must not meet a client that defined the old one.
const COMMAND = 'keygateRateLimit5'
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
    const groups = groupsOf(batch)
    const keys: string[] = []
    const args: number[] = []
    for (const { members, request: { keyId, windows, now } } of groups) {
      args.push(members.length, windows.length)
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
      for (const { members, request: { windows } } of groups) {
        const admitted = reply[at] ?? 0
        const before = reply.slice(at + 1, at + 1 + windows.length)
        at += 1 + windows.length
        // As if one by one: the first `admitted` counted, each seeing its own count; the rest
        // refused, seeing the counts the admitted ones left.
        for (let j = 0; j < members.length; j++) {
          const allowed = j < admitted
          const seen = allowed ? j + 1 : admitted
          ;(members[j] as Pending).resolve({ allowed, counts: before.map((count) => count + seen) })
        }
      }
    } catch (error) {
      // Every request of the call still waiting fails with it (a settled one stays settled).
      for (const { reject } of batch) reject(error)
    }
  }
}

interface Group {
  /** The first request of the group: its key id, windows and clock stand for all. */
  request: ConsumeRequest
  members: Pending[]
}

/**
 * Requests of one key with the same windows join the group of that key's request before them, so
 * a busy key costs one group per call, not one entry per request. Only the key's latest group is
 * joined: its requests stay in order, and other keys' counters are not touched by it.
 */
function groupsOf (batch: Pending[]): Group[] {
  const groups: Group[] = []
  const latest = new Map<string, Group>()
  for (const pending of batch) {
    const { keyId, windows } = pending.request
    const group = latest.get(keyId)
    if (group !== undefined && sameWindows(group.request.windows, windows)) {
      group.members.push(pending)
    } else {
      const started = { request: pending.request, members: [pending] }
      groups.push(started)
      latest.set(keyId, started)
    }
  }
  return groups
}

function sameWindows (a: readonly WindowRequest[], b: readonly WindowRequest[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as WindowRequest
    const y = b[i] as WindowRequest
    if (x.name !== y.name || x.start !== y.start || x.limit !== y.limit || x.counter !== y.counter || x.durationMs !== y.durationMs) return false
  }
  return true
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
