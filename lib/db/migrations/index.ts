import type { Migration } from 'kysely/migration'
import { m001_api_keys } from './001_api_keys.js'
import { m002_scopes_and_plans } from './002_scopes_and_plans.js'
import { m003_lifecycle } from './003_lifecycle.js'
import { m004_tenants_and_owners } from './004_tenants_and_owners.js'
import { m005_audit_events } from './005_audit_events.js'

/** Every migration, by name, in the order they run. Held in code: nothing scans a folder. */
export const migrations: Record<string, Migration> = {
  '001_api_keys': m001_api_keys,
  '002_scopes_and_plans': m002_scopes_and_plans,
  '003_lifecycle': m003_lifecycle,
  '004_tenants_and_owners': m004_tenants_and_owners,
  '005_audit_events': m005_audit_events
}
