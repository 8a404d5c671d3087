import t from 'tap'
import { keyTextFromHeader, MAX_AUTHORIZATION_LENGTH } from '../../lib/auth/authorization-header.js'

t.test('both dialects, any scheme case, surrounding spaces trimmed', async (t) => {
  t.equal(keyTextFromHeader('metlo_abc'), 'metlo_abc')
  t.equal(keyTextFromHeader('Bearer mlo_abc'), 'mlo_abc')
  t.equal(keyTextFromHeader('bearer mlo_abc'), 'mlo_abc')
  t.equal(keyTextFromHeader('BEARER   mlo_abc  '), 'mlo_abc')
  t.equal(keyTextFromHeader('  metlo_abc '), 'metlo_abc')
  t.equal(keyTextFromHeader('\tBeArEr\t \tmlo_abc\t'), 'mlo_abc', 'tabs count as spaces')
})

t.test('only "bearer" followed by a space or tab is a scheme', async (t) => {
  t.equal(keyTextFromHeader('Bearerx mlo_abc'), 'Bearerx mlo_abc')
  t.equal(keyTextFromHeader('Bearermlo_abc'), 'Bearermlo_abc')
  t.equal(keyTextFromHeader('Basic mlo_abc'), 'Basic mlo_abc')
  t.equal(keyTextFromHeader('Bearer\u00a0mlo_abc'), 'Bearer\u00a0mlo_abc', 'HTTP whitespace is a space or a tab, nothing else')
})

t.test('nothing to read', async (t) => {
  t.equal(keyTextFromHeader(undefined), null)
  t.equal(keyTextFromHeader(''), null)
  t.equal(keyTextFromHeader('   '), null)
  t.equal(keyTextFromHeader('Bearer '), 'Bearer', 'a bare scheme is read as key text and fails parsing later')
  t.equal(keyTextFromHeader('x'.repeat(MAX_AUTHORIZATION_LENGTH + 1)), null, 'oversized headers are refused unread')
})
