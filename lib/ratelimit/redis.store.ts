import type { Cluster, Redis } from 'ioredis'
import { withTimeout } from '../redis/timeout.js'
import type { ConsumeRequest, ConsumeResult, RateLimitStore } from './store.js'

/**
 * Checks every window, then counts all or none. KEYS are the window counters; ARGV holds each
 * window's limit, then each window's time to live in ms (relative, so a test clock works too).
 */
const CONSUME_SCRIPT = `
local n = #KEYS
local counts = redis.call('MGET', unpack(KEYS))
local full = false
for i = 1, n do
  counts[i] = tonumber(counts[i] or '0')
  if counts[i] >= tonumber(ARGV[i]) then full = true end
end
if full then
  table.insert(counts, 1, 0)
  return counts
end
for i = 1, n do
  counts[i] = redis.call('INCR', KEYS[i])
  if counts[i] == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
end
table.insert(counts, 1, 1)
return counts
`

const COMMAND = 'keygateRateLimit'
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
