import t from 'tap'
import { covers, DEFAULT_SCOPES, firstMissing, grantableScopes } from '../../lib/auth/scopes.js'

t.test('covers', async (t) => {
  t.equal(covers(['*'], 'connector:write'), true, '* covers everything')
  t.equal(covers(['*'], '*'), true)
  t.equal(covers(['query'], 'query'), true)
  t.equal(covers(['query'], 'federate'), false)
  t.equal(covers(['connector:*'], 'connector:read'), true)
  t.equal(covers(['connector:*'], 'connector:write'), true)
  t.equal(covers(['connector:*'], 'connector:*'), true)
  t.equal(covers(['connector:*'], 'connectors:read'), false, 'a namespace is matched whole')
  t.equal(covers(['connector:*'], 'connector'), false)
  t.equal(covers(['connector:read'], 'connector:*'), false, 'one scope does not grant its namespace')
  t.equal(covers(['connector:*'], '*'), false)
  t.equal(covers([], 'query'), false)
})

t.test('firstMissing keeps the route\'s order', async (t) => {
  t.equal(firstMissing(['query'], ['query', 'federate', 'audit:read']), 'federate')
  t.equal(firstMissing(['*'], ['query', 'federate']), undefined)
  t.equal(firstMissing(['query'], []), undefined)
})

t.test('grantable scopes: *, the vocabulary and its namespaces', async (t) => {
  t.same(grantableScopes(DEFAULT_SCOPES), [
    '*', 'query', 'federate', 'connector:read', 'connector:write', 'audit:read', 'audit:export', 'keys:read', 'keys:write',
    'connector:*', 'audit:*', 'keys:*'
  ])
  t.same(grantableScopes(['a:b:c']), ['*', 'a:b:c', 'a:*', 'a:b:*'])
})
