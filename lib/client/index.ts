// fastify-keygate/client: a client of the key-management routes, on the platform's fetch.
// It imports nothing from the plugin, so it runs where fastify, kysely and pg are not installed.
export { KeygateClient } from './client.js'
export {
  BadRequestError,
  type ErrorBody,
  ForbiddenError,
  KeygateConfigError,
  KeygateConnectionError,
  KeygateError,
  NotFoundError,
  RateLimitedError,
  ServerError,
  ServiceUnavailableError,
  UnauthorizedError
} from './errors.js'
export { API_KEY_ENV, BASE_URL_ENV, DEFAULT_ROUTE_PREFIX, type KeygateClientOptions } from './options.js'
export type * from './types.js'
