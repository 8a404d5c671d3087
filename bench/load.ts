// What one load run measured, whichever load generator ran it (bench/wrk.ts or bench/autocannon.ts).
export interface LoadRun {
  requests: number
  /** Requests per second over the run. */
  rps: number
  /** Latency percentiles, ms. */
  p50: number
  p99: number
  /** Responses with another status than expected, plus connection errors and timeouts. */
  unexpected: number
  /** How many of each unexpected status, and 'socket errors' (connection errors and timeouts). */
  unexpectedKinds: Record<string, number>
  /** CPU time of the load generator ÷ the run's wall time (1 = one core busy); wrk only. */
  loadCpu?: number
}

export interface LoadOptions {
  url: string
  connections: number
  seconds: number
  /** Authorization headers, sent in turn; none when empty. */
  headers: string[]
  expected: number
}
