/** Full access: the default for a new key. */
export const FULL_ACCESS = '*'

/** The Metalogue permissions, plus the two the management routes need. */
export const DEFAULT_SCOPES: readonly string[] = Object.freeze([
  'query', 'federate', 'connector:read', 'connector:write', 'audit:read', 'audit:export', 'keys:read', 'keys:write'
])

/** Always part of the vocabulary: the management and audit routes require them. */
export const KEYS_READ = 'keys:read'
export const KEYS_WRITE = 'keys:write'
export const AUDIT_READ = 'audit:read'
export const AUDIT_EXPORT = 'audit:export'

export const SCOPE_PATTERN = /^[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)*$/

/**
 * What a key may hold: `*`, any scope of the vocabulary, and `<namespace>:*` for each namespace
 * in it (`connector:*` covers `connector:read` and `connector:write`).
 */
export function grantableScopes (vocabulary: readonly string[]): string[] {
  const wildcards = new Set<string>()
  for (const scope of vocabulary) {
    for (let at = scope.indexOf(':'); at !== -1; at = scope.indexOf(':', at + 1)) wildcards.add(`${scope.slice(0, at)}:*`)
  }
  return [FULL_ACCESS, ...vocabulary, ...wildcards]
}

/** Whether held scopes grant `needed` (itself a scope, a `namespace:*` or `*`). */
export function covers (held: readonly string[], needed: string): boolean {
  for (const scope of held) {
    if (scope === FULL_ACCESS || scope === needed) return true
    // `a:*` covers `a:b`, `a:b:c` and `a:b:*`, never `a` itself.
    if (scope.endsWith(':*') && needed.startsWith(scope.slice(0, -1))) return true
  }
  return false
}

/** The first of `needed` that `held` does not grant, in the order the route lists them. */
export function firstMissing (held: readonly string[], needed: readonly string[]): string | undefined {
  for (const scope of needed) if (!covers(held, scope)) return scope
  return undefined
}
