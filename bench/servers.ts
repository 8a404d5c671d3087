// The contenders' server processes (bench/server.ts): started, pinned, asked for their CPU time,
// closed.
import { type ChildProcess, fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Contender } from './app.js'
import { track } from './children.js'
import { checkPinned, pin } from './pinning.js'

export interface Server { contender: Contender, child: ChildProcess, url: string, keys: string[] }

/**
 * `cpus`: a taskset CPU list the server and all its threads are moved to once it is ready (it
 * starts and seeds its keys on any CPU, so several can start at once), or '' to leave it unpinned.
 */
export async function startServer (contender: Contender, cpus: string, keyCount = 1, argon2 = 'seed'): Promise<Server> {
  const child = track(fork(new URL('./server.ts', import.meta.url).pathname, [contender, String(keyCount), argon2], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  }))
  const { port, keys } = await new Promise<{ port: number, keys: string[] }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { port: number, keys: string[] }))
    child.once('exit', (code) => reject(new Error(`${contender} exited with ${code}`)))
  })
  if (cpus !== '') {
    // Threads started later (argon2's pool grows on demand) inherit the CPUs of their creator.
    pin(child.pid as number, cpus)
    checkPinned(child.pid as number, cpus, `the ${contender} server`)
  }
  return { contender, child, url: `http://127.0.0.1:${port}/hello`, keys }
}

export async function stopServer (server: Server): Promise<void> {
  if (server.child.exitCode !== null) return
  const exited = new Promise((resolve) => server.child.once('exit', resolve))
  server.child.send('close')
  await exited
}

/** CPU time the server process has used so far (all threads), and its clock, both µs. */
export async function serverUsage (server: Server): Promise<{ cpu: number, wall: number }> {
  const answer = new Promise<{ cpu: number, wall: number }>((resolve) => {
    const listen = (message: unknown): void => {
      if (typeof (message as { cpu?: unknown }).cpu === 'number') {
        server.child.off('message', listen)
        resolve(message as { cpu: number, wall: number })
      }
    }
    server.child.on('message', listen)
  })
  server.child.send('cpu')
  return await answer
}

/** Time the server's main thread has waited for a CPU while ready to run, µs; Linux only. */
export function serverRunDelay (server: Server): number | undefined {
  try {
    const fields = readFileSync(`/proc/${server.child.pid as number}/schedstat`, 'utf8').trim().split(' ')
    return Number(fields[1]) / 1000
  } catch {
    return undefined
  }
}
