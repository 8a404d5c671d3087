import type { CachedKey } from '../records/cached-key.js'

export type { CachedKey }

/**
 * Why a key is evicted: `deleted` (refused from now on, without a read) or `changed` (updated, or
 * rotated away with a grace period: re-read from the database at its next request).
 */
export type Invalidation = 'deleted' | 'changed'

/**
 * The cache that instances share, behind each process's own (which the plugin keeps itself).
 * Implementations never throw: a cache that cannot answer is a miss, a write that fails is skipped.
 * What `get` answers is checked again by the plugin (freshness capped, deleted keys refused).
 */
export interface KeyCache {
  get (keyId: string): Promise<CachedKey | undefined>
  set (keyId: string, entry: CachedKey): Promise<void>
  /**
   * Several at once (what a background renewal stores). Optional: without it, `set` for each.
   * Never throws either.
   */
  setMany? (entries: ReadonlyArray<readonly [keyId: string, entry: CachedKey]>): Promise<void>
  /**
   * Forgets a deleted or changed key here and tells every instance (`onInvalidate` listeners
   * everywhere, with the same reason). Default reason `deleted`.
   */
  delete (keyId: string, reason?: Invalidation): Promise<void>
  /**
   * Registers a listener for evictions: `keyId` was deleted or changed (here or by another
   * instance), or (null) everything must be dropped because messages may have been missed.
   */
  onInvalidate (listener: (keyId: string | null, reason: Invalidation) => void): void
  /** Releases what the cache opened (a subscriber connection). */
  close (): Promise<void>
}
