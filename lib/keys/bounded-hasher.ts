import { HasherBusyError } from '../errors.js'
import type { KeyHasher } from './hasher.js'

export interface BoundedHasherOptions {
  /** Most hashes and verifications running at once. */
  concurrency: number
  /** Most waiting for a turn; one more is refused with `HasherBusyError` (503). */
  queue: number
}

/**
 * argon2 with a cap on how much of it runs at once. argon2 runs on libuv's thread pool (four
 * threads unless UV_THREADPOOL_SIZE says otherwise); past the cap, work waits in a bounded queue,
 * and past that it is refused at once, so a burst of first uses cannot queue up minutes of argon2
 * or starve the pool's other users. Keys already verified never come here.
 */
export function boundedHasher (hasher: KeyHasher, { concurrency, queue }: BoundedHasherOptions): KeyHasher {
  let running = 0
  const waiting: Array<() => void> = []

  async function turn<T> (work: () => Promise<T>): Promise<T> {
    if (running >= concurrency) {
      if (waiting.length >= queue) throw new HasherBusyError()
      await new Promise<void>((resolve) => waiting.push(resolve))
    } else {
      running++
    }
    try {
      return await work()
    } finally {
      // The turn passes straight to the next in line, so `running` stays counted for it.
      const next = waiting.shift()
      if (next === undefined) running--
      else next()
    }
  }

  return {
    hash: async (keyText) => await turn(async () => await hasher.hash(keyText)),
    verify: async (storedHash, keyText) => await turn(async () => await hasher.verify(storedHash, keyText))
  }
}
