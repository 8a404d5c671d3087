// Heap and resident memory per cached key: run with --expose-gc (bench/run.ts does).
// Keys go through the real path (app.inject → hook → database → argon2 → cache), then the heap is
// measured after a full garbage collection, against the same process before any key was used.
import { buildApp } from './app.js'

const quick = process.argv.includes('--quick')
const STEPS = quick ? [10_000] : [10_000, 100_000]
const total = STEPS[STEPS.length - 1] as number

function gc (): void {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('run with --expose-gc')
  collect()
  collect()
}

const built = await buildApp('keygate', { keyCount: total, cacheSize: total })
const headers = built.keys.map((key) => `Bearer ${key}`)
gc()
const base = process.memoryUsage()
const lines = [`Memory (in-process cache and rate-limit counters, after a usage flush and a full GC, against the same process with no key used yet; baseline heap ${(base.heapUsed / 2 ** 20).toFixed(1)} MiB, RSS ${(base.rss / 2 ** 20).toFixed(1)} MiB):`, '']
lines.push('| cached keys | heap added | heap per key | RSS added |', '|---:|---:|---:|---:|')
let done = 0
for (const step of STEPS) {
  for (; done < step; done += 100) {
    const batch = headers.slice(done, Math.min(step, done + 100))
    const responses = await Promise.all(batch.map(async (authorization) => await built.app.inject({ url: '/hello', headers: { authorization } })))
    const failed = responses.filter((res) => res.statusCode !== 200)
    if (failed.length > 0) throw new Error(`${failed.length} requests failed: ${failed[0]?.body}`)
  }
  // Usage counts wait in memory for at most usageFlushMs; what stays is the cache and the counters.
  await built.app.keygate.flushUsage()
  gc()
  const now = process.memoryUsage()
  const heap = now.heapUsed - base.heapUsed
  lines.push(`| ${step.toLocaleString('en')} | ${(heap / 2 ** 20).toFixed(1)} MiB | ${Math.round(heap / step)} B | ${((now.rss - base.rss) / 2 ** 20).toFixed(1)} MiB |`)
}
process.stdout.write(lines.join('\n') + '\n')
await built.close()
