import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify'

/** The name of the API-key scheme in `components.securitySchemes`. */
export const SECURITY_SCHEME_NAME = 'apiKey'

/**
 * The API-key scheme. `apiKey` in the `Authorization` header rather than `http`/`bearer`: the
 * header takes the key as it is (the Metlo form) or after `Bearer ` (the Metalogue form), and a
 * documentation UI sends exactly what is pasted into it, so both forms work from there.
 */
export const SECURITY_SCHEME = Object.freeze({
  type: 'apiKey',
  in: 'header',
  name: 'Authorization',
  description: 'An API key: `Authorization: <key>` or `Authorization: Bearer <key>`. ' +
    'A route lists the scopes a key must hold; a key with `*` holds them all.'
})

/** A security requirement: the scheme and the scopes a key must hold; `[]` for a public route. */
export type SecurityRequirement = Array<Record<string, string[]>>

/** The parts of an OpenAPI 3 or Swagger 2 document being built that the plugin adds to. */
export interface DocumentObject {
  components?: { securitySchemes?: Record<string, unknown> }
  securityDefinitions?: Record<string, unknown>
  security?: SecurityRequirement
}

/**
 * What @fastify/swagger hands a route's `config.swaggerTransform`, typed loosely enough that a
 * transform taking it fits @fastify/swagger's own type (the plugin does not depend on it).
 */
export interface SwaggerTransformInput {
  schema?: object
  url: string
  route: { config?: object }
  openapiObject?: object
  swaggerObject?: object
}

/** The requirement a route's `config.apiKey` (already checked) states. */
export function securityOf (setting: unknown): SecurityRequirement {
  if (setting === false) return []
  const scopes = (setting as { scopes?: readonly string[] } | undefined)?.scopes ?? []
  return [{ [SECURITY_SCHEME_NAME]: [...scopes] }]
}

/**
 * Adds the scheme to a document being built, unless the host declared one of that name, and
 * makes a key the document's default requirement, unless the host set one: a route without
 * `config.apiKey: false` needs a key wherever it was registered.
 */
export function addSecurityScheme (input: Pick<SwaggerTransformInput, 'openapiObject' | 'swaggerObject'>): void {
  const { openapiObject, swaggerObject } = input as { openapiObject?: DocumentObject, swaggerObject?: DocumentObject }
  if (openapiObject !== undefined) {
    openapiObject.components ??= {}
    openapiObject.components.securitySchemes ??= {}
    openapiObject.components.securitySchemes[SECURITY_SCHEME_NAME] ??= { ...SECURITY_SCHEME }
    openapiObject.security ??= securityOf(undefined)
  } else if (swaggerObject !== undefined) {
    const { description: _description, ...scheme } = SECURITY_SCHEME
    swaggerObject.securityDefinitions ??= {}
    swaggerObject.securityDefinitions[SECURITY_SCHEME_NAME] ??= { ...scheme }
    swaggerObject.security ??= securityOf(undefined)
  }
}

/**
 * `onRoute`, while @fastify/swagger is registered: the route's schema states what its
 * `config.apiKey` asks for, as `security`. A `security` the route sets itself stays. The schema
 * object is replaced, not changed: a host may share one between routes.
 */
export function documentRouteSecurity (routeOptions: RouteOptions): void {
  const schema = routeOptions.schema as (FastifySchema & { security?: unknown }) | undefined
  if (schema?.security !== undefined) return
  routeOptions.schema = { ...schema, security: securityOf(routeOptions.config?.apiKey) } as FastifySchema
}

/**
 * Whether the plugin documents its routes and the app's: when @fastify/swagger was registered
 * first (it hears of routes only from then on) and the management routes are on (they add the
 * scheme to the document). Swagger registered after the plugin is logged once, at startup.
 */
export function documentsOpenapi (fastify: FastifyInstance, routes: boolean): boolean {
  if (fastify.hasDecorator('swagger')) return routes
  fastify.addHook('onReady', async () => {
    if (fastify.hasDecorator('swagger')) {
      fastify.log.warn('keygate: @fastify/swagger was registered after fastify-keygate; register it before, so the document shows the API-key scheme, each route\'s scopes and the key routes')
    }
  })
  return false
}
