// Renders the generated part of bench/RESULTS.md.
import { cpus } from 'node:os'
import type { BenchRedis } from './redis.js'
import type { Pinning } from './pinning.js'
import { median, medianRps, type Scenario, unexpected, unexpectedKinds } from './scenario.js'
import { targetsSection } from './targets.js'

export interface RunInfo {
  startedAt: Date
  quick: boolean
  pinning: Pinning
  redis: BenchRedis | undefined
  rounds: number
  seconds: number
  warmup: number
  connections: number[]
  stormConnections: number[]
  pauseConnections: number
  minutes: number
  redisCalls: { perRequest: number, requests: number, connections: number, commands: Record<string, number>, redisCpuPerRequest: number } | undefined
  first: { keysPerSecond: number, unexpected: number, keys: number }
  memoryReport: string
  queriesReport: string
}

const int = (n: number): string => Math.round(n).toLocaleString('en')
const ms = (n: number): string => n < 10 ? n.toFixed(2) : n.toFixed(1)

function row (s: Scenario, bare: Scenario | undefined, pinned: boolean): string {
  const rps = s.runs.map((run) => run.rps)
  const m = medianRps(s)
  const cpu = median(s.runs.map((run) => run.cpuPerRequest))
  const bareCpu = bare === undefined ? cpu : median(bare.runs.map((run) => run.cpuPerRequest))
  const r = bare === undefined ? '—' : (m / medianRps(bare)).toFixed(2)
  const idle = pinned ? `${(median(s.runs.map((run) => run.idle)) * 100).toFixed(1)} %` : '—'
  const wrong = unexpected(s)
  return `| ${s.name} | ${s.connections} | ${int(m)} | ${int(Math.min(...rps))} – ${int(Math.max(...rps))} | ${ms(median(s.runs.map((run) => run.p50)))} | ${ms(median(s.runs.map((run) => run.p99)))} | ${r} | ` +
    `${cpu.toFixed(1)} (${cpu >= bareCpu ? '+' : ''}${(cpu - bareCpu).toFixed(1)}) | ${idle} | ${wrong === 0 ? `all ${s.expected}` : `**${wrong} not ${s.expected}: ${unexpectedKinds(s)}**`} |`
}

export function render (scenarios: Scenario[], info: RunInfo): string {
  const { pinning } = info
  const find = (id: string, connections: number): Scenario | undefined => scenarios.find((s) => s.id === id && s.connections === connections)
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  const waits = scenarios.flatMap((s) => s.runs.map((run) => run.waited ?? NaN)).filter((n) => !Number.isNaN(n))
  const loadCpus = scenarios.flatMap((s) => s.runs.map((run) => run.loadCpu ?? NaN)).filter((n) => !Number.isNaN(n))
  const conns = (list: number[]): string => list.join(' and ')
  const lines = [
    '# Benchmark results',
    '',
    `${info.startedAt.toISOString().slice(0, 10)}, \`npm run bench${info.quick ? ' -- --quick' : ''}\` (${info.minutes.toFixed(1)} min): ${cpus().length} × ${cpu}, Node ${process.version}, ` +
      `${process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? 'PostgreSQL' : 'PGlite (embedded, in each server process)'}, ` +
      `Redis: ${info.redis === undefined ? 'none (the Redis scenarios did not run)' : info.redis.source}.`,
    '',
    pinning.pinned
      ? `**Pinned** (${pinning.reason}): every run of the table. Each server process, all its threads, on CPU ${pinning.serverCpus} alone (checked in /proc for every thread of every server); ` +
        `this driver, wrk and Redis on CPU ${pinning.otherCpus}; the same for the first-use run and the Redis round-trip count below, while the memory and database-statement steps (bytes and counts, not time) run in processes of their own on CPU ${pinning.otherCpus}. Load: \`wrk -t1 -c<N> -d${info.seconds}s --latency\` with bench/wrk.lua, which sends the Authorization headers in turn and counts every status other than the expected one.` +
        (loadCpus.length > 0 ? ` wrk's own CPU: at most ${(Math.max(...loadCpus) * 100).toFixed(0)} % of one core in any run.` : '') +
        (waits.length > 0 ? ` How quiet the machine was: the server's main thread waited for its CPU (taken by other processes) ${(median(waits) * 100).toFixed(1)} % of a run's time in the median run, ${(Math.max(...waits) * 100).toFixed(1)} % at most; near 0 on a quiet machine.` : '')
      : `**Not pinned** (${pinning.reason}): autocannon in the driver process, sharing the CPUs with the servers${info.redis === undefined ? '' : ' and Redis'}; rates include what the load generator takes from the server. Install wrk (\`apt-get install wrk\`) for the pinned mode.`,
    `Connections: ${conns(info.connections)}${info.stormConnections.length < info.connections.length ? ` (the storms at ${conns(info.stormConnections)} only)` : ''}; the "back after a pause" rows at ${info.pauseConnections} only. ${info.rounds} interleaved rounds of ${info.seconds} s per scenario after a ${info.warmup} s warm-up each (the rotation servers first send each of their keys once, so every key has been through argon2); GET /hello → \`{"hello":"world"}\`.`,
    '',
    'Columns: req/s median over the rounds and lowest – highest; latency p50 and p99 (medians over the rounds); R = median req/s ÷ median req/s of bare Fastify in the same run at the same connection count; ' +
      'server CPU = user + system time of the server process (all its threads, `process.cpuUsage()` read over IPC before and after each run) per request, and in brackets its difference from bare at the same connection count: what the contender itself costs; ' +
      (pinning.pinned
        ? 'server idle = 1 − server CPU time ÷ (wall time of the run × 1 core), wall time from the server\'s own clock over the same interval: near 0 % means the load saturated the server.'
        : 'server idle is not given: an unpinned server may use more than one core.'),
    '',
    '| scenario | connections | req/s (median) | req/s (min – max) | p50 ms | p99 ms | R | server CPU µs/req | server idle | responses |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...scenarios.map((s) => row(s, find('bare', s.connections), pinning.pinned)),
    '',
    ...targetsSection(find, { connections: info.connections, stormConnections: info.stormConnections, pinned: pinning.pinned }),
    `First use (argon2id m=19456, t=2, p=1; every request a key never seen, ${info.first.keys} keys, 4 connections${pinning.pinned ? `, the server pinned to CPU ${pinning.serverCpus}, autocannon from the driver` : ''}): ` +
      `${info.first.keysPerSecond.toFixed(0)} keys/s${info.first.unexpected === 0 ? ', all 200' : `, **${info.first.unexpected} not 200**`}.`,
    ''
  ]
  if (info.redisCalls !== undefined) {
    const detail = Object.entries(info.redisCalls.commands).map(([name, calls]) => `${name} ${calls}`).join(', ')
    lines.push(`Redis round trips per authenticated request on the hot path (Redis INFO commandstats over ${int(info.redisCalls.requests)} requests with one key, ${info.redisCalls.connections} connections): ${info.redisCalls.perRequest.toFixed(3)}. Commands seen: ${detail}; incrby, decrby and pexpire run inside the rate-limit script, in the same round trip, and one script call counts up to 8 requests, a key's requests in a row as one entry. Redis's own CPU (INFO cpu, main thread) per request: ${info.redisCalls.redisCpuPerRequest.toFixed(1)} µs.`, '')
  }
  // The memory step counts bytes, not time: it runs in one process of its own beside the driver.
  lines.push(info.memoryReport.trim(), '', info.queriesReport.trim(), '')
  return lines.join('\n')
}
