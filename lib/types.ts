import type { KeygateApi } from './api/keygate-api.js'
import type { AuthenticatedKey } from './records/key-info.js'
import type { RouteApiKeyConfig } from './auth/route-config.js'
import type { KeyCache } from './cache/key-cache.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The programmatic API: what the management routes call. */
    keygate: KeygateApi
    /** The key cache instances share (Redis, or the `cache` option); null when there is none. */
    keygateCache: KeyCache | null
  }
  interface FastifyRequest {
    /** The key this request authenticated with, deeply frozen; `null` on public routes. */
    apiKey: AuthenticatedKey | null
  }
  interface FastifyContextConfig {
    /** `false`: a public route. An object: what the key needs. Default: any valid key. */
    apiKey?: false | RouteApiKeyConfig
  }
}
