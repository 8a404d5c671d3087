/**
 * A value now or later. The in-process cache and counters answer synchronously; Redis answers
 * later. Keeping the in-process path free of promises keeps the per-request cost down.
 */
export type MaybePromise<T> = T | Promise<T>

export function isPromise<T> (value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function'
}
