import t from 'tap'
import { deprecationOf, rateLimitOf } from '../../lib/client/rate-limit.js'

const AT = Date.UTC(2026, 2, 3, 12, 0, 0)

t.test('rate-limit state from either header style; anything malformed is no state', async (t) => {
  t.same(rateLimitOf(new Headers({ 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '58', 'x-ratelimit-reset': '1772539260' }), AT),
    { limit: 60, remaining: 58, reset: new Date(1772539260 * 1000) })
  t.same(rateLimitOf(new Headers({ ratelimit: '"hour";r=3;t=120', 'ratelimit-policy': '"minute";q=60;w=60, "hour";q=1000;w=3600' }), AT),
    { limit: 1000, remaining: 3, reset: new Date(AT + 120_000) }, 'the limit of the binding window, from its policy')
  t.same(rateLimitOf(new Headers({ ratelimit: 'minute;r=0;t=5', 'ratelimit-policy': 'minute;q=10;w=60' }), AT),
    { limit: 10, remaining: 0, reset: new Date(AT + 5_000) }, 'a bare token name')
  const malformed: Array<Record<string, string>> = [
    {},
    { 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '58' },
    { 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '-1', 'x-ratelimit-reset': '1772539260' },
    { 'x-ratelimit-limit': 'sixty', 'x-ratelimit-remaining': '58', 'x-ratelimit-reset': '1772539260' },
    { ratelimit: '"minute";r=58;t=17' },
    { ratelimit: '"minute";r=58;t=17', 'ratelimit-policy': '"hour";q=1000;w=3600' },
    { ratelimit: '"minute";r=5.5;t=17', 'ratelimit-policy': '"minute";q=60;w=60' },
    { ratelimit: '', 'ratelimit-policy': '"minute";q=60;w=60' }
  ]
  for (const headers of malformed) t.equal(rateLimitOf(new Headers(headers), AT), null, JSON.stringify(headers))
})

t.test('deprecation from Deprecation and Sunset', async (t) => {
  t.same(deprecationOf(new Headers({ deprecation: '@1795954109', sunset: 'Mon, 30 Nov 2026 12:08:29 GMT' })),
    { at: new Date(1795954109 * 1000), sunset: new Date('2026-11-30T12:08:29.000Z') })
  t.same(deprecationOf(new Headers({ deprecation: '@1795954109' })), { at: new Date(1795954109 * 1000), sunset: null })
  for (const deprecation of [undefined, 'true', '@', '@-5', '@12.5']) {
    t.equal(deprecationOf(new Headers(deprecation === undefined ? {} : { deprecation })), null, String(deprecation))
  }
})
