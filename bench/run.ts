// `npm run bench` (add `-- --quick` for a first look). Each contender runs in its own process;
// autocannon drives them from this one, in interleaved rounds (A B C ... A B C ...) so that machine
// drift hits every contender alike. Reports medians, min and max, and R = req/s ÷ bare req/s.
import { type ChildProcess, fork } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { crc32 } from 'node:zlib'
import { readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import autocannon, { type Result } from 'autocannon'
import { Redis } from 'ioredis'
import { encodeBase62, randomBase62 } from '../lib/keys/base62.js'
import { generateKey } from '../lib/keys/key-text.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 5
const SECONDS = quick ? 2 : 5
const WARMUP_SECONDS = quick ? 1 : 3
const CONNECTIONS = 50
const ROTATION_KEYS = 10_000
const RETURN_SECONDS = 1
// Distinct forged keys in the forged-checksum storm: at its rate each id comes round every few seconds.
const FORGED_KEYS = 50_000
const FIRST_USE_KEYS = quick ? 60 : 200
const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : undefined

interface Server { child: ChildProcess, url: string, keys: string[] }

async function startServer (contender: string, keyCount = 1, argon2 = 'seed'): Promise<Server> {
  const child = fork(new URL('./server.ts', import.meta.url).pathname, [contender, String(keyCount), argon2], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const { port, keys } = await new Promise<{ port: number, keys: string[] }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { port: number, keys: string[] }))
    child.once('exit', (code) => reject(new Error(`${contender} exited with ${code}`)))
  })
  return { child, url: `http://127.0.0.1:${port}/hello`, keys }
}

async function stopServer (server: Server): Promise<void> {
  const exited = new Promise((resolve) => server.child.once('exit', resolve))
  server.child.send('close')
  await exited
}

/** A scenario: a server, and the Authorization header of each request (cycled). */
interface Scenario {
  name: string
  server: Server
  headers: () => string | undefined
  /** The status every response must have. */
  expected: number
  /** Length of each round, s; SECONDS unless set. */
  seconds?: number
  runs: Result[]
  /** Server CPU (user + system) per request in each run, µs: what the contender itself costs. */
  cpuPerRequest: number[]
  unexpected: number
}

/** CPU time the server process has used so far, µs. */
async function serverCpu (server: Server): Promise<number> {
  const answer = new Promise<number>((resolve) => {
    const listen = (message: unknown): void => {
      if (typeof (message as { cpu?: unknown }).cpu === 'number') {
        server.child.off('message', listen)
        resolve((message as { cpu: number }).cpu)
      }
    }
    server.child.on('message', listen)
  })
  server.child.send('cpu')
  return await answer
}

function cycle (values: string[]): () => string {
  let i = 0
  return () => values[i++ % values.length] as string
}

/** Same key id as `key`, another secret, a valid checksum: what a wrong-secret storm sends. */
function wrongSecrets (key: string, count: number): string[] {
  return Array.from({ length: count }, () => {
    const head = key.slice(0, 'metlo_'.length + 8) + randomBase62(18)
    return head + encodeBase62(crc32(head), 6)
  })
}

async function load (scenario: Scenario, seconds: number): Promise<Result> {
  const next = scenario.headers
  const cpuBefore = await serverCpu(scenario.server)
  const result = await autocannon({
    url: scenario.server.url,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [{
      setupRequest: (request) => {
        const authorization = next()
        return authorization === undefined ? request : { ...request, headers: { ...request.headers, authorization } }
      }
    }]
  })
  scenario.cpuPerRequest.push((await serverCpu(scenario.server) - cpuBefore) / result.requests.total)
  const good = result.statusCodeStats?.[String(scenario.expected) as '200']?.count ?? 0
  scenario.unexpected += result.requests.total - good + result.errors + result.timeouts
  return result
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

async function firstUse (): Promise<{ keysPerSecond: number, unexpected: number }> {
  const server = await startServer('keygate', FIRST_USE_KEYS, 'owasp')
  try {
    const next = cycle(server.keys.map((key) => `Bearer ${key}`))
    const started = performance.now()
    const result = await autocannon({
      url: server.url,
      connections: 4,
      amount: FIRST_USE_KEYS,
      requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: next() } }) }]
    })
    const seconds = (performance.now() - started) / 1000
    const good = result.statusCodeStats?.['200']?.count ?? 0
    return { keysPerSecond: FIRST_USE_KEYS / seconds, unexpected: FIRST_USE_KEYS - good }
  } finally {
    await stopServer(server)
  }
}

// What keygate's Lua script runs inside Redis: counted by Redis, but no round trip of their own.
const SCRIPT_COMMANDS = new Set(['incr', 'decr', 'pexpire'])

/** Redis round trips per request on keygate's hot path, from Redis's own command statistics. */
async function redisCallsPerRequest (server: Server): Promise<{ perRequest: number, commands: Record<string, number> }> {
  const redis = new Redis(REDIS_URL as string)
  try {
    await redis.config('RESETSTAT')
    const requests = 20_000
    const authorization = `Bearer ${server.keys[0] as string}`
    const result = await autocannon({ url: server.url, connections: CONNECTIONS, amount: requests, headers: { authorization } })
    const stats = await redis.info('commandstats')
    const commands: Record<string, number> = {}
    for (const match of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      if (!/^(info|config)/.test(match[1] as string)) commands[match[1] as string] = Number(match[2])
    }
    const total = Object.entries(commands).filter(([name]) => !SCRIPT_COMMANDS.has(name)).reduce((sum, [, calls]) => sum + calls, 0)
    return { perRequest: total / result.requests.total, commands }
  } finally {
    redis.disconnect()
  }
}

async function memory (): Promise<string> {
  return execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', new URL('./memory.ts', import.meta.url).pathname, quick ? '--quick' : ''], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
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
  const bare = await startServer('bare')
  // One key, like the bearer-auth contender's one static key; the rotation and the storms run on a
  // server holding 10,000 keys.
  const keygateOne = await startServer('keygate')
  const keygateMemory = await startServer('keygate', ROTATION_KEYS)
  const servers = [bare, keygateOne, keygateMemory]
  const scenarios: Scenario[] = []
  const add = (name: string, server: Server, headers: () => string | undefined, expected = 200, seconds?: number): void => {
    scenarios.push({ name, server, headers, expected, seconds, runs: [], cpuPerRequest: [], unexpected: 0 })
  }
  const bearer = (server: Server) => cycle([`Bearer ${server.keys[0] as string}`])

  add('bare Fastify, no auth', bare, () => undefined)
  add('fastify-keygate, in-process', keygateOne, bearer(keygateOne))
  let keygateRedis: Server | undefined
  if (REDIS_URL !== undefined) {
    keygateRedis = await startServer('keygate-redis')
    servers.push(keygateRedis)
    add('fastify-keygate, Redis', keygateRedis, bearer(keygateRedis))
  }
  const bearerAuth = await startServer('bearer-auth')
  servers.push(bearerAuth)
  add('@fastify/bearer-auth', bearerAuth, bearer(bearerAuth))
  if (REDIS_URL !== undefined) {
    const limited = await startServer('bearer-auth-rate-limit')
    servers.push(limited)
    add('@fastify/bearer-auth + @fastify/rate-limit (Redis)', limited, bearer(limited))
  }
  // The rotation keys sit idle while the other scenarios run, long past their 5-second freshness.
  // Each rotation round is therefore preceded by a short one of the same load, reported on its
  // own: the keys coming back after a pause (re-read from the database), then in steady use.
  const rotation = cycle(keygateMemory.keys.map((key) => `Bearer ${key}`))
  const keysName = `${ROTATION_KEYS.toLocaleString('en')} keys`
  add(`fastify-keygate, ${keysName} back after a pause (first ${RETURN_SECONDS} s)`, keygateMemory, rotation, 200, RETURN_SECONDS)
  add(`fastify-keygate, ${keysName} in rotation`, keygateMemory, rotation)
  add('wrong-secret storm, one real key id', keygateMemory, cycle(wrongSecrets(keygateMemory.keys[0] as string, 1000)), 401)
  add('bad-checksum storm, random keys', keygateMemory, cycle(Array.from({ length: 1000 }, () => `Bearer metlo_${randomBase62(32)}`)), 401)
  // Well-formed keys (a valid checksum is free to compute) whose ids the database does not hold,
  // so many that each id comes round only every few seconds: they cost database reads, batched.
  add('forged-checksum storm, unknown key ids', keygateMemory, cycle(Array.from({ length: FORGED_KEYS }, () => `Bearer ${generateKey('metlo').text}`)), 401)

  try {
    for (const scenario of scenarios) {
      process.stderr.write(`warm-up: ${scenario.name}\n`)
      // The rotation warm-up also puts every key through argon2 once, so the rounds measure the cache.
      const inRotation = scenario.name.includes('rotation')
      await load(scenario, inRotation ? Math.max(WARMUP_SECONDS, quick ? 4 : 8) : WARMUP_SECONDS)
      scenario.unexpected = 0
      scenario.cpuPerRequest = []
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of scenarios) {
        process.stderr.write(`round ${round}/${ROUNDS}: ${scenario.name}\n`)
        scenario.runs.push(await load(scenario, scenario.seconds ?? SECONDS))
      }
    }
    const redisCalls = keygateRedis === undefined ? undefined : await redisCallsPerRequest(keygateRedis)
    for (const server of servers) await stopServer(server)
    process.stderr.write('first use (argon2id, OWASP parameters)\n')
    const first = await firstUse()
    process.stderr.write('memory\n')
    const memoryReport = await memory()
    const report = render(scenarios, { startedAt, redisCalls, first, memoryReport })
    process.stdout.write(report)
    if (!quick) await writeFile(RESULTS, report + await keptFindings())
  } catch (error) {
    for (const server of servers) server.child.kill()
    throw error
  }
}

function render (scenarios: Scenario[], extra: {
  startedAt: Date
  redisCalls: { perRequest: number, commands: Record<string, number> } | undefined
  first: { keysPerSecond: number, unexpected: number }
  memoryReport: string
}): string {
  const bare = scenarios[0] as Scenario
  const bareMedian = median(bare.runs.map((r) => r.requests.average))
  const bareCpu = median(bare.cpuPerRequest)
  const rows = scenarios.map((s) => {
    const rps = s.runs.map((r) => r.requests.average)
    const m = median(rps)
    const cpu = median(s.cpuPerRequest)
    return `| ${s.name} | ${Math.round(m).toLocaleString('en')} | ${Math.round(Math.min(...rps)).toLocaleString('en')} – ${Math.round(Math.max(...rps)).toLocaleString('en')} | ${median(s.runs.map((r) => r.latency.p50))} | ${median(s.runs.map((r) => r.latency.p99))} | ${(m / bareMedian).toFixed(2)} | ${cpu.toFixed(1)} (${cpu >= bareCpu ? '+' : ''}${(cpu - bareCpu).toFixed(1)}) | ${s.unexpected === 0 ? `all ${s.expected}` : `**${s.unexpected} other**`} |`
  })
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  const lines = [
    '# Benchmark results',
    '',
    `${extra.startedAt.toISOString().slice(0, 10)}, \`npm run bench${quick ? ' -- --quick' : ''}\`: ${cpus().length} × ${cpu}, Node ${process.version}, ` +
      `${process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? 'PostgreSQL' : 'PGlite'}${REDIS_URL !== undefined ? ' and Redis' : ', no Redis'}.`,
    `${ROUNDS} interleaved rounds of ${SECONDS} s per scenario after a warm-up, ${CONNECTIONS} connections, GET /hello → \`{"hello":"world"}\`.`,
    'R = median req/s ÷ median req/s of bare Fastify in the same run. Server CPU = user + system time of the server process per request (median over the rounds), and in brackets its difference from bare: what the contender itself adds, whatever the load generator beside it does.',
    '',
    '| scenario | req/s (median) | req/s (min – max) | p50 ms | p99 ms | R | server CPU µs/req | responses |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows,
    '',
    `First use (argon2id m=19456, t=2, p=1; every request a key never seen): ${extra.first.keysPerSecond.toFixed(0)} keys/s` +
      `${extra.first.unexpected === 0 ? ', all 200' : `, **${extra.first.unexpected} not 200**`}.`,
    ''
  ]
  if (extra.redisCalls !== undefined) {
    const detail = Object.entries(extra.redisCalls.commands).map(([name, calls]) => `${name} ${calls}`).join(', ')
    lines.push(`Redis round trips per authenticated request on the hot path (Redis INFO commandstats over 20,000 requests with one key, ${CONNECTIONS} connections): ${extra.redisCalls.perRequest.toFixed(3)}. Commands seen: ${detail}; incr, decr and pexpire run inside the rate-limit script, in the same round trip, and one script call counts the requests of one event-loop turn.`, '')
  }
  lines.push(extra.memoryReport.trim(), '')
  return lines.join('\n')
}

await main()
