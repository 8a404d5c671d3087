import { crc32 } from 'node:zlib'
import t from 'tap'
import { BASE62_ALPHABET, decodeBase62, encodeBase62, isBase62, randomBase62 } from '../../lib/keys/base62.js'
import { generateKey, keyIdentifier, parseKey } from '../../lib/keys/key-text.js'
import { checksumOf } from '../helpers/keys.js'

const PREFIXES = new Set(['metlo', 'mlo'])

t.test('a generated key is <prefix>_ + 32 base62 characters with a CRC32 checksum', async (t) => {
  const key = generateKey('metlo')
  t.match(key.text, /^metlo_[0-9A-Za-z]{32}$/)
  t.equal(key.keyId, key.text.slice(6, 14))
  t.equal(key.identifier, `metlo.${key.keyId}`)
  const head = key.text.slice(0, -6)
  t.equal(key.text.slice(-6), encodeBase62(crc32(head), 6))
  t.same(parseKey(key.text, PREFIXES), { text: key.text, prefix: 'metlo', keyId: key.keyId })
})

t.test('keys are random: 1,000 draws, no repeats', async (t) => {
  const seen = new Set(Array.from({ length: 1000 }, () => generateKey('mlo').text))
  t.equal(seen.size, 1000)
})

t.test('base62 helpers', async (t) => {
  t.equal(encodeBase62(0, 6), '000000')
  t.equal(encodeBase62(61, 1), 'z')
  t.equal(encodeBase62(62, 2), '10')
  t.equal(encodeBase62(0xffffffff, 6), '4gfFC3')
  t.equal(decodeBase62('4gfFC3'), 0xffffffff)
  t.equal(decodeBase62('xx000010', 2, 8), 62, 'a range of the text')
  t.equal(decodeBase62('00-001'), -1)
  t.equal(decodeBase62('00é001'), -1)
  t.equal(isBase62('aZ09'), true)
  t.equal(isBase62('_aZ09_', 1, 5), true)
  t.equal(isBase62('aZ 09'), false)
  t.equal(isBase62('aZ\u{1F600}'), false)
  t.equal(isBase62(''), false)
  const drawn = randomBase62(10_000)
  t.equal(drawn.length, 10_000)
  t.equal([...drawn].every((c) => BASE62_ALPHABET.includes(c)), true)
  // Every character shows up in 10,000 draws: no character is excluded by the sampling.
  t.equal(new Set(drawn).size, 62)
})

t.test('parseKey refuses, without I/O, everything that is not a well-formed key', async (t) => {
  // A key whose body under the mlo prefix does not happen to have a valid checksum too (once in
  // 2^32 it would): every case below is bad by construction.
  let text: string
  do text = generateKey('metlo').text
  while (checksumOf(`mlo_${text.slice('metlo_'.length, -6)}`) === text.slice(-6))
  const body = text.slice('metlo_'.length)
  const typo = body[10] === 'a' ? 'b' : 'a'
  const cases: Record<string, string> = {
    empty: '',
    'no prefix': body,
    'unknown prefix': `other_${body}`,
    'prefix of another case': `METLO_${body}`,
    'body too short': text.slice(0, -1),
    'body too long': `${text}a`,
    'non-base62 character': `metlo_${body.slice(0, 10)}-${body.slice(11)}`,
    'non-base62 character in the checksum': `${text.slice(0, -1)}-`,
    'non-ASCII character': `metlo_${body.slice(0, 10)}é${body.slice(11)}`,
    'one-character typo': `metlo_${body.slice(0, 10)}${typo}${body.slice(11)}`,
    'checksum of another prefix': `mlo_${body}`,
    'leading separator': `_${body}`
  }
  for (const [label, candidate] of Object.entries(cases)) t.equal(parseKey(candidate, PREFIXES), null, label)
})

t.test('identifier', async (t) => {
  t.equal(keyIdentifier('mlo', 'a1B2c3D4'), 'mlo.a1B2c3D4')
})
