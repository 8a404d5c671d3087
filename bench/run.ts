// `npm run bench` (add `-- --quick` for a first look, `-- --unpinned` to force the fallback). Each
// contender runs in its own process. In pinned mode (bench/pinning.ts) each server runs alone on one
// CPU and wrk drives it from the others; otherwise autocannon drives it from this process. Scenarios
// run in interleaved rounds (A B C ... A B C ...) so that machine drift hits every contender alike.
// Reports medians, min and max, R = req/s ÷ bare req/s, server CPU per request and idle share, and
// the targets of issue 16 computed from the same run.
import { spawn } from 'node:child_process'
import { crc32 } from 'node:zlib'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { encodeBase62, randomBase62 } from '../lib/keys/base62.js'
import { generateKey } from '../lib/keys/key-text.js'
import type { Contender } from './app.js'
import { autocannonLoad } from './autocannon.js'
import { killAll, track } from './children.js'
import type { LoadOptions, LoadRun } from './load.js'
import { checkPinned, decidePinning, pin } from './pinning.js'
import { type BenchRedis, startRedis } from './redis.js'
import { render } from './report.js'
import type { Measured, Scenario } from './scenario.js'
import { type Server, serverRunDelay, serverUsage, startServer, stopServer } from './servers.js'
import { wrk } from './wrk.js'

const quick = process.argv.includes('--quick')
const ROUNDS = 2
const SECONDS = quick ? 2 : 8
const WARMUP_SECONDS = quick ? 1 : 3
const CONNECTIONS = [32, 128]
// The storms too; the short "back after a pause" rows at the first count only.
const STORM_CONNECTIONS = CONNECTIONS
const PAUSE_CONNECTIONS = 32
const ROTATION_KEYS = 10_000
const RETURN_SECONDS = 1
// Distinct forged keys in the forged-checksum storm: at its rate each id comes round every few seconds.
const FORGED_KEYS = 50_000
const FIRST_USE_KEYS = quick ? 60 : 200
const REDIS_CALLS_SECONDS = quick ? 1 : 3

const pinning = decidePinning(process.argv.includes('--unpinned'))
const began = performance.now()
/** Progress on stderr, with the seconds since the start. */
const say = (text: string): boolean => process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${text}`)

/** Same key id as `key`, another secret, a valid checksum: what a wrong-secret storm sends. */
function wrongSecrets (key: string, count: number): string[] {
  return Array.from({ length: count }, () => {
    const head = key.slice(0, 'metlo_'.length + 8) + randomBase62(18)
    return head + encodeBase62(crc32(head), 6)
  })
}

async function load (options: LoadOptions, directory: string): Promise<LoadRun> {
  return pinning.pinned ? await wrk({ ...options, cpus: pinning.otherCpus, directory }) : await autocannonLoad(options)
}

async function measure (scenario: Scenario, seconds: number, directory: string): Promise<Measured> {
  const before = await serverUsage(scenario.server)
  const delayBefore = serverRunDelay(scenario.server)
  const run = await load({ url: scenario.server.url, connections: scenario.connections, seconds, headers: scenario.headers, expected: scenario.expected }, directory)
  const delayAfter = serverRunDelay(scenario.server)
  const after = await serverUsage(scenario.server)
  const cpu = after.cpu - before.cpu
  const wall = after.wall - before.wall
  return {
    ...run,
    cpuPerRequest: cpu / run.requests,
    idle: 1 - cpu / wall,
    ...(delayBefore === undefined || delayAfter === undefined ? {} : { waited: (delayAfter - delayBefore) / wall })
  }
}

/**
 * Sends each key of `server` once, at fewer connections than argon2's queue holds (hashQueue, 100),
 * so that every key has been through argon2 before the rounds: they measure the cache.
 */
async function prime (server: Server): Promise<void> {
  let i = 0
  const result = await autocannon({
    url: server.url,
    connections: 32,
    amount: server.keys.length,
    requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${server.keys[i++ % server.keys.length] as string}` } }) }]
  })
  const good = result.statusCodeStats?.['200']?.count ?? 0
  if (good !== server.keys.length) throw new Error(`first use of ${server.keys.length} keys: ${server.keys.length - good} not 200`)
}

async function firstUse (): Promise<{ keysPerSecond: number, unexpected: number, keys: number }> {
  const server = await startServer('keygate', pinning.serverCpus, FIRST_USE_KEYS, 'owasp')
  try {
    let i = 0
    const started = performance.now()
    const result = await autocannon({
      url: server.url,
      connections: 4,
      amount: FIRST_USE_KEYS,
      requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${server.keys[i++ % server.keys.length] as string}` } }) }]
    })
    const seconds = (performance.now() - started) / 1000
    const good = result.statusCodeStats?.['200']?.count ?? 0
    return { keysPerSecond: FIRST_USE_KEYS / seconds, unexpected: FIRST_USE_KEYS - good, keys: FIRST_USE_KEYS }
  } finally {
    await stopServer(server)
  }
}

// What keygate's Lua script runs inside Redis: counted by Redis, but no round trip of their own.
const SCRIPT_COMMANDS = new Set(['incr', 'decr', 'incrby', 'decrby', 'pexpire'])

/** Redis round trips per request on keygate's hot path, from Redis's own command statistics. */
async function redisCallsPerRequest (server: Server, url: string, directory: string): Promise<NonNullable<Parameters<typeof render>[1]['redisCalls']>> {
  const redis = new Redis(url)
  try {
    await redis.config('RESETSTAT')
    const cpuBefore = redisCpu(await redis.info('cpu'))
    const connections = CONNECTIONS[0] as number
    const run = await load({ url: server.url, connections, seconds: REDIS_CALLS_SECONDS, headers: [`Bearer ${server.keys[0] as string}`], expected: 200 }, directory)
    const cpuAfter = redisCpu(await redis.info('cpu'))
    const stats = await redis.info('commandstats')
    const commands: Record<string, number> = {}
    for (const match of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      if (!/^(info|config)/.test(match[1] as string)) commands[match[1] as string] = Number(match[2])
    }
    const total = Object.entries(commands).filter(([name]) => !SCRIPT_COMMANDS.has(name)).reduce((sum, [, calls]) => sum + calls, 0)
    return { perRequest: total / run.requests, requests: run.requests, connections, commands, redisCpuPerRequest: (cpuAfter - cpuBefore) * 1e6 / run.requests }
  } finally {
    redis.disconnect()
  }
}

/** Redis's own CPU time so far (INFO cpu: the main thread's user and system), in seconds. */
function redisCpu (info: string): number {
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN)
  return field('used_cpu_user') + field('used_cpu_sys')
}

/**
 * Runs a step that counts bytes or statements, not time, in a process of its own beside the driver
 * (whose CPUs it inherits), and returns what it printed.
 */
async function step (file: string, name: string): Promise<string> {
  const child = track(spawn(process.execPath, ['--expose-gc', '--import', 'tsx', new URL(file, import.meta.url).pathname, quick ? '--quick' : ''], { stdio: ['ignore', 'pipe', 'inherit'] }))
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`the ${name} step exited with ${String(code)}`)
  return output
}

const RESULTS = new URL('./RESULTS.md', import.meta.url)
const FINDINGS = '## Findings'

/** The hand-written findings below the table survive a new run. */
async function keptFindings (): Promise<string> {
  try {
    const previous = await readFile(RESULTS, 'utf8')
    const at = previous.indexOf(FINDINGS)
    return at === -1 ? '' : '\n' + previous.slice(at)
  } catch {
    return ''
  }
}

async function main (): Promise<void> {
  const startedAt = new Date()
  say(`${pinning.pinned ? `pinned: servers on CPU ${pinning.serverCpus}, the rest on ${pinning.otherCpus}` : 'not pinned'} (${pinning.reason})\n`)
  if (pinning.pinned) {
    pin(process.pid, pinning.otherCpus)
    checkPinned(process.pid, pinning.otherCpus, 'the driver')
  }
  const directory = await mkdtemp(join(tmpdir(), 'keygate-bench-'))
  // Interrupted runs too: the header files go.
  process.once('exit', () => rmSync(directory, { recursive: true, force: true }))
  let redis: BenchRedis | undefined
  const servers: Server[] = []
  try {
    redis = await startRedis(pinning.otherCpus)
    if (redis?.pid !== undefined && pinning.pinned) checkPinned(redis.pid, pinning.otherCpus, 'redis-server')
    // The servers read REDIS_URL from their environment.
    if (redis !== undefined) process.env.REDIS_URL = redis.url
    // All start at once, on every CPU (seeding 10,000 keys takes a while); each is pinned when ready.
    const start = async (contender: Contender, keyCount = 1): Promise<Server> => {
      const server = await startServer(contender, pinning.serverCpus, keyCount)
      servers.push(server)
      say(`started ${contender}${keyCount > 1 ? ` with ${keyCount.toLocaleString('en')} keys` : ''}\n`)
      return server
    }
    const withRedis = redis !== undefined
    const [bare, keygateOne, keygateRedis, bearerAuth, limitedLocal, limitedRedis, handRolled, keygateMany, keygateRedisMany] = await Promise.all([
      start('bare'),
      start('keygate'),
      withRedis ? start('keygate-redis') : undefined,
      start('bearer-auth'),
      start('bearer-auth-rate-limit-local'),
      withRedis ? start('bearer-auth-rate-limit') : undefined,
      start('hand-rolled'),
      start('keygate', ROTATION_KEYS),
      withRedis ? start('keygate-redis', ROTATION_KEYS) : undefined
    ])
    const scenarios: Scenario[] = []
    const add = (id: string, name: string, server: Server, headers: string[], connections: number, more: Partial<Scenario> = {}): void => {
      scenarios.push({ id, name, server, headers, expected: 200, connections, seconds: SECONDS, warmup: WARMUP_SECONDS, runs: [], ...more })
    }
    const bearer = (server: Server): string[] => [`Bearer ${server.keys[0] as string}`]

    // One key, like the bearer-auth contenders' one static key.
    const throughput: Array<[string, string, Server | undefined]> = [
      ['bare', 'bare Fastify, no auth', bare],
      ['keygate', 'fastify-keygate, in-process', keygateOne],
      ['keygate-redis', 'fastify-keygate, Redis', keygateRedis],
      ['bearer-auth', '@fastify/bearer-auth', bearerAuth],
      ['bearer-auth-rate-limit-local', '@fastify/bearer-auth + @fastify/rate-limit (local)', limitedLocal],
      ['bearer-auth-rate-limit', '@fastify/bearer-auth + @fastify/rate-limit (Redis)', limitedRedis],
      ['hand-rolled', 'hand-rolled: SHA-256 digest in a Map, one window, X-RateLimit headers', handRolled]
    ]
    for (const connections of CONNECTIONS) {
      for (const [id, name, server] of throughput) {
        if (server !== undefined) add(id, name, server, server.contender === 'bare' ? [] : bearer(server), connections)
      }
    }

    // The rotation keys sit idle while the other scenarios run, long past their 5-second freshness.
    // Each round of a rotation is therefore preceded by a short one of the same load, reported on
    // its own: the keys coming back after a pause (re-read), then in steady use.
    const keysName = `${ROTATION_KEYS.toLocaleString('en')} keys`
    const rotations: Array<[string, string, Server | undefined]> = [['rotation', 'in-process', keygateMany], ['rotation-redis', 'Redis', keygateRedisMany]]
    for (const [id, mode, server] of rotations) {
      if (server === undefined) continue
      const headers = server.keys.map((key) => `Bearer ${key}`)
      add(`${id}-pause`, `fastify-keygate, ${mode}, ${keysName} back after a pause (first ${RETURN_SECONDS} s)`, server, headers, PAUSE_CONNECTIONS, { seconds: RETURN_SECONDS, warmup: 0 })
      for (const connections of CONNECTIONS) add(id, `fastify-keygate, ${mode}, ${keysName} in rotation`, server, headers, connections)
    }
    const storms = keygateMany
    for (const connections of STORM_CONNECTIONS) {
      add('storm-wrong-secret', 'wrong-secret storm, one real key id', storms, wrongSecrets(storms.keys[0] as string, 1000).map((key) => `Bearer ${key}`), connections, { expected: 401 })
      add('storm-bad-checksum', 'bad-checksum storm, random keys', storms, Array.from({ length: 1000 }, () => `Bearer metlo_${randomBase62(32)}`), connections, { expected: 401 })
      // Well-formed keys (a valid checksum is free to compute) whose ids the database does not
      // hold, so many that each id comes round only every few seconds: they cost database reads, batched.
      add('storm-forged', 'forged-checksum storm, unknown key ids', storms, Array.from({ length: FORGED_KEYS }, () => `Bearer ${generateKey('metlo').text}`), connections, { expected: 401 })
    }

    const report = (scenario: Scenario, run: Measured): string =>
      `${Math.round(run.rps)} req/s, server CPU ${run.cpuPerRequest.toFixed(1)} µs/req, idle ${(run.idle * 100).toFixed(1)} %${run.waited === undefined ? '' : `, waited for its CPU ${(run.waited * 100).toFixed(1)} %`}${run.loadCpu === undefined ? '' : `, wrk ${(run.loadCpu * 100).toFixed(0)} %`}${run.unexpected === 0 ? '' : `, ${run.unexpected} not ${scenario.expected} (${JSON.stringify(run.unexpectedKinds)})`}\n`
    for (const server of servers.filter((server) => server.keys.length > 1)) {
      say(`first use of ${server.keys.length} keys (${server.contender})\n`)
      await prime(server)
    }
    for (const scenario of scenarios) {
      if (scenario.warmup === 0) continue
      say(`warm-up: ${scenario.name}, ${scenario.connections} connections: `)
      process.stderr.write(report(scenario, await measure(scenario, scenario.warmup, directory)))
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of scenarios) {
        say(`round ${round}/${ROUNDS}: ${scenario.name}, ${scenario.connections} connections: `)
        const run = await measure(scenario, scenario.seconds, directory)
        scenario.runs.push(run)
        process.stderr.write(report(scenario, run))
      }
    }
    const redisCalls = keygateRedis === undefined || redis === undefined ? undefined : await redisCallsPerRequest(keygateRedis, redis.url, directory)
    for (const server of servers.splice(0)) await stopServer(server)
    say('first use (argon2id, OWASP parameters)\n')
    const first = await firstUse()
    say('memory\n')
    const memoryReport = await step('./memory.ts', 'memory')
    say('database statements\n')
    const queriesReport = await step('./queries.ts', 'database statements')
    const minutes = (Date.now() - startedAt.getTime()) / 60_000
    const text = render(scenarios, {
      startedAt, quick, pinning, redis, rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP_SECONDS, connections: CONNECTIONS, stormConnections: STORM_CONNECTIONS, pauseConnections: PAUSE_CONNECTIONS, minutes, redisCalls, first, memoryReport, queriesReport
    })
    process.stdout.write(text)
    if (!quick) await writeFile(RESULTS, text + await keptFindings())
  } finally {
    for (const server of servers) server.child.kill()
    await redis?.stop()
    await rm(directory, { recursive: true, force: true })
  }
}

try {
  await main()
} catch (error) {
  killAll()
  throw error
}
