import t from 'tap'
import { argon2idHasher, OWASP_ARGON2 } from '../../lib/keys/hasher.js'

t.test('stores argon2id with the OWASP parameters by default and verifies only the same text', async (t) => {
  const hasher = argon2idHasher(OWASP_ARGON2)
  const stored = await hasher.hash('metlo_secret')
  t.match(stored, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.notMatch(stored, /metlo_secret/)
  t.equal(await hasher.verify(stored, 'metlo_secret'), true)
  t.equal(await hasher.verify(stored, 'metlo_secreT'), false)
})

t.test('a damaged stored hash verifies nothing instead of throwing', async (t) => {
  const hasher = argon2idHasher({ memoryCost: 256, timeCost: 1, parallelism: 1 })
  t.equal(await hasher.verify('not-a-hash', 'metlo_secret'), false)
})
