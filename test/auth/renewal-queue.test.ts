import t from 'tap'
import { RenewalQueue } from '../../lib/auth/renewal-queue.js'
import type { CachedKey } from '../../lib/records/cached-key.js'

const TTL = 5_000
/** An entry fresh until `freshUntil`; only that field matters to the queue. */
const entryUntil = (freshUntil: number) => ({ freshUntil }) as CachedKey

t.test('a key is queued in the second half of its freshness; the batch is due 100 ms after the first', (t) => {
  const queue = new RenewalQueue({ cacheTtl: TTL })
  const a = entryUntil(TTL)
  t.equal(queue.noteFreshHit('a', a, TTL / 2 - 1), undefined, 'first half: nothing queued')
  t.equal(queue.noteFreshHit('a', a, TTL / 2 + 99), undefined, 'not due at once, and nothing was queued before')
  t.equal(queue.noteFreshHit('b', entryUntil(TTL + 100), TTL / 2 + 150), undefined, 'b queued too, 51 ms later')
  const due = queue.noteFreshHit('c', entryUntil(10 * TTL), TTL / 2 + 199)
  t.same(due === undefined ? undefined : [...due.keys()], ['a', 'b'], 'due at a hit 100 ms after a was queued, even a first-half one')
  t.equal(queue.noteFreshHit('a', a, TTL / 2 + 300), undefined, 'a key being read is not queued again')
  queue.done(due!)
  queue.noteFreshHit('a', a, TTL / 2 + 300)
  t.same([...(queue.noteFreshHit('a', a, TTL / 2 + 400) ?? new Map()).keys()], ['a'], 'once its read is done it is')
  t.end()
})

t.test('a full queue is due at once', (t) => {
  const queue = new RenewalQueue({ cacheTtl: TTL, maxBatch: 2 })
  t.equal(queue.noteFreshHit('a', entryUntil(TTL), TTL / 2), undefined)
  t.same([...(queue.noteFreshHit('b', entryUntil(TTL), TTL / 2) ?? new Map()).keys()], ['a', 'b'])
  t.end()
})

t.test('the latest entry of a queued key is the one in the batch', (t) => {
  const queue = new RenewalQueue({ cacheTtl: TTL })
  const older = entryUntil(TTL)
  const newer = entryUntil(TTL + 10)
  queue.noteFreshHit('a', older, TTL / 2)
  queue.noteFreshHit('a', newer, TTL / 2 + 1)
  t.equal(queue.noteFreshHit('a', newer, TTL / 2 + 100)?.get('a'), newer)
  t.end()
})

t.test('a clock that steps back restarts the wait instead of stalling it', (t) => {
  const queue = new RenewalQueue({ cacheTtl: TTL })
  const a = entryUntil(TTL)
  queue.noteFreshHit('a', a, TTL / 2)
  t.equal(queue.noteFreshHit('a', a, TTL / 2 - 1_000), undefined)
  t.ok(queue.noteFreshHit('a', a, TTL / 2 - 900) instanceof Map, '100 ms after the step back')
  t.end()
})
