import t from 'tap'
import { refusals } from '../helpers/cli-keys.js'

// PGlite starts anew for every command (seconds each, more on a busy machine): this file gets more
// time than the suite's default.
t.setTimeout(360_000)

t.test('keys on a PGlite folder: what the API refuses', async (t) => await refusals(t, 'pglite'))
