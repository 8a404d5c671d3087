/**
 * A task that runs every `intervalMs` and on demand, one run at a time: a tick that comes during
 * a slow run is skipped rather than queued, a call to `run` during one waits for it and then runs
 * again, and the timer never keeps the process alive. For the work the plugin does off the
 * request path (usage flushes, the audit job).
 */
export class PeriodicTask {
  readonly #task: () => Promise<void>
  readonly #intervalMs: number
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null

  /** `task` must not reject: it handles (and logs) its own failures. */
  constructor (task: () => Promise<void>, intervalMs: number) {
    this.#task = task
    this.#intervalMs = intervalMs
  }

  start (): void {
    if (this.#timer !== null) return
    this.#timer = setInterval(() => { if (this.#running === null) void this.run() }, this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer and waits for a run under way. */
  async stop (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#running
  }

  /** One run now, after any run under way. */
  async run (): Promise<void> {
    while (this.#running !== null) await this.#running
    this.#running = this.#task().finally(() => { this.#running = null })
    await this.#running
  }
}
