import t from 'tap'
import { updateRotateDelete } from '../helpers/cli-keys.js'

t.test('keys on a PGlite folder: update, rotate and delete', async (t) => await updateRotateDelete(t, 'pglite'))
