import { createHash, createHmac } from 'node:crypto'
import t from 'tap'
import { createFingerprinter, sameFingerprint } from '../../lib/auth/fingerprint.js'

const SECRET = Buffer.alloc(32, 7)
const KEY = 'metlo_cgzFe1Px9zfcteJFqrynCTiXvf3IDSQX'

t.test('a fingerprint is the keyed SHA-256 the README describes, cut to 22 base64url characters', async (t) => {
  const key = createHmac('sha256', SECRET).update('fastify-keygate fingerprint v1').digest('base64url')
  const expected = createHash('sha256').update(key + KEY).digest('base64url').slice(0, 22)
  t.equal(createFingerprinter(SECRET)(KEY), expected)
  t.match(expected, /^[A-Za-z0-9_-]{22}$/)
})

t.test('the same text and secret give the same fingerprint in every instance; anything else another', async (t) => {
  const fingerprint = createFingerprinter(SECRET)
  t.equal(fingerprint(KEY), createFingerprinter(Buffer.from(SECRET))(KEY))
  t.not(fingerprint(KEY), fingerprint(KEY.slice(0, -1) + 'Y'))
  t.not(fingerprint(KEY), createFingerprinter(Buffer.alloc(32, 8))(KEY))
  t.notMatch(fingerprint(KEY), /cgzFe1Px/, 'nothing of the key shows through')
})

t.test('sameFingerprint compares whole strings', async (t) => {
  t.equal(sameFingerprint('abc', 'abc'), true)
  t.equal(sameFingerprint('abc', 'abd'), false)
  t.equal(sameFingerprint('abc', 'ab'), false)
  t.equal(sameFingerprint('', ''), true)
})
