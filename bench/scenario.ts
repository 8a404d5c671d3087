// A scenario: one server under one kind of load at one connection count, and what its runs measured.
import type { LoadRun } from './load.js'
import type { Server } from './servers.js'

export interface Measured extends LoadRun {
  /** Server CPU (user + system, all threads) per request, µs. */
  cpuPerRequest: number
  /** 1 − server CPU time ÷ the run's wall time: the share of its one core the server left idle. */
  idle: number
  /**
   * Share of the run the server's main thread was ready to run but waited for its CPU (Linux's
   * schedstat run delay): other processes on the server's CPU; near 0 on a quiet machine.
   */
  waited?: number
}

export interface Scenario {
  /** What the targets look it up by, with `connections`. */
  id: string
  name: string
  server: Server
  /** Authorization headers, sent in turn; none when empty. */
  headers: string[]
  expected: number
  connections: number
  seconds: number
  /** Seconds of warm-up before the rounds; 0 for none. */
  warmup: number
  runs: Measured[]
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export const medianRps = (scenario: Scenario): number => median(scenario.runs.map((run) => run.rps))
export const unexpected = (scenario: Scenario): number => scenario.runs.reduce((sum, run) => sum + run.unexpected, 0)

/** '3 × 503, 1 × socket errors': what came back other than expected, over all runs. */
export function unexpectedKinds (scenario: Scenario): string {
  const total: Record<string, number> = {}
  for (const run of scenario.runs) {
    for (const [kind, count] of Object.entries(run.unexpectedKinds)) total[kind] = (total[kind] ?? 0) + count
  }
  return Object.entries(total).map(([kind, count]) => `${count} × ${kind}`).join(', ')
}
