import t from 'tap'
import { database, instance } from '../helpers/instance.js'

// Issue 14, tenants and owners: every key belongs to a tenant, management acts within the
// caller's, and a key without an owner is a service account.

const notFound = (name: string) => ({ error: 'key_not_found', message: `Did not find any matching keys for ${name}` })

t.test('two tenants with the same key name: neither sees, nor touches, the other\'s', async (t) => {
  const a = await instance(t, await database(t), { hostRoutes: (app) => app.get('/whoami', async (request) => ({ tenant: request.apiKey?.tenant })) })
  const acme = (await a.app.keygate.createKey({ tenant: 'acme', name: 'admin' })).apiKey
  const globex = (await a.app.keygate.createKey({ tenant: 'globex', name: 'admin' })).apiKey
  const acmeProd = await a.app.keygate.createKey({ tenant: 'acme', name: 'production', scopes: ['query'] })
  const globexProd = await a.app.keygate.createKey({ tenant: 'globex', name: 'production', scopes: ['query'] })
  await a.app.keygate.createKey({ tenant: 'globex', name: 'globex-only' })
  t.not(acmeProd.identifier, globexProd.identifier)

  t.same((await a.call(acme, 'GET', '/whoami')).json(), { tenant: 'acme' }, 'request.apiKey.tenant')
  t.same((await a.call(globex, 'GET', '/whoami')).json(), { tenant: 'globex' })
  const acmeList = (await a.call(acme, 'GET', '/api/v1/keys/list')).json()
  t.same(acmeList.map((k: { identifier: string }) => k.identifier), [(await a.app.keygate.listKeys({ tenant: 'acme' }))[0]?.identifier, acmeProd.identifier], 'its own two keys')
  t.same((await a.call(globex, 'GET', '/api/v1/keys/list')).json().map((k: { name: string }) => k.name), ['admin', 'production', 'globex-only'])
  t.same(await a.app.keygate.listKeys(), [], 'the default tenant has none')

  const cases: Array<[string, string, object | undefined]> = [
    ['DELETE', '/api/v1/keys/globex-only/delete', undefined],
    ['PATCH', '/api/v1/keys/globex-only', { plan: 'pro' }],
    ['POST', '/api/v1/keys/globex-only/rotate', {}],
    ['GET', '/api/v1/keys/globex-only/usage', undefined]
  ]
  for (const [method, url, body] of cases) {
    const res = await a.call(acme, method as 'GET', url, body)
    t.same([res.statusCode, res.json()], [404, notFound('globex-only')], `${method} on another tenant's name is a 404`)
  }
  t.equal((await a.call(acme, 'PATCH', '/api/v1/keys/production', { scopes: ['federate'] })).statusCode, 200)
  t.same((await a.call(globexProd.apiKey)).json(), { scopes: ['query'] }, 'the same name in the other tenant is untouched')
  t.equal((await a.call(acme, 'DELETE', '/api/v1/keys/production/delete')).statusCode, 200)
  t.equal((await a.call(globexProd.apiKey)).statusCode, 200, 'and still works after the delete of its namesake')
  t.equal((await a.call(acmeProd.apiKey)).statusCode, 401)
  t.same((await a.app.keygate.listKeys({ tenant: 'globex' })).map((k) => k.name), ['admin', 'production', 'globex-only'])
})

t.test('a key creates in its own tenant only; the routes refuse a tenant field, code may name one', async (t) => {
  const a = await instance(t, await database(t))
  const acme = (await a.app.keygate.createKey({ tenant: 'acme', name: 'admin' })).apiKey
  const field = await a.call(acme, 'POST', '/api/v1/keys/create', { name: 'k', tenant: 'globex' })
  t.same([field.statusCode, field.json().error], [400, 'invalid_request'], 'a tenant field is an unknown property to the routes')
  const made = await a.call(acme, 'POST', '/api/v1/keys/create', { name: 'k' })
  t.equal(made.statusCode, 200)
  t.same((await a.app.keygate.listKeys({ tenant: 'acme' })).map((k) => k.name), ['admin', 'k'])
  // In code, a caller's tenant wins over the one named: management never leaves it.
  await a.app.keygate.createKey({ tenant: 'globex', name: 'via-caller' }, { requestedBy: { tenant: 'acme', scopes: ['*'], limits: { perMinute: 60, perHour: 1000 } } })
  t.same((await a.app.keygate.listKeys({ tenant: 'globex' })).map((k) => k.name), [])
  t.same((await a.app.keygate.listKeys({ tenant: 'acme' })).map((k) => k.name), ['admin', 'k', 'via-caller'])
  for (const tenant of ['', 'a\u0000b', 'x'.repeat(129)]) {
    await t.rejects(a.app.keygate.createKey({ tenant, name: 'k2' }), { code: 'FST_KEYGATE_INVALID_REQUEST', message: 'tenant must be a string of 1 to 128 characters without control characters.' })
  }
})

t.test('maxKeys is per tenant, and holds under concurrent creates', async (t) => {
  const a = await instance(t, await database(t), { maxKeys: 3 })
  for (const name of ['a', 'b', 'c']) await a.app.keygate.createKey({ tenant: 'full', name })
  await t.rejects(a.app.keygate.createKey({ tenant: 'full', name: 'd' }), { code: 'FST_KEYGATE_KEY_LIMIT_REACHED' })
  const results = await Promise.allSettled(Array.from({ length: 8 }, async (_, i) => await a.app.keygate.createKey({ tenant: 'busy', name: `k${i}` })))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 3, 'exactly maxKeys of 8 concurrent creates')
  t.same(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code), Array(5).fill('FST_KEYGATE_KEY_LIMIT_REACHED'))
  t.equal((await a.app.keygate.listKeys({ tenant: 'busy' })).length, 3)
  t.equal((await a.app.keygate.createKey({ tenant: 'other', name: 'a' })).name, 'a', 'another tenant still has room')
})

t.test('owners: a key without one is a service account; listings filter by owner', async (t) => {
  const a = await instance(t, await database(t))
  const admin = (await a.app.keygate.createKey({ name: 'admin' })).apiKey
  const owned = await a.call(admin, 'POST', '/api/v1/keys/create', { name: 'alice-laptop', owner: 'user-alice' })
  t.same([owned.json().owner, owned.json().serviceAccount], ['user-alice', false])
  await a.call(admin, 'POST', '/api/v1/keys/create', { name: 'bob-ci', owner: 'user-bob' })
  const filtered = await a.call(admin, 'GET', '/api/v1/keys/list?owner=user-alice')
  t.same(filtered.json().map((k: { name: string }) => k.name), ['alice-laptop'])
  const all = (await a.call(admin, 'GET', '/api/v1/keys/list')).json()
  t.same(all.map((k: { name: string, owner: string | null, serviceAccount: boolean }) => [k.name, k.owner, k.serviceAccount]),
    [['admin', null, true], ['alice-laptop', 'user-alice', false], ['bob-ci', 'user-bob', false]])
  const handedOver = await a.call(admin, 'PATCH', '/api/v1/keys/bob-ci', { owner: null })
  t.same([handedOver.json().owner, handedOver.json().serviceAccount], [null, true], 'PATCH owner: null makes it a service account')
  const invalid = { error: 'owner_invalid', message: 'owner must be a user id of 1 to 128 characters without control characters.' }
  for (const owner of ['', 'a\nb', 'x'.repeat(129), 42, null]) {
    const res = await a.call(admin, 'POST', '/api/v1/keys/create', { name: 'k', owner })
    t.same([res.statusCode, res.json()], [400, invalid], JSON.stringify(owner))
  }
  const emptyFilter = await a.call(admin, 'GET', '/api/v1/keys/list?owner=')
  t.same([emptyFilter.statusCode, emptyFilter.json()], [400, { error: 'invalid_request', message: 'owner must be a user id of 1 to 128 characters.' }])
})
