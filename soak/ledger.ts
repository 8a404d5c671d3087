// What the soak knows of every key text and decides of every answer. Pure bookkeeping: no I/O, so
// the rules below are exactly what the README's "Soak test" section states.
//
// A change (delete, rotation, update) is a transition of each key text it concerns. It starts when
// the driver sends it (the server may apply it from then on) and is certain, for instance i, from
//   deadline(i) = max(change returned, instance i heard the key id's invalidation) + SLACK_MS
// where "heard" is the instance's own clock when its key cache's onInvalidate listener ran (the
// plugin's own listener runs before it). A request sent at or after deadline(i) to instance i was
// written after that instance had applied the change, so its answer must follow the new state.
// A request answered before the change was sent must follow the old one. Anything in between may
// follow either. The end of a rotation's grace is a transition that starts at the sunset and is
// certain from max(sunset, the rotation returned and was heard) + SLACK_MS.

export const SLACK_MS = 10

export interface KeyState {
  /** Authenticates (not deleted, not rotated out, not past its sunset). */
  live: boolean
  /** Holds the `query` scope the guarded route needs. */
  query: boolean
  /** The per-minute limit in force (what X-RateLimit-Limit says). */
  limit: number
}

export type ChangeKind = 'delete' | 'rotate' | 'update' | 'sunset'

export interface Transition {
  kind: ChangeKind
  /** From when the server may apply it, ms since the epoch. */
  start: number
  /** When the change's answer arrived; Infinity until then. */
  returnedAt: number
  /** Per instance, when its key cache heard the key id's invalidation; Infinity until then. */
  heard: number[]
  /** A sunset is not certain before it; 0 otherwise. */
  notBefore: number
  after: KeyState
}

export function deadline (transition: Transition, instance: number): number {
  return Math.max(transition.notBefore, transition.returnedAt, transition.heard[instance] ?? Infinity) + SLACK_MS
}

/** One lineage: a key across its rotations (rate-limit windows are counted per lineage). */
export interface Slot {
  id: number
  name: string
  limited: boolean
  /** The model's state of the live text, after every change sent so far. */
  state: KeyState
  texts: KeyText[]
  /** A change of this key is in flight: the churn picks another. */
  busy: boolean
  deleted: boolean
  /** Per-minute limits in force over time: the first from the start, each later one set by a transition. */
  limits: Array<{ value: number, setBy: Transition | null }>
  /** Where it sits in its pool, for O(1) removal. */
  position: number
}

export interface KeyText {
  text: string
  keyId: string
  identifier: string
  slot: Slot
  initial: KeyState
  transitions: Transition[]
  /** Dead in the model (no later change applies to it). */
  dead: boolean
  /** Extra traffic goes to it until then: it changed lately. */
  probeUntil: number
  /** For a text rotated away with a grace period: when the grace ends. */
  sunsetAt?: number
}

export type Verdict = 'ok' | 'late-use' | 'late-identified' | 'live-refused' | 'stale-update' | 'server-error' | 'unexpected'

/**
 * Whether an answer fits a state. A 200 or 403 without rate-limit headers was not counted (the
 * store failed and `onStoreError: 'allow'` let it on): it fits any limit, and the run counts it
 * on its own and against its window (see windowBound).
 */
function fits (state: KeyState, status: number, limit: number | undefined): boolean {
  const sameLimit = limit === undefined ? status !== 429 : limit === state.limit
  switch (status) {
    case 200: return state.live && state.query && sameLimit
    case 429: return state.live && sameLimit
    case 403: return state.live && !state.query && sameLimit
    case 401: return !state.live
    default: return false
  }
}

export interface Judged {
  verdict: Verdict
  /** The state the answer had to fit, as certain at the time the request was sent. */
  certain: KeyState
  /** The change the certain state comes from, if any, and how long after its deadline the request was sent. */
  transition: Transition | null
  lateByMs: number
}

/**
 * Judges one answer: `sentAt` when the request was issued, `answeredAt` when its answer arrived,
 * `limit` the X-RateLimit-Limit it carried. The certain state is the one of the latest change
 * certain at `sentAt`; the possible states add those of changes the request overlaps.
 */
export function judge (text: KeyText, instance: number, sentAt: number, answeredAt: number, status: number, limit: number | undefined): Judged {
  if (status >= 500) return { verdict: 'server-error', certain: text.initial, transition: null, lateByMs: 0 }
  let certain = text.initial
  let certainBy: Transition | null = null
  const overlapping: Transition[] = []
  for (const transition of text.transitions) {
    if (sentAt >= deadline(transition, instance)) {
      if (certainBy === null || transition.start >= certainBy.start) { certain = transition.after; certainBy = transition }
    } else if (answeredAt > transition.start) {
      overlapping.push(transition)
    }
  }
  if (fits(certain, status, limit)) return { verdict: 'ok', certain, transition: certainBy, lateByMs: 0 }
  for (const transition of overlapping) {
    if ((certainBy === null || transition.start >= certainBy.start) && fits(transition.after, status, limit)) return { verdict: 'ok', certain, transition: certainBy, lateByMs: 0 }
  }
  const lateByMs = certainBy === null ? 0 : sentAt - deadline(certainBy, instance)
  if (status !== 200 && status !== 401 && status !== 403 && status !== 429) return { verdict: 'unexpected', certain, transition: certainBy, lateByMs }
  if (!certain.live) return { verdict: status === 200 ? 'late-use' : 'late-identified', certain, transition: certainBy, lateByMs }
  if (status === 401) return { verdict: 'live-refused', certain, transition: certainBy, lateByMs }
  return { verdict: 'stale-update', certain, transition: certainBy, lateByMs }
}

/**
 * The most a lineage's minute window starting at `windowStart` may admit: the highest limit in
 * force at any moment of it. A limit is in force from when its change was sent until the next
 * change is certain on every instance.
 */
export function windowBound (slot: Slot, windowStart: number, instances: number): number {
  const windowEnd = windowStart + 60_000
  let bound = 0
  slot.limits.forEach(({ value, setBy }, i) => {
    const from = setBy === null ? -Infinity : setBy.start
    const next = slot.limits[i + 1]?.setBy
    let until = Infinity
    if (next !== undefined && next !== null) {
      until = 0
      for (let instance = 0; instance < instances; instance++) until = Math.max(until, deadline(next, instance))
    }
    if (from < windowEnd && until > windowStart) bound = Math.max(bound, value)
  })
  return bound
}

export interface HeapPoint { at: number, heapUsed: number }

export interface HeapVerdict {
  samples: number
  /** Least-squares slope of heapUsed over the samples after warm-up, MiB per minute. */
  slopeMiBPerMin: number
  firstThirdMaxMiB: number
  lastThirdMinMiB: number
  growing: boolean
}

/**
 * Slope above which heap growth counts, MiB/min; and how far the last third must clear the first:
 * more than a whole key cache of the soak's keys (about 1 MiB: 1,000 keys at about 1 KB each, see
 * bench/), which a short or slow run may still be filling after its warm-up.
 */
export const HEAP_SLOPE_MIB_PER_MIN = 1
export const HEAP_RISE_MIB = 2

const MiB = 1024 * 1024

/**
 * Heap that keeps growing once warm: over the samples taken after warm-up (heapUsed right after a
 * full GC), both the least-squares slope is above HEAP_SLOPE_MIB_PER_MIN and the lowest sample of
 * the last third is more than HEAP_RISE_MIB above the highest of the first third. Noise and a
 * one-off step fail neither; a steady climb fails both.
 */
export function heapVerdict (points: HeapPoint[]): HeapVerdict {
  const n = points.length
  if (n < 6) return { samples: n, slopeMiBPerMin: 0, firstThirdMaxMiB: 0, lastThirdMinMiB: 0, growing: false }
  const t0 = (points[0] as HeapPoint).at
  const xs = points.map((p) => (p.at - t0) / 60_000)
  const ys = points.map((p) => p.heapUsed / MiB)
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let sxy = 0
  let sxx = 0
  for (let i = 0; i < n; i++) {
    sxy += ((xs[i] as number) - mx) * ((ys[i] as number) - my)
    sxx += ((xs[i] as number) - mx) ** 2
  }
  const slope = sxx === 0 ? 0 : sxy / sxx
  const third = Math.floor(n / 3)
  const firstThirdMax = Math.max(...ys.slice(0, third))
  const lastThirdMin = Math.min(...ys.slice(n - third))
  return {
    samples: n,
    slopeMiBPerMin: slope,
    firstThirdMaxMiB: firstThirdMax,
    lastThirdMinMiB: lastThirdMin,
    growing: slope > HEAP_SLOPE_MIB_PER_MIN && lastThirdMin - firstThirdMax > HEAP_RISE_MIB
  }
}
