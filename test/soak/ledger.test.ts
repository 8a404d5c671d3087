// The soak's rules (soak/ledger.ts), on made-up timelines: what each answer may be around a change.
import t from 'tap'
import { deadline, heapVerdict, judge, type KeyState, type KeyText, type Slot, SLACK_MS, type Transition, windowBound } from '../../soak/ledger.js'

const LIVE: KeyState = { live: true, query: true, limit: 10 }
const DEAD: KeyState = { ...LIVE, live: false }

function textWith (...transitions: Transition[]): KeyText {
  const slot: Slot = { id: 0, name: 'k', limited: true, state: LIVE, texts: [], busy: false, deleted: false, limits: [{ value: 10, setBy: null }], position: 0 }
  return { text: '', keyId: 'k', identifier: 'metlo.k', slot, initial: LIVE, transitions, dead: false, probeUntil: 0 }
}

/** A change sent at 1000 that returned at 1100; instance 0 heard it at 1050, instance 1 at 1300. */
function change (after: KeyState, kind: Transition['kind'] = 'delete'): Transition {
  return { kind, start: 1000, returnedAt: 1100, heard: [1050, 1300], notBefore: 0, after }
}

t.test('a deleted text: certain after change returned and the instance heard it', async (t) => {
  const text = textWith(change(DEAD))
  t.equal(deadline(text.transitions[0]!, 0), 1100 + SLACK_MS)
  t.equal(deadline(text.transitions[0]!, 1), 1300 + SLACK_MS)
  t.equal(judge(text, 0, 500, 900, 200, 10).verdict, 'ok', 'answered before the change was sent: the old state')
  t.equal(judge(text, 0, 500, 1200, 200, 10).verdict, 'ok', 'overlapping the change: either state')
  t.equal(judge(text, 0, 1000, 1200, 401, undefined).verdict, 'ok')
  t.equal(judge(text, 0, 1110, 1200, 200, 10).verdict, 'late-use', 'sent after the deadline on instance 0')
  t.equal(judge(text, 0, 1110, 1200, 429, 10).verdict, 'late-identified')
  t.equal(judge(text, 1, 1110, 1200, 200, 10).verdict, 'ok', 'instance 1 had not heard it yet')
  t.equal(judge(text, 1, 1310, 1400, 200, 10).verdict, 'late-use')
  t.equal(judge(text, 1, 1310, 1400, 401, undefined).verdict, 'ok')
  t.equal(judge(text, 0, 1110, 1200, 503, undefined).verdict, 'server-error')
})

t.test('a change not yet returned or heard is never certain', async (t) => {
  const text = textWith({ ...change(DEAD), returnedAt: Infinity })
  t.equal(judge(text, 0, 5000, 5100, 200, 10).verdict, 'ok')
  const unheard = textWith({ ...change(DEAD), heard: [Infinity, Infinity] })
  t.equal(judge(unheard, 0, 5000, 5100, 200, 10).verdict, 'ok')
})

t.test('a live key refused, and an update not applied after its deadline', async (t) => {
  t.equal(judge(textWith(), 0, 100, 200, 401, undefined).verdict, 'live-refused')
  const scoped = textWith(change({ ...LIVE, query: false }, 'update'))
  t.equal(judge(scoped, 0, 1110, 1200, 200, 10).verdict, 'stale-update', 'the scope was removed')
  t.equal(judge(scoped, 0, 1110, 1200, 403, 10).verdict, 'ok')
  const limited = textWith(change({ ...LIVE, limit: 20 }, 'update'))
  t.equal(judge(limited, 0, 1110, 1200, 200, 10).verdict, 'stale-update', 'the old limit')
  t.equal(judge(limited, 0, 1110, 1200, 200, 20).verdict, 'ok')
  t.equal(judge(limited, 0, 1110, 1200, 200, undefined).verdict, 'ok', 'not counted (store failed): counted apart')
  t.equal(judge(limited, 0, 1050, 1200, 200, 10).verdict, 'ok', 'overlapping: either limit')
})

t.test('a grace period: live until the sunset, refused from it', async (t) => {
  const sunset: Transition = { kind: 'sunset', start: 3000, returnedAt: 1100, heard: [1050, 1300], notBefore: 3000, after: DEAD }
  const text = textWith(sunset)
  t.equal(judge(text, 0, 2000, 2900, 401, undefined).verdict, 'live-refused', 'answered before the sunset')
  t.equal(judge(text, 0, 2950, 3050, 401, undefined).verdict, 'ok')
  t.equal(judge(text, 0, 3010, 3050, 200, 10).verdict, 'late-use')
})

t.test('a window may admit the highest limit in force during it', async (t) => {
  const raise: Transition = { kind: 'update', start: 90_000, returnedAt: 90_100, heard: [90_050, 90_200], notBefore: 0, after: { ...LIVE, limit: 20 } }
  const slot = textWith().slot
  slot.limits.push({ value: 20, setBy: raise })
  t.equal(windowBound(slot, 0, 2), 10, 'before the change')
  t.equal(windowBound(slot, 60_000, 2), 20, 'the change was sent in this window')
  t.equal(windowBound(slot, 120_000, 2), 20)
  const lower: Transition = { ...raise, start: 150_000, returnedAt: 150_100, heard: [150_050, 150_200], after: { ...LIVE, limit: 5 } }
  slot.limits.push({ value: 5, setBy: lower })
  t.equal(windowBound(slot, 120_000, 2), 20, 'the higher limit held in part of it')
  t.equal(windowBound(slot, 180_000, 2), 5)
})

t.test('heap: a steady climb fails, noise and a one-off step do not', async (t) => {
  const MiB = 1024 * 1024
  const series = (f: (i: number) => number) => Array.from({ length: 30 }, (_, i) => ({ at: i * 3000, heapUsed: f(i) * MiB }))
  t.equal(heapVerdict(series(() => 20)).growing, false, 'flat')
  t.equal(heapVerdict(series((i) => 20 + (i % 3) * 0.5)).growing, false, 'noise')
  t.equal(heapVerdict(series((i) => i < 3 ? 18 : 20)).growing, false, 'a step early on')
  t.equal(heapVerdict(series((i) => 20 + i * 0.2)).growing, true, '4 MiB/min')
  t.equal(heapVerdict(series((i) => 20 + i * 0.05)).growing, false, '1 MiB/min, less than a key cache over the run')
  t.equal(heapVerdict(series((i) => 20 + i * 0.02)).growing, false, '0.4 MiB/min')
  t.equal(heapVerdict(series(() => 20).slice(0, 5)).growing, false, 'too few samples to judge')
})
