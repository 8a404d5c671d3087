/** What the audit log records: every change to a key, and every management request refused for a missing permission. */
export const AUDIT_ACTIONS = ['key.created', 'key.updated', 'key.rotated', 'key.deleted', 'key.expired', 'access.denied'] as const
export type AuditAction = typeof AUDIT_ACTIONS[number]

/**
 * Who acted: a key (`identifier`), a signed-in person (`user`, the host's id for them), or the
 * plugin or host code itself (`system`: `code` for a programmatic call without an actor,
 * `expiry` for the expiry job).
 */
export type AuditActor = { identifier: string } | { user: string } | { system: string }

/** The key acted on; a rotation also names the text it replaced (`from`). */
export interface AuditTarget {
  identifier: string | null
  name: string | null
  from?: string
}

/** One event as the routes and `listAuditEvents` answer it. Nothing secret is ever in it. */
export interface AuditEvent {
  /** Opaque, increasing; the order of events. */
  id: string
  /** ISO 8601. */
  at: string
  action: AuditAction
  actor: AuditActor
  target: AuditTarget | null
  ip: string | null
  requestId: string | null
}

/** Who asks for a change, for its event: what a route knows of the request, or what code says. */
export interface AuditContext {
  /** Default `{ system: 'code' }`. */
  actor?: AuditActor
  ip?: string | null
  requestId?: string | null
}

/** The actor of a programmatic call that names none: honest about being code, not a person or key. */
export const CODE_ACTOR: AuditActor = Object.freeze({ system: 'code' })
export const EXPIRY_ACTOR: AuditActor = Object.freeze({ system: 'expiry' })
