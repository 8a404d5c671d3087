import type { RedisClient, RedisClusterClient } from './client.js'

/**
 * Which pub/sub the invalidation channel uses. On a Redis Cluster: sharded pub/sub (SPUBLISH,
 * SSUBSCRIBE; Redis 7 and later), where a message goes only to the shard that owns the channel's
 * slot instead of over every node's cluster bus; plain PUBLISH/SUBSCRIBE when the servers do not
 * know those commands. On a single Redis: plain, as before (sharding buys nothing there, and
 * instances of earlier versions keep hearing deletes during a rolling upgrade).
 */
export type PubSubMode = 'sharded' | 'plain'

export function isCluster (client: RedisClient): boolean {
  return client.isCluster === true
}

/** A server without sharded pub/sub (before Redis 7) answers its commands so. */
function unknownCommand (error: unknown): boolean {
  return error instanceof Error && /unknown command/i.test(error.message)
}

/** Publishes on the mode the client's servers speak, learning it from the first answer. */
export function createPublisher (client: RedisClient): (channel: string, message: string) => Promise<unknown> {
  let mode: PubSubMode = isCluster(client) && typeof client.spublish === 'function' ? 'sharded' : 'plain'
  return async function publish (channel, message) {
    if (mode === 'sharded') {
      try {
        return await (client.spublish as NonNullable<RedisClient['spublish']>)(channel, message)
      } catch (error) {
        if (!unknownCommand(error)) throw error
        mode = 'plain'
      }
    }
    return await client.publish(channel, message)
  }
}

export interface Subscriber {
  /** The connection messages arrive on (`message` or `smessage` events); its own, in subscriber mode. */
  connection: RedisClient
  /** Subscribes to the channel (again); resolves once a server has confirmed it. */
  subscribe: () => Promise<void>
}

/**
 * A connection of its own for listening (one in subscriber mode can send nothing else). A
 * Cluster's is made with ioredis's `shardedSubscribers`, which keeps one subscriber connection
 * to the shard that owns the channel's slot, and follows the slot when it moves.
 */
export function createSubscriber (client: RedisClient, channel: string): Subscriber {
  const sharded = isCluster(client) && typeof client.ssubscribe === 'function'
  const connection = isCluster(client) ? (client as RedisClusterClient).duplicate([], { shardedSubscribers: sharded }) : client.duplicate()
  let mode: PubSubMode = sharded && typeof connection.ssubscribe === 'function' ? 'sharded' : 'plain'
  return {
    connection,
    async subscribe () {
      if (mode === 'sharded') {
        try {
          await (connection.ssubscribe as NonNullable<RedisClient['ssubscribe']>)(channel)
          return
        } catch (error) {
          if (!unknownCommand(error)) throw error
          mode = 'plain'
        }
      }
      await connection.subscribe(channel)
    }
  }
}
