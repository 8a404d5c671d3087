import t from 'tap'
import { createAndList } from '../helpers/cli-keys.js'

t.test('keys on a PGlite folder: migrate, create and list', async (t) => await createAndList(t, 'pglite'))
