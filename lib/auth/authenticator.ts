import type { Kysely } from 'kysely'
import type { KeygateDatabase, KeyType } from '../db/schema.js'
import { whileAvailable } from '../db/unavailable.js'
import type { KeyHasher } from '../keys/hasher.js'
import { keyIdentifier, parseKey } from '../keys/key-text.js'
import { findLiveKeyById } from '../repositories/api-key.repository.js'

/** `request.apiKey`: the key a request authenticated with. */
export interface AuthenticatedKey {
  /** The 8-character key id. */
  id: string
  /** `<prefix>.<key id>`. */
  identifier: string
  name: string
  for: KeyType
  /** ISO 8601, UTC. */
  created: string
}

export type Authenticate = (keyText: string) => Promise<AuthenticatedKey | null>

export interface AuthenticatorDeps {
  db: Kysely<KeygateDatabase>
  hasher: KeyHasher
  prefixes: readonly string[]
}

/** Checks key text: format and checksum first (no I/O), then the stored argon2id hash. */
export function createAuthenticator ({ db, hasher, prefixes }: AuthenticatorDeps): Authenticate {
  const accepted = new Set(prefixes)
  return async (keyText) => {
    const parsed = parseKey(keyText, accepted)
    if (parsed === null) return null
    const row = await whileAvailable(() => findLiveKeyById(db, parsed.keyId))
    if (row === undefined || row.prefix !== parsed.prefix) return null
    if (!(await hasher.verify(row.hash, parsed.text))) return null
    return {
      id: row.id,
      identifier: keyIdentifier(row.prefix, row.id),
      name: row.name,
      for: row.key_for,
      created: row.created_at.toISOString()
    }
  }
}
