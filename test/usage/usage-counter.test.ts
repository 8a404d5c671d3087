import type { FastifyBaseLogger } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import { UsageCounter } from '../../lib/usage/usage-counter.js'
import { buildAppWithDatabase, countingWrites, testClock } from '../helpers/app.js'

type Test = Parameters<typeof buildAppWithDatabase>[0]

/** A counter on a migrated schema of its own, with its warnings and the writes it makes. */
async function setup (t: Test, maxLineages = 100) {
  const { database } = await buildAppWithDatabase(t)
  const counting = countingWrites(database.db)
  const clock = testClock()
  const warnings: string[] = []
  const log = { warn: (_: unknown, message: string) => warnings.push(message) } as unknown as FastifyBaseLogger
  const counter = new UsageCounter({ db: counting.db.withSchema(database.schema), flushMs: 10_000, maxLineages, now: clock.now, log })
  const stored = async () => (await database.db.withSchema(database.schema)
    .selectFrom('keygate_key_usage')
    .select(['lineage', sql<string>`to_char(day, 'YYYY-MM-DD')`.as('day'), 'requests'])
    .orderBy('lineage').orderBy('day')
    .execute()).map((row) => `${row.lineage} ${row.day} ${Number(row.requests)}`)
  return { counter, counting, clock, warnings, stored }
}

t.test('concurrent flushes write each count once', async (t) => {
  const { counter, counting, clock, stored } = await setup(t)
  for (let i = 0; i < 5; i++) counter.record('L1', clock.now())
  const first = counter.flush()
  // Counted while the first flush writes: the next flush's, not the first's.
  counter.record('L1', clock.now())
  counter.record('L2', clock.now())
  const second = counter.flush()
  const third = counter.flush()
  await Promise.all([first, second, third])
  t.same(await stored(), ['L1 2026-03-03 6', 'L2 2026-03-03 1'])
  t.equal(counting.transactions(), 2, 'the third found nothing left to write')
  t.equal(counter.pending, 0)
})

t.test('a failed flush merges its counts back, days kept apart', async (t) => {
  const { counter, counting, clock, warnings, stored } = await setup(t)
  clock.advance(11 * 3_600_000 + 59 * 60_000 + 45_000) // 23:59:45 UTC
  counter.record('L1', clock.now())
  counter.record('L1', clock.now())
  counting.failing(true)
  await counter.flush()
  t.equal(counter.pending, 1)
  clock.advance(30_000) // 00:00:15 the next day, within the minute
  counter.record('L1', clock.now())
  await counter.flush()
  counting.failing(false)
  counter.record('L1', clock.now())
  counter.record('L2', clock.now())
  await counter.flush()
  t.same(await stored(), ['L1 2026-03-03 2', 'L1 2026-03-04 2', 'L2 2026-03-04 1'])
  t.same(warnings, ['keygate: writing key usage failed; the counts are kept for the next flush'], 'once a minute at most')
})

t.test('memory stays bounded: past maxLineages a new lineage is not counted until a flush succeeds', async (t) => {
  const { counter, clock, warnings, stored } = await setup(t, 2)
  counter.record('L1', clock.now())
  counter.record('L2', clock.now())
  counter.record('L3', clock.now())
  counter.record('L1', clock.now())
  t.equal(counter.pending, 2)
  t.same(warnings, ['keygate: usage of more than 2 keys is waiting to be written; requests of other keys are not counted until a flush succeeds'])
  await counter.flush()
  counter.record('L3', clock.now())
  await counter.flush()
  t.same(await stored(), ['L1 2026-03-03 2', 'L2 2026-03-03 1', 'L3 2026-03-03 1'])
})

t.test('stop flushes, and a later start is harmless', async (t) => {
  const { counter, clock, stored } = await setup(t)
  counter.start()
  counter.start()
  counter.record('L1', clock.now())
  await counter.stop()
  t.same(await stored(), ['L1 2026-03-03 1'])
})
