import Fastify from 'fastify'
import t from 'tap'
import { handRolledAuth } from '../../bench/hand-rolled.js'
import { generateKey } from '../../lib/keys/key-text.js'

// The bench's "rolling your own" contender must really check keys and count, or its numbers would flatter it.
t.test('the hand-rolled contender admits its key, refuses others and counts one window', async (t) => {
  const app = Fastify()
  t.teardown(async () => await app.close())
  const key = generateKey('metlo').text
  handRolledAuth(app, [key], 2)
  app.get('/hello', async () => ({ hello: 'world' }))

  const first = await app.inject({ url: '/hello', headers: { authorization: `Bearer ${key}` } })
  t.equal(first.statusCode, 200)
  t.same(first.json(), { hello: 'world' })
  t.equal(first.headers['x-ratelimit-limit'], '2')
  t.equal(first.headers['x-ratelimit-remaining'], '1')
  t.match(first.headers['x-ratelimit-reset'], /^\d+$/)

  for (const authorization of [undefined, key, `Bearer ${generateKey('metlo').text}`, `Bearer ${key}x`]) {
    const res = await app.inject({ url: '/hello', headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.statusCode, 401, `refused: ${authorization === undefined ? 'no header' : 'another text'}`)
    t.same(res.json(), { error: 'unauthorized' })
  }

  t.equal((await app.inject({ url: '/hello', headers: { authorization: `Bearer ${key}` } })).statusCode, 200)
  const over = await app.inject({ url: '/hello', headers: { authorization: `Bearer ${key}` } })
  t.equal(over.statusCode, 429)
  t.equal(over.headers['x-ratelimit-remaining'], '0')
  t.same(over.json(), { error: 'rate_limited' })
})
