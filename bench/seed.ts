// Puts keys straight into the table for the benchmarks: creating 100,000 keys through the API, one
// transaction each, would take longer than the whole run. The keys are real (generateKey) and
// hashed with the hasher the server verifies with.
import type { Kysely } from 'kysely'
import type { KeygateDatabase } from '../lib/db/schema.js'
import type { KeyHasher } from '../lib/keys/hasher.js'
import { generateKey } from '../lib/keys/key-text.js'

const BATCH = 1000

export interface SeedOptions {
  count: number
  hasher: KeyHasher
  /** Limits high enough that no benchmark request is refused. */
  rateLimit: { perMinute: number, perHour: number }
  scopes: string[]
}

/** Inserts `count` keys and returns their texts. */
export async function seedKeys (db: Kysely<KeygateDatabase>, { count, hasher, rateLimit, scopes }: SeedOptions): Promise<string[]> {
  const texts: string[] = []
  for (let start = 0; start < count; start += BATCH) {
    const keys = Array.from({ length: Math.min(BATCH, count - start) }, () => generateKey('metlo'))
    const hashes = await Promise.all(keys.map(async (key) => await hasher.hash(key.text)))
    await db.insertInto('keygate_api_keys').values(keys.map((key, i) => ({
      id: key.keyId,
      lineage: key.keyId,
      prefix: key.prefix,
      name: `bench-${start + i}`,
      key_for: 'GENERIC',
      hash: hashes[i] as string,
      created_at: new Date(),
      scopes,
      plan: 'enterprise',
      rate_limit_per_minute: rateLimit.perMinute,
      rate_limit_per_hour: rateLimit.perHour
    }))).execute()
    texts.push(...keys.map((key) => key.text))
  }
  return texts
}
