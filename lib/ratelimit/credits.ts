import type { Credits } from '../records/lifecycle.js'
import type { WindowRequest } from './store.js'

/**
 * Credits are one more window of the same store call as the rate limits, so they are counted
 * with the same atomic all-or-nothing step: exact across instances, none used by a refused
 * request. Its period is the refill interval's UTC day or calendar month, or one period that
 * never ends when nothing refills. Its limit is `remaining` in the period that holds `setAt` and
 * `refill.amount` in every later one: a refill sets the credits left to `amount`, it does not add.
 */
const CREDITS_WINDOW = 'credits'

const DAY_MS = 86_400_000

/** Window names per refill interval: the memory store keeps one bucket per name. */
const NAMES = { day: 'credits:day', month: 'credits:month', none: CREDITS_WINDOW } as const

export interface CreditsWindow extends WindowRequest {
  /** When the credits next refill, ms since the epoch; null when they never do. */
  refillAt: number | null
}

/** The credits window that holds `at`. */
export function creditsWindowAt (credits: Credits, at: number): CreditsWindow {
  const { refill, setAt, remaining } = credits
  // The counter starts over whenever credits are set again: their `setAt` is part of its name.
  const counter = String(setAt)
  if (refill === null) {
    return { name: NAMES.none, counter, limit: remaining, start: 0, durationMs: Infinity, refillAt: null }
  }
  let start: number
  let end: number
  if (refill.interval === 'day') {
    start = at - (at % DAY_MS)
    end = start + DAY_MS
  } else {
    // Months differ in length: both ends from the calendar.
    const date = new Date(at)
    start = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1)
    end = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1)
  }
  // Before `setAt`'s period ends, what was set; from the first refill on, the refill's amount.
  const limit = setAt >= start ? remaining : refill.amount
  return { name: NAMES[refill.interval], counter, limit, start, durationMs: end - start, refillAt: end }
}
