// Drives a server with `wrk -t1 -c<N> -d<s>s --latency` and bench/wrk.lua, pinned to `cpus`.
import { execFileSync, spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { track } from './children.js'
import type { LoadOptions, LoadRun } from './load.js'

const SCRIPT = new URL('./wrk.lua', import.meta.url).pathname

let clockTicks: number | undefined
function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** Header files are written once per list, in `directory`. */
const written = new WeakMap<string[], string>()
let files = 0

async function headerFile (headers: string[], directory: string): Promise<string> {
  if (headers.length === 0) return ''
  let file = written.get(headers)
  if (file === undefined) {
    file = join(directory, `headers-${files++}.txt`)
    await writeFile(file, headers.join('\n') + '\n')
    written.set(headers, file)
  }
  return file
}

interface WrkSummary { requests: number, duration: number, socketErrors: number, timeouts: number, other: number, statuses: Record<string, number>, p50: number, p99: number, ticks: number }

export async function wrk (options: LoadOptions & { cpus: string, directory: string }): Promise<LoadRun> {
  const file = await headerFile(options.headers, options.directory)
  // Each run starts somewhere else in the list, so a run does not replay the last one's first keys.
  const start = Math.floor(Math.random() * Math.max(1, options.headers.length))
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', '-s', SCRIPT, options.url, '--', file, String(options.expected), String(start)]
  const child = track(spawn('taskset', ['-c', options.cpus, 'wrk', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }))
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const line = /^BENCH (\{.*\})$/m.exec(output)?.[1]
  if (code !== 0 || line === undefined) throw new Error(`wrk exited with ${code}:\n${output}`)
  const summary = JSON.parse(line) as WrkSummary
  const seconds = summary.duration / 1e6
  return {
    requests: summary.requests,
    rps: summary.requests / seconds,
    p50: summary.p50 / 1000,
    p99: summary.p99 / 1000,
    unexpected: summary.other + summary.socketErrors + summary.timeouts,
    unexpectedKinds: {
      ...summary.statuses,
      ...(summary.socketErrors > 0 ? { 'socket errors': summary.socketErrors } : {}),
      // wrk's default: no answer within 2 s.
      ...(summary.timeouts > 0 ? { 'timeouts (2 s)': summary.timeouts } : {})
    },
    loadCpu: summary.ticks < 0 ? undefined : summary.ticks / ticksPerSecond() / seconds
  }
}
