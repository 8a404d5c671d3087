import t from 'tap'
import { HasherBusyError } from '../../lib/errors.js'
import { boundedHasher } from '../../lib/keys/bounded-hasher.js'

/** A hasher whose every call waits for the test, counting those running. */
function gatedHasher () {
  const state = { running: 0, most: 0, release: [] as Array<() => void> }
  const wait = async <T>(value: T): Promise<T> => {
    state.running++
    state.most = Math.max(state.most, state.running)
    await new Promise<void>((resolve) => state.release.push(resolve))
    state.running--
    return value
  }
  return { state, hasher: { hash: async (text: string) => await wait(`hash of ${text}`), verify: async () => await wait(true) } }
}

const turns = async () => { for (let i = 0; i < 5; i++) await new Promise(setImmediate) }

t.test('at most `concurrency` run at once, `queue` wait, and one more is refused at once', async (t) => {
  const { state, hasher } = gatedHasher()
  const bounded = boundedHasher(hasher, { concurrency: 2, queue: 2 })
  const calls = [bounded.verify('h', 'a'), bounded.verify('h', 'b'), bounded.hash('c'), bounded.verify('h', 'd')]
  await t.rejects(bounded.verify('h', 'e'), new HasherBusyError(), 'the fifth: two running, two waiting')
  await turns()
  t.equal(state.running, 2)
  while (state.release.length > 0) {
    state.release.shift()!()
    await turns()
  }
  t.same(await Promise.all(calls), [true, true, 'hash of c', true], 'every admitted call ran, in order')
  t.equal(state.most, 2, 'never more than two at once')
  const after = bounded.verify('h', 'f')
  await turns()
  state.release.shift()!()
  t.equal(await after, true, 'room again once they are done')
})

t.test('a call that fails gives its turn to the next', async (t) => {
  const failing = { hash: async () => { throw new Error('boom') }, verify: async () => true }
  const bounded = boundedHasher(failing, { concurrency: 1, queue: 1 })
  const first = bounded.hash('x')
  const second = bounded.verify('h', 'y')
  await t.rejects(first, { message: 'boom' })
  t.equal(await second, true)
  t.equal(await bounded.verify('h', 'z'), true)
})
