/**
 * What the plugin uses of a Redis client. ioredis's `Redis` and `Cluster` (what @fastify/redis
 * decorates the app with) fit it as they are. The plugin's own type, so that its published types
 * need no Redis package: a host without Redis installs none.
 */
export interface RedisClient {
  /** True for a Redis Cluster: then every multi-key call stays within one hash tag. */
  readonly isCluster?: boolean
  get: (key: string) => Promise<string | null>
  mget: (...keys: string[]) => Promise<Array<string | null>>
  set: (key: string, value: string, mode: 'PX', milliseconds: number) => Promise<unknown>
  del: (...keys: string[]) => Promise<number>
  publish: (channel: string, message: string) => Promise<number>
  subscribe: (...channels: string[]) => Promise<unknown>
  /** Sharded pub/sub (Redis 7+), used on a Cluster when present. */
  spublish?: (channel: string, message: string) => Promise<unknown>
  ssubscribe?: (...channels: string[]) => Promise<unknown>
  /** A server-side script as a command of the client (ioredis sends EVALSHA, falling back to EVAL). */
  defineCommand: (name: string, definition: { lua: string, numberOfKeys?: number }) => void
  /** A new connection with the same settings (the invalidation channel needs one of its own). */
  duplicate: () => RedisClient
  on: (event: string, listener: (...args: any[]) => void) => unknown
  disconnect: () => void
}

/**
 * A Redis Cluster (`isCluster` true) as the plugin uses it, ioredis's `Cluster`: its `duplicate`
 * takes startup nodes (none: the same ones) and options to override, such as `shardedSubscribers`.
 */
export interface RedisClusterClient extends RedisClient {
  duplicate: (startupNodes?: [], options?: { shardedSubscribers?: boolean }) => RedisClient
}
