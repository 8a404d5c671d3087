import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import { keyIdentifier } from '../keys/key-text.js'
import type { KeygateDatabase } from '../db/schema.js'
import { throttledWarning, type Warn } from '../log/throttled-warning.js'
import { deleteEventsBefore, recordExpiries } from '../repositories/audit.repository.js'
import { EXPIRY_ACTOR } from './audit-event.js'

const DAY_MS = 86_400_000
// Rows per statement: each one short, so neither job holds locks or memory for long.
const BATCH = 1000

export interface AuditJobOptions {
  db: Kysely<KeygateDatabase>
  intervalMs: number
  /** Events older than this many days are removed; undefined: kept for good. */
  retentionDays: number | undefined
  now: () => number
  log: FastifyBaseLogger
}

/**
 * The audit log's work off the request path: a `key.expired` event for each key that expired,
 * and the removal of events past their retention. Every `intervalMs`; the timer never keeps the
 * process alive.
 */
export class AuditJob {
  #options: AuditJobOptions
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #warn: Warn

  constructor (options: AuditJobOptions) {
    this.#options = options
    this.#warn = throttledWarning(options.log, options.now)
  }

  start (): void {
    if (this.#timer !== null) return
    // A tick during a slow run is skipped rather than queued.
    this.#timer = setInterval(() => { if (this.#running === null) void this.tick() }, this.#options.intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer and waits for a run under way. */
  async stop (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#running
  }

  /** One run now. Never rejects: a failure is logged (once a minute at most) and the next run tries again. */
  async tick (): Promise<void> {
    while (this.#running !== null) await this.#running
    this.#running = this.#run().catch((error) => this.#warn(error, 'keygate: the audit job failed; it runs again at its next interval'))
      .finally(() => { this.#running = null })
    await this.#running
  }

  async #run (): Promise<void> {
    const { db, now, retentionDays } = this.#options
    const at = new Date(now())
    while (await recordExpiries(db, at, BATCH, (key) => ({
      at: key.expires_at,
      tenant: key.tenant,
      action: 'key.expired',
      actor: EXPIRY_ACTOR,
      target: { identifier: keyIdentifier(key.prefix, key.id), name: key.name },
      ip: null,
      requestId: null
    })) === BATCH);
    if (retentionDays === undefined) return
    const before = new Date(at.getTime() - retentionDays * DAY_MS)
    while (await deleteEventsBefore(db, before, BATCH) === BATCH);
  }
}
