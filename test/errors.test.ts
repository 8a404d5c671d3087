import t from 'tap'
import {
  errorBody,
  insufficientScope,
  insufficientScopeBody,
  RateLimitExceededError,
  rateLimitedBody
} from '../lib/errors.js'

// The hook answers 403 and 429 from ready-made bodies, without an Error per refusal; the coded
// errors say the same, so a host matching `err.code` and a client reading the body agree.
t.test('the 403 and 429 bodies are the coded errors\' bodies', (t) => {
  t.same(insufficientScopeBody('connector:write'), errorBody(insufficientScope('connector:write')))
  t.same(insufficientScopeBody('connector:write'), { error: 'insufficient_scope', message: 'API key lacks required permission: connector:write' })
  const { retry_after: retryAfter, ...body } = rateLimitedBody(42)
  t.equal(retryAfter, 42)
  t.same(body, errorBody(new RateLimitExceededError(42)))
  t.same(body, { error: 'rate_limit_exceeded', message: 'Rate limit exceeded. Retry after 42 seconds.' })
  t.equal(insufficientScope('x').statusCode, 403)
  t.equal(new RateLimitExceededError(1).statusCode, 429)
  t.end()
})
