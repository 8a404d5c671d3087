import type { Kysely } from 'kysely'
import { type KeyInfo, toKeyInfo } from '../api/key-info.js'
import type { KeygateDatabase } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import type { KeyHasher } from '../keys/hasher.js'
import { parseKey } from '../keys/key-text.js'
import type { Plan } from '../ratelimit/plans.js'
import { findLiveKeyById } from '../repositories/api-key.repository.js'

/** `request.apiKey`: the key a request authenticated with. */
export interface AuthenticatedKey extends KeyInfo {
  /** The 8-character key id. */
  id: string
}

export type Authenticate = (keyText: string) => Promise<AuthenticatedKey | null>

export interface AuthenticatorDeps {
  db: Kysely<KeygateDatabase>
  hasher: KeyHasher
  prefixes: readonly string[]
  planOf: (name: string) => Plan
}

/** Checks key text: format and checksum first (no I/O), then the stored argon2id hash. */
export function createAuthenticator ({ db, hasher, prefixes, planOf }: AuthenticatorDeps): Authenticate {
  const accepted = new Set(prefixes)
  return async (keyText) => {
    const parsed = parseKey(keyText, accepted)
    if (parsed === null) return null
    const row = await whileAvailable(() => findLiveKeyById(db, parsed.keyId))
    if (row === undefined || row.prefix !== parsed.prefix) return null
    if (!(await hasher.verify(row.hash, parsed.text))) return null
    return { id: row.id, ...toKeyInfo(row, planOf) }
  }
}
