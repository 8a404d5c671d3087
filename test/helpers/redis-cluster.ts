import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, type ClusterOptions, Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './private-redis.js'
import { REDIS_URL } from './redis.js'
import { until } from './until.js'

function onPath (command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** Why a cluster test cannot run here, or false. CI has all three, so there it always runs. */
export const needsRedisCluster = REDIS_URL === undefined
  ? 'needs REDIS_URL (a machine with Redis), and redis-server and redis-cli on the PATH to start a cluster'
  : !onPath('redis-server') || !onPath('redis-cli')
      ? 'needs redis-server and redis-cli on the PATH to start a cluster'
      : false

/** One command to one node, on a connection of its own that gives up fast. */
async function ask (port: number, ...args: string[]): Promise<unknown> {
  const connection = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 })
  connection.on('error', () => {})
  try {
    await connection.connect()
    return await connection.call(args[0] as string, ...args.slice(1))
  } finally {
    connection.disconnect()
  }
}

export interface RedisCluster {
  ports: number[]
  /** One command to one node. */
  ask: (port: number, ...args: string[]) => Promise<unknown>
  /** A new ioredis Cluster on these nodes, disconnected when the test ends. */
  client: (options?: ClusterOptions) => Cluster
  /** The port of the master that owns `key`'s slot. */
  ownerOf: (key: string) => Promise<number>
  /** Stops one node (SIGTERM) and waits until it has exited. */
  stop: (port: number) => Promise<void>
  /** Starts a stopped node again, with its slots, and waits until every node says the cluster is ok. */
  restart: (port: number) => Promise<void>
}

// A cluster node also listens on its port + 10000 for the cluster bus.
const BUS_OFFSET = 10_000

async function isFree (port: number): Promise<boolean> {
  const server = createServer()
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  if (bound) await new Promise<void>((resolve) => server.close(() => resolve()))
  return bound
}

/** Three ports free now, each with its bus port free too. */
async function clusterPorts (): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < 3) {
    const port = await freePort()
    if (port + BUS_OFFSET <= 65_535 && !ports.includes(port) && await isFree(port + BUS_OFFSET)) ports.push(port)
  }
  return ports
}

/**
 * A Redis Cluster of three masters (no replicas) on free ports, in a folder of its own; every
 * server is stopped and the folder removed when the test ends. `settings` go to every node.
 */
export async function startRedisCluster (t: Test, settings: string[] = []): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'keygate-cluster-'))
  let ports = await clusterPorts()
  const servers = new Map<number, ChildProcess>()
  const clients: Cluster[] = []
  t.teardown(async () => {
    for (const client of clients) client.disconnect()
    await Promise.all([...servers.keys()].map(stop))
    await rm(dir, { recursive: true, force: true })
  })

  function start (port: number): void {
    const server = spawn('redis-server', [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`),
      // Longer than any outage a test makes: the other nodes keep serving their slots meanwhile,
      // and the stopped node rejoins as it was.
      '--cluster-node-timeout', '60000',
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      ...settings
    ], { stdio: 'ignore' })
    servers.set(port, server)
  }

  async function stop (port: number): Promise<void> {
    const server = servers.get(port)
    if (server === undefined) return
    servers.delete(port)
    if (server.exitCode !== null || server.signalCode !== null) return
    const exited = new Promise((resolve) => server.once('exit', resolve))
    server.kill('SIGTERM')
    // Bounded: a server that ignores SIGTERM is killed.
    const timer = setTimeout(() => server.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }

  async function allOk (): Promise<void> {
    await until('cluster_state:ok on every node', async () => {
      const states = await Promise.all(ports.map(async (port) => String(await ask(port, 'CLUSTER', 'INFO'))))
      return states.every((info) => info.includes('cluster_state:ok'))
    })
  }

  // A server that refuses its settings exits at once: that ends the wait, and the test says so.
  const exited = (): number | undefined => [...servers].find(([, server]) => server.exitCode !== null)?.[0]
  for (let attempt = 1; ; attempt++) {
    for (const port of ports) start(port)
    await until('the cluster nodes to answer', async () => exited() !== undefined ||
      (await Promise.all(ports.map(async (port) => await ask(port, 'PING')))).every((pong) => pong === 'PONG'))
    if (exited() === undefined) break
    // Free when chosen, taken since (a port, or its bus port, by another test's connection): once
    // more on other ports. A server that refuses its settings fails every attempt.
    if (attempt === 3) throw new Error(`redis-server on port ${exited()} exited at start, three times`)
    await Promise.all([...servers.keys()].map(stop))
    ports = await clusterPorts()
  }
  await promisify(execFile)('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 })
  await allOk()

  return {
    ports,
    ask,
    client (options = {}) {
      const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), options)
      clients.push(client)
      return client
    },
    async ownerOf (key) {
      const slot = Number(await ask(ports[0] as number, 'CLUSTER', 'KEYSLOT', key))
      const ranges = await ask(ports[0] as number, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>
      const range = ranges.find(([from, to]) => slot >= from && slot <= to)
      if (range === undefined) throw new Error(`no node owns slot ${slot}`)
      return range[2][1]
    },
    stop,
    async restart (port) {
      start(port)
      await allOk()
    }
  }
}
