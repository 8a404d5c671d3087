import t from 'tap'
import { createAndList, refusals, updateRotateDelete } from '../helpers/cli-keys.js'
import { usingPostgres } from '../helpers/database.js'

const skip = usingPostgres ? false : 'needs DATABASE_URL'

t.test('keys on PostgreSQL: migrate, create and list', { skip }, async (t) => await createAndList(t, 'postgres'))
t.test('keys on PostgreSQL: update, rotate and delete', { skip }, async (t) => await updateRotateDelete(t, 'postgres'))
t.test('keys on PostgreSQL: what the API refuses', { skip }, async (t) => await refusals(t, 'postgres'))
