// The contenders' server processes (bench/server.ts): started, pinned, asked for their CPU time,
// closed.
import { type ChildProcess, fork } from 'node:child_process'
import type { Contender } from './app.js'
import { track } from './children.js'
import { checkPinned } from './pinning.js'

export interface Server { contender: Contender, child: ChildProcess, url: string, keys: string[] }

/** `cpus`: a taskset CPU list the server and all its threads run on from birth, or '' for any. */
export async function startServer (contender: Contender, cpus: string, keyCount = 1, argon2 = 'seed'): Promise<Server> {
  const node = ['--import', 'tsx']
  const child = track(fork(new URL('./server.ts', import.meta.url).pathname, [contender, String(keyCount), argon2], {
    // taskset execs node in its own place: same pid, the IPC channel kept.
    ...(cpus === '' ? { execArgv: node } : { execPath: 'taskset', execArgv: ['-c', cpus, process.execPath, ...node] }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  }))
  const { port, keys } = await new Promise<{ port: number, keys: string[] }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { port: number, keys: string[] }))
    child.once('exit', (code) => reject(new Error(`${contender} exited with ${code}`)))
  })
  if (cpus !== '') checkPinned(child.pid as number, cpus, `the ${contender} server`)
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
