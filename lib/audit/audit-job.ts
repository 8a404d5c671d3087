import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import { keyIdentifier } from '../keys/key-text.js'
import type { KeygateDatabase } from '../db/schema.js'
import { PeriodicTask } from '../jobs/periodic-task.js'
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
  readonly #warn: Warn
  readonly #task: PeriodicTask

  constructor (options: AuditJobOptions) {
    this.#options = options
    this.#warn = throttledWarning(options.log, options.now)
    this.#task = new PeriodicTask(async () => {
      await this.#run().catch((error) => this.#warn(error, 'keygate: the audit job failed; it runs again at its next interval'))
    }, options.intervalMs)
  }

  start (): void {
    this.#task.start()
  }

  /** Stops the timer and waits for a run under way. */
  async stop (): Promise<void> {
    await this.#task.stop()
  }

  /** One run now. Never rejects: a failure is logged (once a minute at most) and the next run tries again. */
  async tick (): Promise<void> {
    await this.#task.run()
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
