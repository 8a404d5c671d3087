import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

/** A port nothing listens on right now, for a server the test starts. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * A Redis server of the test's own, for what must not touch the Redis other test files share
 * (a memory limit, say). Stopped when the test ends. Needs `redis-server` on the PATH, which
 * every machine with REDIS_URL has here.
 */
export async function privateRedis (t: Test, settings: string[] = []): Promise<string> {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...settings], { stdio: 'ignore' })
  t.teardown(() => { server.kill() })
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null })
  try {
    await probe.connect().catch(() => {})
    // Bounded: a server that never comes up fails the test rather than hanging it.
    await Promise.race([probe.ping(), new Promise((_resolve, reject) => setTimeout(() => reject(new Error('redis-server did not start')), 10_000))])
  } finally {
    probe.disconnect()
  }
  return url
}
