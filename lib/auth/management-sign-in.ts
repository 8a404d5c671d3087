import type { FastifyRequest } from 'fastify'
import { isValidName } from '../api/create-key.schema.js'
import { InternalError } from '../errors.js'

/** A person signed in through the host (SSO), acting on the management routes. */
export interface SignedInUser {
  /** The tenant whose keys they manage. */
  tenant: string
  /** The host's user id: keys they create are theirs unless `owner` says otherwise. */
  user: string
  /** What they may do: `keys:read`, `keys:write`, `audit:read`, ... or `*`. */
  scopes: readonly string[]
}

/**
 * The host's sign-in for the management routes (option `authenticateManagement`): the person a
 * request is from, or null to fall back to an API key.
 */
export type AuthenticateManagement = (request: FastifyRequest) => SignedInUser | null | Promise<SignedInUser | null>

export const kSignedInUser = Symbol('keygate.signedInUser')

/** The person a management request is from; null when it came with an API key. */
export function signedInUserOf (request: FastifyRequest): SignedInUser | null {
  return (request as unknown as Record<symbol, SignedInUser | null>)[kSignedInUser] ?? null
}

export function setSignedInUser (request: FastifyRequest, user: SignedInUser): void {
  (request as unknown as Record<symbol, SignedInUser>)[kSignedInUser] = user
}

/**
 * What the host's function answered, checked and frozen: a wrong shape is the host's bug, and
 * acting on it could act with more than was meant, so it is a 500 (with the reason in the log).
 */
export function checkedSignedInUser (value: unknown): SignedInUser {
  const user = value as Partial<SignedInUser> | null
  if (typeof user !== 'object' || user === null || !isValidName(user.tenant) || !isValidName(user.user) ||
    !Array.isArray(user.scopes) || !user.scopes.every((scope) => typeof scope === 'string')) {
    throw new InternalError({ cause: new TypeError('authenticateManagement must answer { tenant, user, scopes: string[] } or null') })
  }
  return Object.freeze({ tenant: user.tenant, user: user.user, scopes: Object.freeze([...user.scopes]) })
}
