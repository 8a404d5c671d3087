import t from 'tap'
import { refusals } from '../helpers/cli-keys.js'

t.test('keys on a PGlite folder: what the API refuses', async (t) => await refusals(t, 'pglite'))
