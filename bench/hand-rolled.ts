// The contender "rolling your own": what a careful developer writes in an afternoon, at its
// leanest. Keys are stored as SHA-256 digests (never as text) and looked up by digest in a Map;
// one fixed one-minute window per key, counted in the same Map; the three X-RateLimit headers;
// 401 and 429 with small JSON bodies. No key format or checksum, no scopes, no second window, no
// expiry, rotation, revocation across instances or usage. It shows what the least that keeps
// keys hashed and sends rate-limit headers costs per request, next to what fastify-keygate costs.
import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'

const WINDOW_MS = 60_000

interface HandRolledKey {
  limit: number
  used: number
  resetAt: number
}

const digest = (text: string): string => createHash('sha256').update(text).digest('hex')

export function handRolledAuth (app: FastifyInstance, keyTexts: readonly string[], limit: number): void {
  const keys = new Map<string, HandRolledKey>(keyTexts.map((text) => [digest(text), { limit, used: 0, resetAt: 0 }]))
  app.decorateRequest('handRolledKey', null)
  app.addHook('onRequest', (request, reply, done) => {
    const header = request.headers.authorization
    const key = header?.startsWith('Bearer ') === true ? keys.get(digest(header.slice(7))) : undefined
    if (key === undefined) return void reply.code(401).send({ error: 'unauthorized' })
    const now = Date.now()
    if (now >= key.resetAt) {
      key.resetAt = now + WINDOW_MS
      key.used = 0
    }
    key.used++
    reply.header('x-ratelimit-limit', key.limit)
    reply.header('x-ratelimit-remaining', Math.max(0, key.limit - key.used))
    reply.header('x-ratelimit-reset', Math.ceil(key.resetAt / 1000))
    if (key.used > key.limit) return void reply.code(429).send({ error: 'rate_limited' })
    ;(request as unknown as { handRolledKey: HandRolledKey }).handRolledKey = key
    done()
  })
}
