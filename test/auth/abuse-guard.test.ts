import t from 'tap'
import { AbuseGuard } from '../../lib/auth/abuse-guard.js'

const guard = () => new AbuseGuard({ missTtlMs: 5_000, maxVerifications: 5, windowMs: 60_000, maxTracked: 100 })

t.test('five verifications a window per key id, counted as they start', (t) => {
  const g = guard()
  for (let n = 0; n < 5; n++) t.equal(g.begin('id', `fp${n}`, 1_000), true)
  t.equal(g.begin('id', 'fp5', 1_000), false, 'the sixth, with none finished yet')
  t.equal(g.isRefused('id', 'fp6', 30_000), true)
  t.equal(g.begin('other', 'fp', 1_000), true, 'another key id has its own')
  t.equal(g.begin('id', 'fp7', 61_000), true, 'a new window')
  t.end()
})

t.test('a clock that lags behind the window start (a slow read ago) does not reset it', (t) => {
  const g = guard()
  for (let n = 0; n < 5; n++) g.begin('id', `fp${n}`, 10_000)
  t.equal(g.begin('id', 'late', 9_000), false, 'a second behind: still the same window')
  t.equal(g.begin('id', 'far', 10_000 - 60_000), true, 'a clock stepped back by a whole window starts anew')
  t.end()
})

t.test('wrong secrets are remembered; an abandoned turn is given back; a delete forgets', (t) => {
  const g = guard()
  t.equal(g.begin('id', 'wrong', 0), true)
  g.failed('id', 'wrong', 0)
  t.equal(g.isRefused('id', 'wrong', 1), true, 'the same wrong secret again: no argon2')
  t.equal(g.isRefused('id', 'another', 1), false)
  for (let n = 0; n < 4; n++) g.begin('id', `fp${n}`, 0)
  t.equal(g.isRefused('id', 'x', 1), true)
  g.abandon('id', 1)
  t.equal(g.begin('id', 'x', 1), true, 'a verification that never ran gave its turn back')
  g.forget('id')
  t.equal(g.isRefused('id', 'wrong', 2), false)
  t.end()
})

t.test('missing identifiers are remembered for missTtlMs, by identifier', (t) => {
  const g = guard()
  g.rememberMissing('mlo.abcdefgh', 0)
  t.equal(g.isKnownMissing('mlo.abcdefgh', 4_999), true)
  t.equal(g.isKnownMissing('metlo.abcdefgh', 1), false, 'the same key id under another prefix is not')
  t.equal(g.isKnownMissing('mlo.abcdefgh', 5_000), false)
  t.end()
})
