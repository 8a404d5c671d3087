import t from 'tap'
import { metricsRoute } from '../../examples/metrics.js'
import { buildApp, testClock } from '../helpers/app.js'

t.test('the example\'s /metrics: exact metric names and counts after known requests', async (t) => {
  const clock = testClock()
  const app = await buildApp(t, {
    keygate: { now: clock.now },
    routes: (app) => {
      void app.register(metricsRoute)
      app.get('/data', async () => ({ ok: true }))
      app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write'] } } }, async () => ({ ok: true }))
    }
  })
  const key = (await app.keygate.createKey({ name: 'k', scopes: ['query'] })).apiKey
  const call = async (authorization?: string, method: 'GET' | 'POST' = 'GET', url = '/data') =>
    await app.inject({ method, url, headers: authorization === undefined ? {} : { authorization } })

  t.equal((await call()).statusCode, 401, 'no key')
  t.equal((await call(key)).statusCode, 200, 'first use: a local miss and one argon2 run')
  t.equal((await call(key)).statusCode, 200, 'a local hit')
  t.equal((await call(key, 'POST', '/v1/connectors')).statusCode, 403, 'a local hit, then the scope lacking')

  const res = await app.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200, 'public')
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const lines = res.body.split('\n').filter((line) => line.startsWith('keygate_') && !line.includes('_bucket'))
  const argon2Sum = lines.find((line) => line.startsWith('keygate_argon2_duration_seconds_sum'))
  t.match(argon2Sum, /^keygate_argon2_duration_seconds_sum\{outcome="match"\} \d+(\.\d+)?(e-\d+)?$/)
  t.same(lines.filter((line) => line !== argon2Sum), [
    'keygate_verifications_total{outcome="denied"} 2',
    'keygate_verifications_total{outcome="admitted"} 2',
    'keygate_denials_total{reason="missing",status="401"} 1',
    'keygate_denials_total{reason="insufficient_scope",status="403"} 1',
    'keygate_cache_lookups_total{level="local",result="miss"} 1',
    'keygate_cache_lookups_total{level="local",result="hit"} 2',
    'keygate_argon2_duration_seconds_count{outcome="match"} 1'
  ])
  t.match(res.body, /# TYPE keygate_store_errors_total counter/, 'declared even before any store error')
})
