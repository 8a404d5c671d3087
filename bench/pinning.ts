// Pinned mode: on Linux with `taskset` and `wrk` installed and at least two CPUs, each server runs
// alone on the first CPU this process may use, and everything else (this driver, wrk, Redis) on the
// others, so a server's rate is not shared with its load generator.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

export interface Pinning {
  pinned: boolean
  /** Why the mode was chosen, for the report. */
  reason: string
  /** CPU list (taskset form) of the servers, and of everything else. */
  serverCpus: string
  otherCpus: string
}

function onPath (command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** CPUs in a taskset list such as "0-3,6". */
export function parseCpuList (list: string): number[] {
  return list.trim().split(',').filter((part) => part !== '').flatMap((part) => {
    const [from, to] = part.split('-').map(Number) as [number, number | undefined]
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i)
  })
}

/** The CPUs each thread of `pid` may run on, as Linux lists them. */
export function threadAffinities (pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      return [/^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? '?']
    } catch {
      return [] // the thread ended meanwhile
    }
  })
}

export function decidePinning (forbid: boolean): Pinning {
  const unpinned = (reason: string): Pinning => ({ pinned: false, reason, serverCpus: '', otherCpus: '' })
  if (forbid) return unpinned('`--unpinned` asked for')
  if (process.platform !== 'linux') return unpinned(`not Linux (${process.platform})`)
  const missing = ['taskset', 'wrk'].filter((command) => !onPath(command))
  if (missing.length > 0) return unpinned(`${missing.join(' and ')} not on the PATH`)
  const cpus = parseCpuList(threadAffinities(process.pid)[0] ?? '')
  if (cpus.length < 2) return unpinned(`${cpus.length} CPU available`)
  const [server, ...others] = cpus as [number, ...number[]]
  return { pinned: true, reason: `Linux, taskset and wrk installed, ${cpus.length} CPUs`, serverCpus: String(server), otherCpus: others.join(',') }
}

/** Moves every thread of `pid` to `cpus`. */
export function pin (pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
}

/** Throws unless every thread of `pid` may run on `cpus` only. */
export function checkPinned (pid: number, cpus: string, what: string): void {
  const want = parseCpuList(cpus).join(',')
  const wrong = threadAffinities(pid).filter((list) => parseCpuList(list).join(',') !== want)
  if (wrong.length > 0) throw new Error(`${what} (pid ${pid}) has threads allowed on ${wrong.join(' ')}, not only ${cpus}`)
}
