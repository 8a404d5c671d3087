import type { Cluster, Redis } from 'ioredis'
import { withTimeout } from '../redis/timeout.js'
import type { ConsumeRequest, ConsumeResult, RateLimitStore } from './store.js'

/**
 * Counts every window, and undoes all of them if any went over its limit, so a refused request
 * consumes none (a script runs atomically: nobody sees the counts in between). Counting first
 * keeps the common case, an allowed request, to one INCR per window. KEYS are the window
 * counters; ARGV holds each window's limit, then each window's time to live in ms (relative, so a
 * test clock works too).
 */
const CONSUME_SCRIPT = `
local n = #KEYS
local counts = {}
local over = false
for i = 1, n do
  counts[i] = redis.call('INCR', KEYS[i])
  if counts[i] == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
  if counts[i] > tonumber(ARGV[i]) then over = true end
end
if over then
  for i = 1, n do counts[i] = redis.call('DECR', KEYS[i]) end
  table.insert(counts, 1, 0)
  return counts
end
table.insert(counts, 1, 1)
return counts
`

// Named for its version: a changed script must not meet a client that defined the old one.
const COMMAND = 'keygateRateLimit2'
// Counters outlive their window by this much, so a clock a little ahead of Redis's cannot reset one early.
const EXPIRY_SLACK_MS = 5_000

type ScriptClient = (Redis | Cluster) & {
  [COMMAND]: (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<number[]>
}

export interface RedisRateLimitStoreOptions {
  client: Redis | Cluster
  /** Prefix of every counter's name. Default `keygate:rl:`. */
  keyPrefix?: string
  /** Longest wait for Redis before the call fails, in ms. Default 250. */
  timeoutMs?: number
}

/** Counters in Redis, shared by every instance: one script call, one round trip per request. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly #client: ScriptClient
  readonly #keyPrefix: string
  readonly #timeoutMs: number

  constructor ({ client, keyPrefix = 'keygate:rl:', timeoutMs = 250 }: RedisRateLimitStoreOptions) {
    // Registered once per client; ioredis sends EVALSHA and falls back to EVAL by itself.
    if (typeof (client as unknown as Record<string, unknown>)[COMMAND] !== 'function') {
      client.defineCommand(COMMAND, { lua: CONSUME_SCRIPT })
    }
    this.#client = client as unknown as ScriptClient
    this.#keyPrefix = keyPrefix
    this.#timeoutMs = timeoutMs
  }

  async consume ({ keyId, windows, now }: ConsumeRequest): Promise<ConsumeResult> {
    // The {keyId} hash tag puts all counters of one call in one Redis Cluster slot.
    const keys = windows.map((window) => `${this.#keyPrefix}{${keyId}}:${window.name}:${window.start}`)
    const limits = windows.map((window) => window.limit)
    const ttls = windows.map((window) => window.start + window.durationMs - now + EXPIRY_SLACK_MS)
    const reply = await withTimeout(this.#client[COMMAND](keys.length, ...keys, ...limits, ...ttls), this.#timeoutMs)
    const [allowed, ...counts] = reply
    return { allowed: allowed === 1, counts: windows.map((_, i) => counts[i] ?? 0) }
  }
}
