import type { Migration } from 'kysely/migration'
import { m001_api_keys } from './001_api_keys.js'

/** Every migration, by name, in the order they run. Held in code: nothing scans a folder. */
export const migrations: Record<string, Migration> = {
  '001_api_keys': m001_api_keys
}
