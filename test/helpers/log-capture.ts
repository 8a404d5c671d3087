import { Writable } from 'node:stream'

/** A Fastify logger writing every line, at level trace, into memory. */
export function captureLogs () {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString())
      done()
    }
  })
  return { logger: { level: 'trace', stream }, text: () => lines.join('') }
}
