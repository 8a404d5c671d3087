import type { ToKeyInfo } from '../api/key-info.js'
import type { CachedKey } from '../cache/key-cache.js'
import type { ApiKeyRow } from '../db/schema.js'
import { type Fingerprint, retainable } from './fingerprint.js'

/** Builds the cache entry for a row just read, keeping the fingerprint of the text verified. */
export type EntryFor = (row: ApiKeyRow, keyFingerprint: string, at: number) => CachedKey

export interface EntryForOptions {
  toKeyInfo: ToKeyInfo
  fingerprint: Fingerprint
  /** How long an entry is trusted without the database, in ms, from `at`: when its row was read. */
  cacheTtl: number
}

export function createEntryFor ({ toKeyInfo, fingerprint, cacheTtl }: EntryForOptions): EntryFor {
  return (row, keyFingerprint, at) => ({
    key: { id: row.id, ...toKeyInfo(row) },
    fingerprint: retainable(keyFingerprint),
    hashDigest: retainable(fingerprint(row.hash)),
    freshUntil: at + cacheTtl
  })
}
