// `npm run soak` (`-- --minutes N`, `-- --short`): 4 instances on one PostgreSQL and one Redis,
// steady load over 1,000 keys while keys are created, deleted, rotated and updated through the
// management routes of random instances. Fails (exit 1) on any over-admission, any use of a
// deleted or rotated-out key after its change returned plus one pub/sub hop, any change not
// applied by then, any 5xx and heap that keeps growing once warm; the rules are in soak/ledger.ts
// and the README's "Soak test" section. Exit 2: a wrong command line or a missing service URL.
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { createHistogram } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { migrateToLatest } from '../lib/db/migrate.js'
import type { KeygateDatabase } from '../lib/db/schema.js'
import { keyIdentifier, parseKey } from '../lib/keys/key-text.js'
import type { HeapSample, InstanceMessage } from './instance.js'
import { type ChangeKind, heapVerdict, type HeapVerdict, judge, type KeyState, type KeyText, SLACK_MS, type Slot, type Transition, type Verdict, windowBound } from './ledger.js'
import { type SeedKey, seedKeys } from './seed.js'

// ---- settings --------------------------------------------------------------------------------

const INSTANCES = 4
const KEYS = 1000
/** Seeded keys with a small per-minute limit (the rest are effectively unlimited). */
const LIMITED_KEYS = 100
const SMALL_LIMITS = [5, 10, 20]
/** Half the requests to limited keys go to this many of them, so they go over their limits whatever the machine's speed. */
const HOT_LIMITED = 10
/** Far above anything a run can send: these keys are never refused. */
const UNLIMITED = 2_000_000_000
const CONCURRENCY = 32
/** Share of requests to keys with small limits, and to texts changed lately (deleted, rotated out, updated). */
const LIMITED_SHARE = 0.35
const PROBE_SHARE = 0.1
/** How long a changed text gets extra traffic after its change, ms. */
const PROBE_MS = 10_000
const CHURN_WORKERS = 2
const CHURN_PAUSE_MS = 100
/** Rotations that give the old text a grace period (the others give none), and how long. */
const GRACE_SHARE = 0.25
const GRACE_SECONDS = 2
/** Answers are judged this long after they arrive, so the instances' reports of what they heard are in. */
const JUDGE_DELAY_MS = 4000
/** An invalidation an instance has not reported this long after its change returned counts as not heard. */
const HEAR_TIMEOUT_MS = 3000
/** How long the driver waits for an instance's report of a change it heard (IPC may lag on a busy machine). */
const REPORT_WAIT_MS = 10_000
/** At the end, reports still missing this long past HEAR_TIMEOUT_MS count as not heard; later changes go uncounted. */
const FINAL_REPORT_MS = 1000
const REQUEST_TIMEOUT_MS = 10_000
const CHANGE_TIMEOUT_MS = 15_000
const READY_TIMEOUT_MS = 60_000
const CLOSE_TIMEOUT_MS = 10_000
/** Whatever the options, the whole run ends by then (children killed, exit 1). */
const HARD_LIMIT_MS = 600_000
/** The most a run plans for, leaving the hard limit room for the close. */
const MAX_PLANNED_MS = 570_000
/** What the end of a run takes after the load stops: judging, the last heap sample, closing. */
const TAIL_MS = 10_000
const ADMIN = 'soak-admin'
const ROUTE_PREFIX = '/api/v1/keys'

const startedAt = Date.now()

// ---- command line ----------------------------------------------------------------------------

const USAGE = 'usage: npm run soak [-- --minutes N | --short]   (needs DATABASE_URL and REDIS_URL)'

function options (): { plannedMs: number, short: boolean, minutes: number } {
  let values: { minutes?: string, short?: boolean, help?: boolean }
  try {
    values = parseArgs({ options: { minutes: { type: 'string' }, short: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`)
    process.exit(2)
  }
  if (values.help === true) { process.stdout.write(`${USAGE}\n`); process.exit(0) }
  if (values.short === true && values.minutes !== undefined) { process.stderr.write(`--short and --minutes do not go together\n${USAGE}\n`); process.exit(2) }
  if (values.short === true) return { plannedMs: 60_000, short: true, minutes: 1 }
  const minutes = values.minutes === undefined ? 5 : Number(values.minutes)
  if (!Number.isFinite(minutes) || minutes < 1) { process.stderr.write(`--minutes takes a number of minutes, 1 or more (at most 10 are used)\n${USAGE}\n`); process.exit(2) }
  return { plannedMs: Math.min(minutes * 60_000, MAX_PLANNED_MS), short: false, minutes: Math.min(minutes, 10) }
}

const { plannedMs, short } = options()
const DATABASE_URL = process.env.DATABASE_URL ?? ''
const REDIS_URL = process.env.REDIS_URL ?? ''
if (DATABASE_URL === '' || REDIS_URL === '') {
  process.stderr.write('npm run soak needs a PostgreSQL server and a Redis server: set DATABASE_URL and REDIS_URL, e.g.\n' +
    '  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 npm run soak\n')
  process.exit(2)
}
const HEAP_EVERY_MS = short ? 2000 : 3000
/** The least load a run gets however long its start-up took (within the hard limit). */
const MIN_LOAD_MS = short ? 25_000 : 60_000

// ---- what is cleaned up, whatever happens -----------------------------------------------------

const children = new Set<ChildProcess>()
let cleanupSchema: (() => Promise<void>) | undefined

function killChildren (): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}

async function abort (reason: string, code: number): Promise<never> {
  process.stderr.write(`soak: ${reason}\n`)
  killChildren()
  const dropped = cleanupSchema?.().catch(() => {})
  await Promise.race([dropped, sleep(5000)])
  process.exit(code)
}

const hardLimitMs = Math.min(plannedMs + 30_000, HARD_LIMIT_MS)
const hardStop = setTimeout(() => { void abort(`stopped at the hard limit of ${Math.round(hardLimitMs / 1000)} s`, 1) }, hardLimitMs)
hardStop.unref()
process.on('SIGINT', () => { void abort('interrupted', 130) })
process.on('SIGTERM', () => { void abort('terminated', 143) })

// ---- helpers ---------------------------------------------------------------------------------

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const random = (n: number): number => Math.floor(Math.random() * n)
const pick = <T>(values: readonly T[]): T => values[random(values.length)] as T
const fmt = (n: number, digits = 0): string => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits })

// ---- services ----------------------------------------------------------------------------------

/**
 * A redis-server of the run's own on a free loopback port when one is on the PATH: the plugin's
 * invalidation channel and key names are fixed, so only a server of its own keeps other runs'
 * messages and entries out. Without one, REDIS_URL's server, where this run's keys and secret are
 * its own (other runs' messages fail their tag and are ignored).
 */
async function startRedis (): Promise<{ url: string, where: string, stop: () => Promise<void> }> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    return { url: REDIS_URL, where: 'the server at REDIS_URL', stop: async () => {} }
  }
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()], { stdio: 'ignore' })
  children.add(server)
  const url = `redis://127.0.0.1:${port}`
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null })
  try {
    probe.on('error', () => {})
    await probe.connect().catch(() => {})
    await within(probe.ping(), 10_000, 'starting redis-server')
  } finally {
    probe.disconnect()
  }
  return {
    url,
    where: 'a redis-server of its own on loopback',
    stop: async () => {
      const exited = new Promise((resolve) => server.once('exit', resolve))
      server.kill('SIGTERM')
      await within(exited, 5000, 'stopping redis-server').catch(() => server.kill('SIGKILL'))
    }
  }
}

interface Instance {
  index: number
  child: ChildProcess
  port: number
  agent: http.Agent
  heap: HeapSample[]
}

/** Instance output goes to stderr, each line marked with its instance; at most this many lines. */
const MAX_LOG_LINES = 40
let logLines = 0
let logLinesDropped = 0

function relay (stream: NodeJS.ReadableStream | null, index: number): void {
  if (stream === null) return
  createInterface({ input: stream }).on('line', (line) => {
    if (logLines++ < MAX_LOG_LINES) process.stderr.write(`[instance ${index + 1}] ${line}\n`)
    else logLinesDropped++
  })
}

async function startInstance (index: number, env: Record<string, string>, onMessage: (index: number, message: InstanceMessage) => void): Promise<Instance> {
  const child = fork(new URL('./instance.ts', import.meta.url).pathname, [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  children.add(child)
  relay(child.stdout, index)
  relay(child.stderr, index)
  const instance: Instance = { index, child, port: 0, agent: new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }), heap: [] }
  const port = await within(new Promise<number>((resolve, reject) => {
    child.on('message', (message: InstanceMessage) => {
      if (message.type === 'ready') resolve(message.port)
      else onMessage(index, message)
    })
    child.once('exit', (code) => reject(new Error(`instance ${index + 1} exited with ${code} before it was ready`)))
  }), READY_TIMEOUT_MS, `starting instance ${index + 1}`)
  child.on('exit', (code, signal) => { if (!closing) void abort(`instance ${index + 1} exited (${code ?? signal}) during the run`, 1) })
  instance.port = port
  return instance
}

let closing = false

async function stopInstance (instance: Instance): Promise<void> {
  instance.agent.destroy()
  if (instance.child.exitCode !== null || instance.child.signalCode !== null) return
  const exited = new Promise((resolve) => instance.child.once('exit', resolve))
  instance.child.send('close')
  await within(exited, CLOSE_TIMEOUT_MS, `closing instance ${instance.index + 1}`).catch(() => instance.child.kill('SIGKILL'))
}

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string }

function call (instance: Instance, method: string, path: string, authorization: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${authorization}` }
    if (payload !== undefined) { headers['content-type'] = 'application/json'; headers['content-length'] = Buffer.byteLength(payload) }
    const request = http.request({ host: '127.0.0.1', port: instance.port, method, path, headers, agent: instance.agent }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }))
      response.on('error', reject)
    })
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer in ${timeoutMs} ms`)))
    request.on('error', reject)
    request.end(payload)
  })
}

// ---- the model: every key, every change --------------------------------------------------------

const limitedPool: Slot[] = []
const unlimitedPool: Slot[] = []
let slotCount = 0
const probes: KeyText[] = []
/** Changes whose invalidation some instance has yet to report, by key id. */
const awaitingHop = new Map<string, Array<{ transition: Transition, sentAt: number }>>()

const poolOf = (slot: Slot): Slot[] => slot.limited ? limitedPool : unlimitedPool

function addToPool (slot: Slot): void {
  const pool = poolOf(slot)
  slot.position = pool.length
  pool.push(slot)
}

function removeFromPool (slot: Slot): void {
  const pool = poolOf(slot)
  const last = pool.pop() as Slot
  if (last !== slot) { pool[slot.position] = last; last.position = slot.position }
}

function newSlot (name: string, limited: boolean, state: KeyState): Slot {
  return { id: slotCount++, name, limited, state, texts: [], busy: false, deleted: false, limits: [{ value: state.limit, setBy: null }], position: -1 }
}

function newText (slot: Slot, text: string): KeyText {
  const parsed = parseKey(text, new Set(['metlo', 'mlo']))
  if (parsed === null) throw new Error('the server answered a key text that does not parse')
  const keyText: KeyText = { text, keyId: parsed.keyId, identifier: keyIdentifier(parsed.prefix, parsed.keyId), slot, initial: slot.state, transitions: [], dead: false, probeUntil: 0 }
  slot.texts.push(keyText)
  return keyText
}

/** Texts a change of the slot concerns: not dead, and not past a sunset. */
function liveTexts (slot: Slot, at: number): KeyText[] {
  return slot.texts.filter((text) => !text.dead && !(text.sunsetAt !== undefined && at >= text.sunsetAt))
}

function addTransition (text: KeyText, kind: ChangeKind, sentAt: number, after: KeyState): Transition {
  const transition: Transition = { kind, start: sentAt, returnedAt: Infinity, heard: new Array<number>(INSTANCES).fill(Infinity), notBefore: 0, after }
  text.transitions.push(transition)
  text.probeUntil = sentAt + PROBE_MS
  probes.push(text)
  const waiting = awaitingHop.get(text.keyId) ?? []
  waiting.push({ transition, sentAt })
  awaitingHop.set(text.keyId, waiting)
  return transition
}

const hop = { notHeard: 0, dropAll: 0, delays: [] as number[] }

function heard (index: number, keyId: string | null, at: number): void {
  if (keyId === null) {
    // This instance lost its subscription and dropped every cached key: every change so far applies there.
    hop.dropAll++
    for (const waiting of awaitingHop.values()) for (const { transition, sentAt } of waiting) if (sentAt <= at && transition.heard[index] === Infinity) transition.heard[index] = at
    return
  }
  const waiting = awaitingHop.get(keyId)
  if (waiting === undefined) return
  for (const { transition, sentAt } of waiting) {
    if (sentAt <= at && transition.heard[index] === Infinity) transition.heard[index] = at
  }
}

/**
 * Forgets changes every instance has reported, counting each instance that heard one more than
 * HEAR_TIMEOUT_MS after the change returned, or whose report (by its own clock) has not come
 * REPORT_WAIT_MS after it. At the end, a change answered too lately to tell is left uncounted.
 */
function sweepHops (now: number, final = false): void {
  for (const [keyId, waiting] of awaitingHop) {
    const left = waiting.filter(({ transition }) => {
      const returnedAt = transition.returnedAt
      // In flight, or failed (a failed change publishes nothing; it fails the run on its own).
      if (returnedAt === Infinity) return !final
      if (transition.heard.every((at) => at !== Infinity)) {
        // The hop: the last instance to hear it, from when the change returned.
        hop.delays.push(Math.max(...transition.heard) - returnedAt)
        hop.notHeard += transition.heard.filter((at) => at - returnedAt > HEAR_TIMEOUT_MS).length
        return false
      }
      if (now - returnedAt < REPORT_WAIT_MS && !final) return true
      if (!final || now - returnedAt >= HEAR_TIMEOUT_MS + FINAL_REPORT_MS) {
        hop.notHeard += transition.heard.filter((at) => at === Infinity || at - returnedAt > HEAR_TIMEOUT_MS).length
      }
      return false
    })
    if (left.length === 0) awaitingHop.delete(keyId)
    else awaitingHop.set(keyId, left)
  }
}

// ---- load ------------------------------------------------------------------------------------

interface Answered { text: KeyText, instance: number, sentAt: number, answeredAt: number, status: number, limit: number | undefined, reset: number | undefined }

const stats = {
  sent: 0,
  errors: 0,
  byStatus: new Map<number, number>(),
  latency: createHistogram(),
  judged: 0,
  afterDeadline: 0,
  refusedAfterDeadline: 0,
  uncounted: 0,
  verdicts: new Map<Verdict, number>(),
  examples: [] as string[]
}
const answered: Answered[] = []
const windows = new Map<string, { slot: Slot, start: number, admitted: number, uncounted: number }>()

function pickText (now: number): KeyText | undefined {
  const roll = Math.random()
  if (roll < PROBE_SHARE && probes.length > 0) {
    // Drop texts whose probing is over (cheaply: only when drawn).
    const at = random(probes.length)
    const text = probes[at] as KeyText
    if (text.probeUntil > now) return text
    probes[at] = probes[probes.length - 1] as KeyText
    probes.pop()
  }
  const limited = roll < LIMITED_SHARE && limitedPool.length > 0
  const pool = limited ? limitedPool : unlimitedPool
  if (pool.length === 0) return undefined
  const slot = limited && Math.random() < 0.5 ? pool[random(Math.min(HOT_LIMITED, pool.length))] as Slot : pick(pool)
  return slot.texts[slot.texts.length - 1]
}

async function loadWorker (instances: Instance[], until: () => number): Promise<void> {
  while (Date.now() < until()) {
    const now = Date.now()
    const text = pickText(now)
    if (text === undefined) { await sleep(10); continue }
    const instance = random(INSTANCES)
    stats.sent++
    const sentAt = Date.now()
    const t0 = performance.now()
    let answer: Answer
    try {
      answer = await call(instances[instance] as Instance, 'GET', '/soak', text.text)
    } catch {
      stats.errors++
      continue
    }
    stats.latency.record(Math.max(1, Math.round((performance.now() - t0) * 1000)))
    const limit = answer.headers['x-ratelimit-limit']
    const reset = answer.headers['x-ratelimit-reset']
    answered.push({
      text,
      instance,
      sentAt,
      answeredAt: Date.now(),
      status: answer.status,
      limit: typeof limit === 'string' ? Number(limit) : undefined,
      reset: typeof reset === 'string' ? Number(reset) : undefined
    })
  }
}

/** Judges the answers that arrived long enough ago (all of them when `all`). */
function judgeAnswers (all: boolean): void {
  const before = Date.now() - JUDGE_DELAY_MS
  let n = 0
  for (; n < answered.length; n++) {
    const a = answered[n] as Answered
    if (!all && a.answeredAt > before) break
    stats.byStatus.set(a.status, (stats.byStatus.get(a.status) ?? 0) + 1)
    const judged = judge(a.text, a.instance, a.sentAt, a.answeredAt, a.status, a.limit)
    stats.judged++
    if (judged.transition !== null) stats.afterDeadline++
    if (judged.verdict === 'ok' && !judged.certain.live) stats.refusedAfterDeadline++
    stats.verdicts.set(judged.verdict, (stats.verdicts.get(judged.verdict) ?? 0) + 1)
    if (judged.verdict !== 'ok' && stats.examples.length < 20) {
      stats.examples.push(`${judged.verdict}: ${a.text.identifier} on instance ${a.instance + 1} answered ${a.status}` +
        (a.limit === undefined ? '' : ` (limit ${a.limit})`) +
        (judged.transition === null ? ' with no change of it certain' : `, sent ${judged.lateByMs} ms after the ${judged.transition.kind} was certain there`))
    }
    // Over-admission: admitted answers of a limited lineage, by the minute window the server counted
    // in (from X-RateLimit-Reset). One admitted without a count (no headers: the store failed and
    // onStoreError 'allow' let it on) goes against the window it was sent in.
    if (a.status === 200 && a.limit === undefined) stats.uncounted++
    if (a.status === 200 && a.text.slot.limited) {
      const start = a.reset === undefined ? a.sentAt - (a.sentAt % 60_000) : a.reset * 1000 - 60_000
      const name = `${a.text.slot.id}:${start}`
      const window = windows.get(name) ?? { slot: a.text.slot, start, admitted: 0, uncounted: 0 }
      window.admitted++
      if (a.reset === undefined) window.uncounted++
      windows.set(name, window)
    }
  }
  answered.splice(0, n)
}

// ---- churn -----------------------------------------------------------------------------------

const churn = { create: 0, delete: 0, rotate: 0, graced: 0, update: 0, failed: 0, failures: [] as string[] }
let created = 0

function churnFailed (what: string, answer: Answer | undefined, error?: unknown): void {
  churn.failed++
  if (churn.failures.length < 10) {
    churn.failures.push(answer === undefined ? `${what}: ${(error as Error).message}` : `${what}: ${answer.status} ${answer.body.slice(0, 200)}`)
  }
}

function pickChurnSlot (): Slot | undefined {
  for (let tries = 0; tries < 8; tries++) {
    const total = limitedPool.length + unlimitedPool.length
    if (total === 0) return undefined
    const at = random(total)
    const slot = (at < limitedPool.length ? limitedPool[at] : unlimitedPool[at - limitedPool.length]) as Slot
    if (!slot.busy) return slot
  }
  return undefined
}

async function change (instances: Instance[], admin: string, what: string, method: string, path: string, body: unknown, transitions: Transition[]): Promise<Answer | undefined> {
  let answer: Answer | undefined
  try {
    answer = await call(pick(instances), method, path, admin, body, CHANGE_TIMEOUT_MS)
  } catch (error) {
    churnFailed(what, undefined, error)
    return undefined
  }
  if (answer.status !== 200) { churnFailed(what, answer); return undefined }
  const returnedAt = Date.now()
  for (const transition of transitions) transition.returnedAt = returnedAt
  return answer
}

async function churnOnce (instances: Instance[], admin: string): Promise<void> {
  const roll = Math.random() * 5
  if (roll < 1) {
    // Create, and use it from then on.
    const limited = Math.random() < LIMITED_KEYS / KEYS
    const limit = limited ? pick(SMALL_LIMITS) : UNLIMITED
    const name = `soak-new-${created++}`
    const body = { name, keyFor: 'GENERIC', scopes: ['query'], plan: 'enterprise', rateLimit: limited ? { perMinute: limit } : { perMinute: UNLIMITED, perHour: UNLIMITED } }
    const answer = await change(instances, admin, 'create', 'POST', `${ROUTE_PREFIX}/create`, body, [])
    if (answer === undefined) return
    const slot = newSlot(name, limited, { live: true, query: true, limit })
    newText(slot, (JSON.parse(answer.body) as { apiKey: string }).apiKey)
    addToPool(slot)
    churn.create++
    return
  }
  const slot = pickChurnSlot()
  if (slot === undefined) return
  slot.busy = true
  try {
    const sentAt = Date.now()
    const path = `${ROUTE_PREFIX}/${encodeURIComponent(slot.name)}`
    if (roll < 2) {
      // Delete: every text of the key stops.
      removeFromPool(slot)
      slot.deleted = true
      const dead = { ...slot.state, live: false }
      const texts = liveTexts(slot, sentAt)
      const transitions = texts.map((text) => addTransition(text, 'delete', sentAt, dead))
      for (const text of texts) text.dead = true
      if (await change(instances, admin, 'delete', 'DELETE', `${path}/delete`, undefined, transitions) !== undefined) churn.delete++
    } else if (roll < 3.5) {
      // Rotate: the old text stops at once, or at the end of a short grace period.
      const grace = Math.random() < GRACE_SHARE ? GRACE_SECONDS : 0
      const texts = liveTexts(slot, sentAt)
      const current = texts[texts.length - 1] as KeyText
      const dead = { ...slot.state, live: false }
      // An earlier text still in its grace stops now; the current one now, or at its sunset.
      const transitions = texts.map((text) => addTransition(text, text === current && grace > 0 ? 'sunset' : 'rotate', sentAt, dead))
      for (const text of texts) if (text !== current || grace === 0) text.dead = true
      const sunsetTransition = grace > 0 ? transitions[transitions.length - 1] as Transition : undefined
      if (sunsetTransition !== undefined) sunsetTransition.notBefore = Infinity
      const answer = await change(instances, admin, 'rotate', 'POST', `${path}/rotate`, { gracePeriodSeconds: grace }, transitions)
      if (answer === undefined) return
      const rotated = JSON.parse(answer.body) as { apiKey: string, rotatingFrom: { sunset: string } | null }
      if (sunsetTransition !== undefined) {
        const sunset = Date.parse(rotated.rotatingFrom?.sunset ?? '')
        sunsetTransition.start = sunset
        sunsetTransition.notBefore = sunset
        current.sunsetAt = sunset
        current.probeUntil = sunset + PROBE_MS
        churn.graced++
      }
      newText(slot, rotated.apiKey)
      churn.rotate++
    } else {
      // Update: a limited key gets another limit (and now and then loses or regains `query`);
      // an unlimited one loses or regains `query`.
      const query = slot.limited && Math.random() < 0.8 ? slot.state.query : !slot.state.query
      const limit = slot.limited ? pick(SMALL_LIMITS.filter((value) => value !== slot.state.limit)) : slot.state.limit
      const after = { live: true, query, limit }
      const body = { ...(query === slot.state.query ? {} : { scopes: query ? ['query'] : ['federate'] }), ...(limit === slot.state.limit ? {} : { rateLimit: { perMinute: limit } }) }
      slot.state = after
      const texts = liveTexts(slot, sentAt)
      const transitions = texts.map((text) => addTransition(text, 'update', sentAt, after))
      if (limit !== slot.limits[slot.limits.length - 1]?.value) slot.limits.push({ value: limit, setBy: transitions[transitions.length - 1] as Transition })
      if (await change(instances, admin, 'update', 'PATCH', path, body, transitions) !== undefined) churn.update++
    }
  } finally {
    slot.busy = false
  }
}

async function churnWorker (instances: Instance[], admin: string, until: () => number): Promise<void> {
  while (Date.now() < until()) {
    await churnOnce(instances, admin)
    await sleep(CHURN_PAUSE_MS)
  }
}

// ---- the run ---------------------------------------------------------------------------------

async function main (): Promise<number> {
  const schema = `keygate_soak_${process.pid}_${randomBytes(3).toString('hex')}`
  const secret = randomBytes(32)
  const redis = await startRedis()
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, connectionTimeoutMillis: 10_000 })
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
  cleanupSchema = async () => {
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
    await db.destroy()
  }
  await within(migrateToLatest(db, schema), 30_000, 'migrating the soak schema')

  // 1,000 keys: LIMITED_KEYS with a small per-minute limit, the rest unlimited; and the admin key for the churn.
  const seeds: SeedKey[] = Array.from({ length: KEYS }, (_, i) => ({
    name: `soak-${i}`,
    scopes: ['query'],
    perMinute: i < LIMITED_KEYS ? SMALL_LIMITS[i % SMALL_LIMITS.length] as number : UNLIMITED,
    perHour: i < LIMITED_KEYS ? null : UNLIMITED
  }))
  seeds.push({ name: ADMIN, scopes: ['*'], perMinute: UNLIMITED, perHour: UNLIMITED })
  const texts = await within(seedKeys(db.withSchema(schema) as Kysely<KeygateDatabase>, seeds), 60_000, 'seeding the keys')
  const admin = texts.pop() as string
  texts.forEach((text, i) => {
    const seed = seeds[i] as SeedKey
    const slot = newSlot(seed.name, i < LIMITED_KEYS, { live: true, query: true, limit: seed.perMinute as number })
    newText(slot, text)
    addToPool(slot)
  })

  const env = { SOAK_DATABASE_URL: DATABASE_URL, SOAK_REDIS_URL: redis.url, SOAK_SCHEMA: schema, SOAK_SECRET: secret.toString('hex') }
  const onMessage = (index: number, message: InstanceMessage): void => {
    if (message.type === 'heard') heard(index, message.keyId, message.at)
    else if (message.type === 'heap') instances[index]?.heap.push(message)
  }
  const instances: Instance[] = []
  const started = await Promise.allSettled(Array.from({ length: INSTANCES }, async (_, i) => await startInstance(i, env, onMessage)))
  for (const result of started) {
    if (result.status === 'rejected') throw result.reason
    instances[result.value.index] = result.value
  }
  const setupMs = Date.now() - startedAt

  // Load and churn together until the plan's end, less what the end of the run takes.
  // A slow start-up (a busy machine) still leaves the load its minimum, within the hard limit.
  const loadStarted = Date.now()
  const loadEnds = Math.max(startedAt + plannedMs - TAIL_MS, loadStarted + MIN_LOAD_MS)
  if (loadEnds + TAIL_MS > startedAt + hardLimitMs) throw new Error(`start-up took ${Math.round(setupMs / 1000)} s: no time left for the load`)
  const warmEnds = loadStarted + Math.max(10_000, (loadEnds - loadStarted) / 3)
  const until = (): number => loadEnds
  const sampler = setInterval(() => { for (const instance of instances) if (instance.child.connected) instance.child.send('heap') }, HEAP_EVERY_MS)
  const judging = setInterval(() => { judgeAnswers(false); sweepHops(Date.now()) }, 500)
  const progress = setInterval(() => {
    process.stderr.write(`soak: ${Math.round((Date.now() - loadStarted) / 1000)} s, ${fmt(stats.sent)} requests, ${fmt(churn.create + churn.delete + churn.rotate + churn.update)} changes\n`)
  }, short ? 15_000 : 30_000)
  process.stderr.write(`soak: ${INSTANCES} instances up after ${fmt(setupMs / 1000, 1)} s; load until ${Math.round((loadEnds - startedAt) / 1000)} s\n`)
  await Promise.all([
    ...Array.from({ length: CONCURRENCY }, async () => await loadWorker(instances, until)),
    ...Array.from({ length: CHURN_WORKERS }, async () => await churnWorker(instances, admin, until))
  ])
  const loadMs = Date.now() - loadStarted
  clearInterval(sampler)
  // One last sample each (heap, CPU), at the end of the load.
  await within(Promise.all(instances.map(async (instance) => await new Promise<void>((resolve) => {
    const listen = (message: InstanceMessage): void => { if (message.type === 'heap') { instance.child.off('message', listen); resolve() } }
    instance.child.on('message', listen)
    instance.child.send('heap')
  }))), 10_000, 'the last heap samples').catch(() => {})
  clearInterval(progress)
  // The last reports of what the instances heard, then every answer is judged.
  await sleep(JUDGE_DELAY_MS)
  clearInterval(judging)
  judgeAnswers(true)
  sweepHops(Date.now(), true)

  closing = true
  await Promise.all(instances.map(stopInstance))
  await redis.stop()
  await within(cleanupSchema(), 10_000, 'dropping the soak schema').catch((error) => process.stderr.write(`soak: ${(error as Error).message}\n`))
  cleanupSchema = undefined

  return report({ setupMs, loadMs, instances, warmEnds, redisWhere: redis.where })
}

function report ({ setupMs, loadMs, instances, warmEnds, redisWhere }: { setupMs: number, loadMs: number, instances: Instance[], warmEnds: number, redisWhere: string }): number {
  const count = (verdict: Verdict): number => stats.verdicts.get(verdict) ?? 0
  const status = (code: number): number => stats.byStatus.get(code) ?? 0
  const serverErrors = [...stats.byStatus].filter(([code]) => code >= 500).reduce((sum, [, n]) => sum + n, 0)
  const others = [...stats.byStatus].filter(([code]) => ![200, 401, 403, 429].includes(code) && code < 500).reduce((sum, [, n]) => sum + n, 0)

  const over: string[] = []
  let overUncounted = 0
  for (const window of windows.values()) {
    const bound = windowBound(window.slot, window.start, INSTANCES)
    if (window.admitted <= bound) continue
    // Over only by what the store never counted (it failed; onStoreError 'allow'), or by counted ones too.
    if (window.admitted - window.uncounted <= bound) overUncounted++
    over.push(`${window.slot.name} window ${new Date(window.start).toISOString()}: ${window.admitted} admitted (${window.uncounted} without a count), limit ${bound}`)
  }
  const fullWindows = [...windows.values()].filter((w) => w.admitted >= windowBound(w.slot, w.start, INSTANCES)).length

  const heaps: Array<{ index: number, verdict: HeapVerdict, all: HeapSample[] }> = instances.map((instance) => ({
    index: instance.index,
    verdict: heapVerdict(instance.heap.filter((sample) => sample.at >= warmEnds).map(({ at, heapUsed }) => ({ at, heapUsed }))),
    all: instance.heap
  }))
  const growing = heaps.filter((heap) => heap.verdict.growing)
  const delays = [...hop.delays].sort((a, b) => a - b)
  const quantile = (q: number): number => delays.length === 0 ? NaN : delays[Math.min(delays.length - 1, Math.floor(q * delays.length))] as number
  const MiB = (bytes: number): string => fmt(bytes / 1024 / 1024, 1)
  const { user, system } = process.cpuUsage()
  const driverCpu = (user + system) / 1e6

  const lateUse = count('late-use') + count('late-identified')
  const stale = count('stale-update') + count('live-refused')
  const checks = [
    { name: '(1) over-admission', failed: over.length, text: `${over.length} of ${fmt(windows.size)} limited-key minute windows admitted more than their limit (${fmt(fullWindows)} reached it), ${overUncounted} of them only by admissions without a count; ` +
      `admitted without a count (the rate-limit store failed or timed out, onStoreError 'allow'): ${stats.uncounted}` },
    { name: '(2) late use', failed: lateUse + hop.notHeard, text: `${count('late-use')} deleted/rotated-out texts answered 200 after change + hop, ${count('late-identified')} answered 403/429; invalidations not heard within ${HEAR_TIMEOUT_MS / 1000} s: ${hop.notHeard}` },
    { name: '(2b) changes applied', failed: stale + count('unexpected'), text: `${count('stale-update')} answers with the scopes or limit from before an update after change + hop, ${count('live-refused')} live keys refused, ${count('unexpected')} other statuses` },
    { name: '(3) 5xx', failed: serverErrors + stats.errors + churn.failed, text: `${serverErrors} 5xx answers, ${stats.errors} requests without an answer, ${churn.failed} failed changes` },
    { name: '(4) heap', failed: growing.length, text: `${growing.length} of ${INSTANCES} instances kept growing once warm` }
  ]
  const failed = checks.some((check) => check.failed > 0)

  const lines = [
    '',
    `fastify-keygate soak${short ? ' (short)' : ''}: ${INSTANCES} instances, one PostgreSQL (a schema of its own), ${redisWhere}; ${fmt(KEYS)} keys (${LIMITED_KEYS} limited to ${SMALL_LIMITS.join('/')} a minute)`,
    `start-up ${fmt(setupMs / 1000, 1)} s, load ${fmt(loadMs / 1000, 1)} s, total ${fmt((Date.now() - startedAt) / 1000, 1)} s`,
    `requests: ${fmt(stats.sent)} sent, ${fmt(stats.sent / (loadMs / 1000))} req/s at concurrency ${CONCURRENCY}; 200: ${fmt(status(200))}, 401: ${fmt(status(401))}, 403: ${fmt(status(403))}, 429: ${fmt(status(429))}, 5xx: ${serverErrors}, other: ${others}, no answer: ${stats.errors}`,
    `CPU: driver ${fmt(driverCpu, 1)} s, instances ${instances.map((instance) => fmt((instance.heap[instance.heap.length - 1]?.cpu ?? 0) / 1e6, 1)).join(' / ')} s (user + system)`,
    `latency: p50 ${fmt(stats.latency.percentile(50) / 1000, 2)} ms, p99 ${fmt(stats.latency.percentile(99) / 1000, 2)} ms, max ${fmt(stats.latency.max / 1000, 1)} ms`,
    `churn: ${fmt(churn.create)} creates, ${fmt(churn.delete)} deletes, ${fmt(churn.rotate)} rotations (${fmt(churn.graced)} with ${GRACE_SECONDS} s grace), ${fmt(churn.update)} updates; ${churn.failed} failed`,
    `changes: ${fmt(stats.afterDeadline)} answers to changed texts sent after their change + hop + ${SLACK_MS} ms (${fmt(stats.refusedAfterDeadline)} of them to deleted or rotated-out texts, all refused unless said below); hop (last instance heard − change returned): p50 ${fmt(quantile(0.5))} ms, p99 ${fmt(quantile(0.99))} ms, max ${fmt(quantile(1))} ms; subscriptions lost: ${hop.dropAll}`,
    'heap after a full GC (per instance: all samples min – max; after warm-up: first third max → last third min, slope):',
    ...heaps.map(({ index, verdict, all }) => `  instance ${index + 1}: ${all.length} samples, ${MiB(Math.min(...all.map((s) => s.heapUsed)))} – ${MiB(Math.max(...all.map((s) => s.heapUsed)))} MiB; ` +
      `${verdict.samples} after warm-up: ${fmt(verdict.firstThirdMaxMiB, 1)} → ${fmt(verdict.lastThirdMinMiB, 1)} MiB, ${fmt(verdict.slopeMiBPerMin, 2)} MiB/min; ` +
      `event-loop delay max ${fmt(Math.max(...all.map((s) => s.loopMax)), 0)} ms${verdict.growing ? '  GROWING' : ''}`),
    'checks:',
    ...checks.map((check) => `  ${check.failed > 0 ? 'FAIL' : 'pass'} ${check.name}: ${check.text}`),
    ...over.slice(0, 10).map((line) => `    ${line}`),
    ...stats.examples.map((line) => `    ${line}`),
    ...churn.failures.map((line) => `    ${line}`),
    ...(logLinesDropped > 0 ? [`(${logLinesDropped} more instance log lines not shown)`] : []),
    `soak ${failed ? 'FAILED' : 'passed'}`,
    ''
  ]
  process.stdout.write(lines.join('\n'))
  return failed ? 1 : 0
}

try {
  const code = await main()
  clearTimeout(hardStop)
  process.exit(code)
} catch (error) {
  await abort(`failed: ${(error as Error).message}`, 1)
}
