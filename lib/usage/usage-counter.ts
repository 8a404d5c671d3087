import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import type { KeygateDatabase } from '../db/schema.js'
import { PeriodicTask } from '../jobs/periodic-task.js'
import { throttledWarning, type Warn } from '../log/throttled-warning.js'
import { addDailyUsage, addKeyTotals, type DayCount, type LineageTotal, lockTotalsForFlush } from '../repositories/usage.repository.js'

const DAY_MS = 86_400_000

/** What one lineage made since the last flush. */
interface LineageCount {
  /** The UTC day (days since the epoch) of its latest requests, and how many it made that day. */
  day: number
  requests: number
  /** Earlier days since the last flush: only when a flush interval (or a failed flush) spans midnight. */
  earlier: Map<number, number> | null
  /** Its latest request, ms since the epoch. */
  lastUsed: number
}

export interface UsageCounterOptions {
  /** Scoped to the plugin's schema, when it has one. */
  db: Kysely<KeygateDatabase>
  /** Milliseconds between flushes. */
  flushMs: number
  /** Most lineages held between two successful flushes. */
  maxLineages: number
  now: () => number
  log: FastifyBaseLogger
}

/**
 * Requests per key lineage per UTC day, counted in this process and written in batches: no
 * database write per request, at most one transaction per flush interval for all keys. A crash
 * loses what was counted since the last flush; a flush that fails keeps its counts for the next.
 */
export class UsageCounter {
  #counts = new Map<string, LineageCount>()
  readonly #task: PeriodicTask
  // Once a minute each at most: a database that is down would otherwise log at every flush.
  readonly #warnFailed: Warn
  readonly #warnFull: Warn

  readonly #options: UsageCounterOptions

  constructor (options: UsageCounterOptions) {
    this.#options = options
    this.#task = new PeriodicTask(async () => await this.#flushOnce(), options.flushMs)
    this.#warnFailed = throttledWarning(options.log, options.now)
    this.#warnFull = throttledWarning(options.log, options.now)
  }

  /** One admitted request of this lineage at `at`: the hot path, a Map lookup and an increment. */
  readonly record = (lineage: string, at: number): void => {
    const day = Math.floor(at / DAY_MS)
    const count = this.#counts.get(lineage)
    if (count === undefined) {
      if (this.#isFull()) return
      this.#counts.set(lineage, { day, requests: 1, earlier: null, lastUsed: at })
      return
    }
    if (at > count.lastUsed) count.lastUsed = at
    if (count.day === day) {
      count.requests++
    } else {
      addDay(count, day, 1)
    }
  }

  /** Lineages with counts not yet written. */
  get pending (): number {
    return this.#counts.size
  }

  /** Flushes every `flushMs` from now on; the timer never keeps the process alive. */
  start (): void {
    this.#task.start()
  }

  /** Stops the timer and writes what is left: a clean shutdown loses nothing. */
  async stop (): Promise<void> {
    await this.#task.stop()
    await this.flush()
  }

  /**
   * Writes what was counted since the last flush, in one transaction. One flush at a time: a call
   * during one waits for it, then writes what came in meanwhile. Never rejects: a failure is
   * logged (once a minute at most) and its counts wait for the next flush.
   */
  async flush (): Promise<void> {
    await this.#task.run()
  }

  async #flushOnce (): Promise<void> {
    if (this.#counts.size === 0) return
    // Taken out before writing: requests during the write count toward the next flush.
    const taken = this.#counts
    this.#counts = new Map()
    await this.#write(taken)
  }

  async #write (taken: Map<string, LineageCount>): Promise<void> {
    const days: DayCount[] = []
    const totals: LineageTotal[] = []
    // In lineage order, so instances flushing at once lock usage rows in the same order.
    for (const lineage of [...taken.keys()].sort()) {
      const count = taken.get(lineage) as LineageCount
      let requests = count.requests
      for (const [day, n] of count.earlier ?? []) {
        days.push({ lineage, day: isoDay(day), requests: n })
        requests += n
      }
      days.push({ lineage, day: isoDay(count.day), requests: count.requests })
      totals.push({ lineage, requests, lastUsed: new Date(count.lastUsed) })
    }
    days.sort((a, b) => a.lineage === b.lineage ? (a.day < b.day ? -1 : 1) : (a.lineage < b.lineage ? -1 : 1))
    try {
      await this.#options.db.transaction().execute(async (trx) => {
        await lockTotalsForFlush(trx)
        await addDailyUsage(trx, days)
        await addKeyTotals(trx, totals)
      })
    } catch (error) {
      this.#putBack(taken)
      this.#warnFailed(error, 'keygate: writing key usage failed; the counts are kept for the next flush')
    }
  }

  /** The counts of a failed flush, merged into what was counted since. */
  #putBack (taken: Map<string, LineageCount>): void {
    for (const [lineage, old] of taken) {
      const count = this.#counts.get(lineage)
      if (count === undefined) {
        if (this.#isFull()) continue
        this.#counts.set(lineage, old)
        continue
      }
      if (old.lastUsed > count.lastUsed) count.lastUsed = old.lastUsed
      addDay(count, old.day, old.requests)
      for (const [day, n] of old.earlier ?? []) addDay(count, day, n)
    }
  }

  /**
   * Memory stays bounded when the database stays down: past `maxLineages`, a lineage not held yet
   * is not counted (its requests are dropped from usage; they are still served) until a flush
   * succeeds. Lineages already held keep counting.
   */
  #isFull (): boolean {
    if (this.#counts.size < this.#options.maxLineages) return false
    this.#warnFull(undefined, `keygate: usage of more than ${this.#options.maxLineages} keys is waiting to be written; requests of other keys are not counted until a flush succeeds`)
    return true
  }
}

/** Adds `n` requests on `day` to a lineage's count; the latest day stays in the fast field. */
function addDay (count: LineageCount, day: number, n: number): void {
  if (day === count.day) {
    count.requests += n
    return
  }
  count.earlier ??= new Map()
  if (day < count.day) {
    count.earlier.set(day, (count.earlier.get(day) ?? 0) + n)
    return
  }
  count.earlier.set(count.day, (count.earlier.get(count.day) ?? 0) + count.requests)
  count.day = day
  count.requests = n
}

/** `YYYY-MM-DD` of a UTC day number. */
function isoDay (day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10)
}
