import type { Kysely } from 'kysely'
import type { ApiKeyRow, KeygateDatabase } from '../db/schema.js'
import { findKeysToAuthenticate } from '../repositories/api-key.repository.js'

// Ids per query: a burst of thousands goes in several reads.
const MAX_IDS = 500

interface Waiting {
  resolve: (row: ApiKeyRow | undefined) => void
  reject: (error: unknown) => void
}

/**
 * Reads live keys by id for the authentication path, many in one query: the reads asked for in
 * one turn of the event loop share `where id in (...)`. A request that must read its key waits
 * for a database round trip anyway; one turn more costs it nothing, and a thousand keys whose
 * freshness ended together (after a quiet spell, say) cost a few queries instead of a thousand.
 */
export class KeyReader {
  readonly #db: Kysely<KeygateDatabase>
  #waiting = new Map<string, Waiting[]>()

  constructor (db: Kysely<KeygateDatabase>) {
    this.#db = db
  }

  /** The live key with this id, hash included, or undefined. */
  read (keyId: string): Promise<ApiKeyRow | undefined> {
    return new Promise((resolve, reject) => {
      // setImmediate runs once the event loop has read every request that was ready.
      if (this.#waiting.size === 0) setImmediate(this.#flush)
      const waiting = this.#waiting.get(keyId)
      if (waiting === undefined) this.#waiting.set(keyId, [{ resolve, reject }])
      else waiting.push({ resolve, reject })
    })
  }

  readonly #flush = (): void => {
    const ids = [...this.#waiting.keys()]
    const waiting = this.#waiting
    this.#waiting = new Map()
    for (let start = 0; start < ids.length; start += MAX_IDS) void this.#readBatch(ids.slice(start, start + MAX_IDS), waiting)
  }

  async #readBatch (ids: string[], waiting: Map<string, Waiting[]>): Promise<void> {
    let rows: ApiKeyRow[]
    try {
      rows = await findKeysToAuthenticate(this.#db, ids)
    } catch (error) {
      for (const id of ids) for (const { reject } of waiting.get(id) ?? []) reject(error)
      return
    }
    const found = new Map(rows.map((row) => [row.id, row]))
    for (const id of ids) for (const { resolve } of waiting.get(id) ?? []) resolve(found.get(id))
  }
}
