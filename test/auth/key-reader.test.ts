import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect } from 'kysely'
import t from 'tap'
import { KeyReader } from '../../lib/auth/key-reader.js'
import { buildAppWithDatabase, countingSelects } from '../helpers/app.js'

const keyIdOf = (key: string) => key.slice(key.indexOf('_') + 1, key.indexOf('_') + 9)

t.test('the reads of one event-loop turn share one query; each gets its own row', async (t) => {
  const { app, database } = await buildAppWithDatabase(t)
  const a = keyIdOf((await app.keygate.createKey({ name: 'a' })).apiKey)
  const b = keyIdOf((await app.keygate.createKey({ name: 'b' })).apiKey)
  await app.keygate.deleteKey('b')
  const { db, selects } = countingSelects(database.db.withSchema(database.schema))
  const reader = new KeyReader(db)

  const [first, again, deleted, unknown] = await Promise.all([reader.read(a), reader.read(a), reader.read(b), reader.read('unknown1')])
  t.equal(selects(), 1, 'one query for four reads of three ids')
  t.equal(first?.id, a)
  t.equal(first?.name, 'a')
  t.equal(again, first, 'the same id twice: the same row')
  t.equal(deleted, undefined, 'a deleted key is not live')
  t.equal(unknown, undefined)

  t.equal((await reader.read(a))?.id, a)
  t.equal(selects(), 2, 'a later turn, a new query')
})

t.test('a failed query fails every read that shared it', async (t) => {
  const pglite = new PGlite()
  await pglite.close()
  const reader = new KeyReader(new Kysely({ dialect: new PGliteDialect({ pglite }) }))
  const results = await Promise.allSettled([reader.read('aaaaaaaa'), reader.read('bbbbbbbb')])
  t.same(results.map((result) => result.status), ['rejected', 'rejected'])
  t.match((results[0] as PromiseRejectedResult).reason, { message: /closed/ })
})
