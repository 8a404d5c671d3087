// The load generator when pinned mode is not available: autocannon, in the driver's own process.
import autocannon from 'autocannon'
import type { LoadOptions, LoadRun } from './load.js'

/** Where each header list stands, so that runs go on through the list rather than restart it. */
const positions = new WeakMap<string[], number>()

export async function autocannonLoad (options: LoadOptions): Promise<LoadRun> {
  const { headers } = options
  const next = (): string | undefined => {
    if (headers.length === 0) return undefined
    const at = positions.get(headers) ?? 0
    positions.set(headers, at + 1)
    return headers[at % headers.length]
  }
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    requests: [{
      setupRequest: (request) => {
        const authorization = next()
        return authorization === undefined ? request : { ...request, headers: { ...request.headers, authorization } }
      }
    }]
  })
  const good = result.statusCodeStats?.[String(options.expected) as '200']?.count ?? 0
  const unexpectedKinds: Record<string, number> = {}
  for (const [status, stats] of Object.entries(result.statusCodeStats ?? {})) {
    if (status !== String(options.expected)) unexpectedKinds[status] = (stats as { count: number }).count
  }
  const socketErrors = result.errors + result.timeouts
  if (socketErrors > 0) unexpectedKinds['socket errors'] = socketErrors
  return {
    requests: result.requests.total,
    rps: result.requests.total / options.seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    unexpected: result.requests.total - good + socketErrors,
    unexpectedKinds
  }
}
