// Sign-in for the management routes with OpenID Connect: a person sends the ID token their
// identity provider issued as `Authorization: Bearer <ID token>`; it is verified against the
// provider's published keys (JWKS) with `jose`, and its claims say who they are, in which tenant,
// with which permissions. A token that is missing, forged, expired or for another audience is no
// sign-in, and the request goes the API-key way (so it gets 401 unless it carries a key).
//
// The claims used here, `org` for the tenant and `roles` for the permissions, are this example's
// choice: map whatever your provider puts in its tokens. SAML works the same way through your SAML
// library: turn its verified assertion into { tenant, user, scopes }.
import type { FastifyRequest } from 'fastify'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import type { AuthenticateManagement, SignedInUser } from '../lib/index.js'

export interface OidcSignInOptions {
  /** The provider's issuer URL, as its tokens name it (`iss`). */
  issuer: string
  /** This application's client id at the provider (`aud`). */
  audience: string
  /** Where the provider publishes its signing keys (its discovery document's `jwks_uri`). */
  jwksUrl: string
}

// What each role may do on the management routes.
const ROLE_SCOPES: Record<string, readonly string[]> = {
  'keys-admin': ['*'],
  'keys-viewer': ['keys:read']
}

// API keys never hold a dot; a JWT always holds two.
const BEARER_JWT = /^Bearer\s+([\w-]+\.[\w-]+\.[\w-]+)$/i

export function oidcSignIn ({ issuer, audience, jwksUrl }: OidcSignInOptions): AuthenticateManagement {
  // Fetched once and cached by jose; fetched again when a token names a key it has not seen.
  const keys = createRemoteJWKSet(new URL(jwksUrl))
  return async (request: FastifyRequest): Promise<SignedInUser | null> => {
    const token = BEARER_JWT.exec(request.headers.authorization ?? '')?.[1]
    if (token === undefined) return null
    let claims
    try {
      ({ payload: claims } = await jwtVerify(token, keys, { issuer, audience, algorithms: ['RS256', 'ES256'] }))
    } catch {
      return null
    }
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((role): role is string => typeof role === 'string') : []
    const scopes = [...new Set(roles.flatMap((role) => ROLE_SCOPES[role] ?? []))]
    if (typeof claims.sub !== 'string' || typeof claims.org !== 'string' || scopes.length === 0) return null
    return { tenant: claims.org, user: claims.sub, scopes }
  }
}
