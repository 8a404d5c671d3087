// CRC-32 as zlib computes it (IEEE 802.3, reflected, polynomial 0xEDB88320), read straight from
// a string. A key's checksum is checked on every request: node:zlib's crc32 would first copy
// the text into bytes, which costs more than the sum itself.
const TABLE = new Int32Array(256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let bit = 0; bit < 8; bit++) c = (c & 1) === 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1
  TABLE[n] = c
}

/**
 * CRC-32 of `text[start, end)`, unsigned, each character taken as one byte: for ASCII text it
 * equals zlib's `crc32(text.slice(start, end))`. Callers pass only ASCII (key text is base62).
 */
export function crc32Ascii (text: string, start = 0, end = text.length): number {
  let crc = -1
  for (let i = start; i < end; i++) crc = (TABLE[(crc ^ text.charCodeAt(i)) & 0xff] as number) ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}
