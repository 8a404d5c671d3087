import type { KeygateApi } from './api/keygate-api.js'
import type { AuthenticatedKey } from './auth/authenticator.js'
import type { RouteApiKeyConfig } from './auth/route-config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The programmatic API: what the management routes call. */
    keygate: KeygateApi
  }
  interface FastifyRequest {
    /** The key this request authenticated with; `null` on public routes. */
    apiKey: AuthenticatedKey | null
  }
  interface FastifyContextConfig {
    /** `false`: a public route. An object: what the key needs. Default: any valid key. */
    apiKey?: false | RouteApiKeyConfig
  }
}
