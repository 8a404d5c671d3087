// Puts the soak's keys straight into the table, as bench/seed.ts does: real key texts, hashed with
// the hasher the instances verify with. The argon2id parameters are the cheapest ones: the soak
// measures churn and consistency, not argon2, and 4 instances × 1,000 first uses at OWASP's cost
// would take minutes of CPU on their own.
import type { Kysely } from 'kysely'
import type { KeygateDatabase } from '../lib/db/schema.js'
import { argon2idHasher, type Argon2Options } from '../lib/keys/hasher.js'
import { generateKey } from '../lib/keys/key-text.js'

/** The cheapest argon2id: what the seeded keys are hashed with and what the instances create keys with. */
export const SOAK_ARGON2: Argon2Options = { memoryCost: 256, timeCost: 1, parallelism: 1 }

export interface SeedKey {
  name: string
  scopes: string[]
  /** Per minute, per hour; null leaves a window unlimited. */
  perMinute: number | null
  perHour: number | null
}

/** Inserts the keys (plan `enterprise`, limits of their own) and returns their texts, in order. */
export async function seedKeys (db: Kysely<KeygateDatabase>, keys: SeedKey[]): Promise<string[]> {
  const hasher = argon2idHasher(SOAK_ARGON2)
  const texts: string[] = []
  for (let start = 0; start < keys.length; start += 500) {
    const batch = keys.slice(start, start + 500)
    const generated = batch.map(() => generateKey('metlo'))
    const hashes = await Promise.all(generated.map(async (key) => await hasher.hash(key.text)))
    await db.insertInto('keygate_api_keys').values(generated.map((key, i) => {
      const seed = batch[i] as SeedKey
      return {
        id: key.keyId,
        lineage: key.keyId,
        prefix: key.prefix,
        name: seed.name,
        key_for: 'GENERIC' as const,
        hash: hashes[i] as string,
        created_at: new Date(),
        scopes: seed.scopes,
        plan: 'enterprise',
        rate_limit_per_minute: seed.perMinute,
        rate_limit_per_hour: seed.perHour
      }
    })).execute()
    texts.push(...generated.map((key) => key.text))
  }
  return texts
}
