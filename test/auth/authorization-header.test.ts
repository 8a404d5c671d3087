import t from 'tap'
import { keyTextFromHeader, MAX_AUTHORIZATION_LENGTH } from '../../lib/auth/authorization-header.js'

t.test('both dialects, any scheme case, surrounding spaces trimmed', async (t) => {
  t.equal(keyTextFromHeader('metlo_abc'), 'metlo_abc')
  t.equal(keyTextFromHeader('Bearer mlo_abc'), 'mlo_abc')
  t.equal(keyTextFromHeader('bearer mlo_abc'), 'mlo_abc')
  t.equal(keyTextFromHeader('BEARER   mlo_abc  '), 'mlo_abc')
  t.equal(keyTextFromHeader('  metlo_abc '), 'metlo_abc')
})

t.test('nothing to read', async (t) => {
  t.equal(keyTextFromHeader(undefined), null)
  t.equal(keyTextFromHeader(''), null)
  t.equal(keyTextFromHeader('   '), null)
  t.equal(keyTextFromHeader('Bearer '), 'Bearer', 'a bare scheme is read as key text and fails parsing later')
  t.equal(keyTextFromHeader('x'.repeat(MAX_AUTHORIZATION_LENGTH + 1)), null, 'oversized headers are refused unread')
})
