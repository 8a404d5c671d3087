import type { KeygateApi } from './api/keygate-api.js'
import type { AuthenticatedKey } from './records/key-info.js'
import type { RouteApiKeyConfig } from './auth/route-config.js'
import type { KeyCache } from './cache/key-cache.js'
import type { ApiKeyDenial } from './auth/denial.js'
import type { KeygateVerifiers } from './auth/hook.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The programmatic API (what the management routes call), and `verify`/`verifyWith` for composing authentication. */
    keygate: KeygateApi & KeygateVerifiers
    /** The key cache instances share (Redis, or the `cache` option); null when there is none. */
    keygateCache: KeyCache | null
  }
  interface FastifyRequest {
    /** The key this request authenticated with, deeply frozen; `null` on public routes. */
    apiKey: AuthenticatedKey | null
    /** Why the plugin refused this request (the hook or `verify`); `null` when it did not. Never sent to the client. */
    apiKeyDenial: ApiKeyDenial | null
  }
  interface FastifyContextConfig {
    /** `false`: a public route. An object: what the key needs. Default: any valid key. */
    apiKey?: false | RouteApiKeyConfig
  }
}
