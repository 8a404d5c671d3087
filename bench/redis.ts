// The benchmark's Redis: a private `redis-server` (no persistence, on a free port, pinned beside
// the load generator in pinned mode) when one is installed, else REDIS_URL, else none.
import { execFileSync, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { track } from './children.js'

export interface BenchRedis {
  url: string
  /** For the report: where this Redis comes from. */
  source: string
  /** The redis-server process, when it is ours. */
  pid?: number
  stop: () => Promise<void>
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

function installed (): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function answers (url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.ping() === 'PONG'
  } catch {
    return false
  } finally {
    redis.disconnect()
  }
}

/** `cpus`: a taskset CPU list to start redis-server on, or '' for no pinning. */
export async function startRedis (cpus: string): Promise<BenchRedis | undefined> {
  if (!installed()) {
    const url = process.env.REDIS_URL
    if (url === undefined || url === '') return undefined
    return { url, source: 'REDIS_URL (redis-server not installed)', stop: async () => {} }
  }
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']
  const child = track(cpus === ''
    ? spawn('redis-server', args, { stdio: 'ignore' })
    : spawn('taskset', ['-c', cpus, 'redis-server', ...args], { stdio: 'ignore' }))
  const url = `redis://127.0.0.1:${port}`
  for (let tries = 0; !await answers(url); tries++) {
    if (child.exitCode !== null || tries > 100) throw new Error(`redis-server on port ${port} did not start`)
    await sleep(50)
  }
  return {
    url,
    source: `a private redis-server on port ${port}${cpus === '' ? '' : `, on CPU ${cpus}`}`,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}
