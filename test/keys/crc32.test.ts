import { crc32 } from 'node:zlib'
import t from 'tap'
import { crc32Ascii } from '../../lib/keys/crc32.js'

t.test('the standard check value, and nothing', async (t) => {
  t.equal(crc32Ascii('123456789'), 0xCBF43926)
  t.equal(crc32Ascii(''), 0)
})

t.test('equals zlib on ASCII text of every length up to 80, and on a range of a string', async (t) => {
  let text = ''
  for (let length = 0; length <= 80; length++) {
    t.equal(crc32Ascii(text), crc32(text), `length ${length}`)
    text += String.fromCharCode(32 + ((length * 37) % 95))
  }
  t.equal(crc32Ascii('xxmetlo_abcyy', 2, 11), crc32('metlo_abc'))
})
