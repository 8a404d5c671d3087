import { type Algorithm, hash, verify } from '@node-rs/argon2'

/** argon2id cost parameters. The defaults are OWASP's minimum recommendation. */
export interface Argon2Options {
  /** Memory in KiB. Default 19456 (19 MiB). */
  memoryCost: number
  /** Iterations. Default 2. */
  timeCost: number
  /** Lanes. Default 1. */
  parallelism: number
}

export const OWASP_ARGON2: Readonly<Argon2Options> = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 })

/** Stores key text as argon2id and checks presented text against it. */
export interface KeyHasher {
  hash (keyText: string): Promise<string>
  verify (storedHash: string, keyText: string): Promise<boolean>
}

// The package's Algorithm is a const enum, which isolated modules cannot read; 2 is Argon2id.
const ARGON2ID = 2 as Algorithm

export function argon2idHasher (options: Argon2Options): KeyHasher {
  const params = { algorithm: ARGON2ID, ...options }
  return {
    hash: (keyText) => hash(keyText, params),
    // The parameters travel inside the stored hash, so old keys keep verifying after a change.
    verify: async (storedHash, keyText) => {
      try {
        return await verify(storedHash, keyText)
      } catch {
        return false
      }
    }
  }
}
