import t from 'tap'
import { createSeal } from '../../lib/cache/sealed-entry.js'

// Invalidation messages as they travel through Redis: a delete or a change, tagged, timed.

const seal = createSeal(Buffer.alloc(32, 7))

t.test('a delete and a change each come back as sent', async (t) => {
  t.same(seal.openMessage(seal.message('Ab3dEf7h', 1000, 'deleted')), { keyId: 'Ab3dEf7h', sentAt: 1000, reason: 'deleted' })
  t.same(seal.openMessage(seal.message('Ab3dEf7h', 1000, 'changed')), { keyId: 'Ab3dEf7h', sentAt: 1000, reason: 'changed' })
  t.equal(seal.message('Ab3dEf7h', 1000, 'deleted').split('.').length, 3, 'a delete keeps the earlier form, so older instances still hear it')
})

t.test('nobody without the secret can turn one into another, or make one up', async (t) => {
  const deleted = seal.message('Ab3dEf7h', 1000, 'deleted')
  const changed = seal.message('Ab3dEf7h', 1000, 'changed')
  const [id, at, tag] = deleted.split('.') as [string, string, string]
  const changedTag = changed.split('.')[3] as string
  t.equal(seal.openMessage(`${id}.${at}.changed.${tag}`), undefined, 'a delete\'s tag does not pass for a change')
  t.equal(seal.openMessage(`${id}.${at}.${changedTag}`), undefined, 'nor a change\'s for a delete')
  t.equal(seal.openMessage(`${id}.${at}.deleted.${tag}`), undefined, 'only "changed" is a four-part message')
  t.equal(seal.openMessage(`Zz3dEf7h.${at}.${tag}`), undefined, 'nor moved to another key id')
  t.equal(seal.openMessage(`${id}.2000.${tag}`), undefined, 'nor re-dated')
  t.equal(seal.openMessage(createSeal(Buffer.alloc(32, 8)).message('Ab3dEf7h', 1000, 'changed')), undefined, 'another secret')
  t.equal(seal.openMessage(`${changed}.extra`), undefined)
  t.equal(seal.openMessage(''), undefined)
})
