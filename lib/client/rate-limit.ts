import type { KeyDeprecation, RateLimitState } from './types.js'

const WHOLE = /^[0-9]{1,15}$/

function whole (value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined
  const text = value.trim()
  return WHOLE.test(text) ? Number(text) : undefined
}

/** One member of a structured-field list: `"name";a=1;b=2` (or a bare token name). */
interface Member {
  name: string
  params: Map<string, string>
}

function parseList (value: string): Member[] {
  const members: Member[] = []
  for (const part of value.split(',')) {
    const [rawName, ...rawParams] = part.split(';')
    const name = (rawName ?? '').trim().replace(/^"(.*)"$/, '$1')
    if (name === '') continue
    const params = new Map<string, string>()
    for (const param of rawParams) {
      const at = param.indexOf('=')
      if (at > 0) params.set(param.slice(0, at).trim().toLowerCase(), param.slice(at + 1).trim())
    }
    members.push({ name, params })
  }
  return members
}

/** `X-RateLimit-*`: Reset is Unix seconds, an instant of the server's clock. */
function fromXRateLimit (headers: Headers): RateLimitState | null {
  const limit = whole(headers.get('x-ratelimit-limit'))
  const remaining = whole(headers.get('x-ratelimit-remaining'))
  const reset = whole(headers.get('x-ratelimit-reset'))
  if (limit === undefined || remaining === undefined || reset === undefined) return null
  return { limit, remaining, reset: new Date(reset * 1000) }
}

/**
 * The IETF draft's `RateLimit: "minute";r=58;t=17` with `RateLimit-Policy: "minute";q=60;w=60, ...`:
 * `t` is seconds from now, so the reset is counted from `receivedAt` (the client's clock).
 */
function fromIetf (headers: Headers, receivedAt: number): RateLimitState | null {
  const current = headers.get('ratelimit')
  if (current === null) return null
  const binding = parseList(current)[0]
  if (binding === undefined) return null
  const remaining = whole(binding.params.get('r'))
  const seconds = whole(binding.params.get('t'))
  const policy = parseList(headers.get('ratelimit-policy') ?? '').find((member) => member.name === binding.name)
  const limit = whole(policy?.params.get('q'))
  if (remaining === undefined || seconds === undefined || limit === undefined) return null
  return { limit, remaining, reset: new Date(receivedAt + seconds * 1000) }
}

/**
 * The rate-limit state a response tells of: `X-RateLimit-*` when present (its reset is absolute),
 * else the IETF draft's fields; null when it carries neither (or only malformed ones).
 */
export function rateLimitOf (headers: Headers, receivedAt: number): RateLimitState | null {
  return fromXRateLimit(headers) ?? fromIetf(headers, receivedAt)
}

/** `Deprecation: @<Unix seconds>` and `Sunset: <HTTP date>`, sent while a rotated-away key still works. */
export function deprecationOf (headers: Headers): KeyDeprecation | null {
  const deprecation = headers.get('deprecation')?.trim()
  if (deprecation === undefined || !deprecation.startsWith('@')) return null
  const seconds = whole(deprecation.slice(1))
  if (seconds === undefined) return null
  const sunset = Date.parse(headers.get('sunset') ?? '')
  return { at: new Date(seconds * 1000), sunset: Number.isNaN(sunset) ? null : new Date(sunset) }
}
