// Every process the benchmark starts (servers, load generators, Redis) is tracked here and killed
// when the driver exits, fails or is interrupted: none outlives a run.
import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()

export function track<T extends ChildProcess> (child: T): T {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

export function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(130)
  })
}
