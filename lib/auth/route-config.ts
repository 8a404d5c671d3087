import type { RouteOptions } from 'fastify'
import { InvalidRouteConfigError } from '../errors.js'

/** `config.apiKey` on a route: `false` makes it public; an object states what the key needs. */
export interface RouteApiKeyConfig {
  /** Permissions the key must hold, all of them. */
  scopes?: readonly string[]
}

/**
 * Checks a route's `config.apiKey` when the route is registered, so a mistake (a typo in a
 * scope) fails at startup rather than at the first request.
 */
export function validateRouteConfig (routeOptions: RouteOptions, vocabulary: readonly string[]): void {
  const setting: unknown = routeOptions.config?.apiKey
  if (setting === undefined || setting === false) return
  const where = `${String(routeOptions.method)} ${routeOptions.url}`
  if (typeof setting !== 'object' || setting === null || Array.isArray(setting)) {
    throw new InvalidRouteConfigError(where, 'expected false or { scopes: [...] }')
  }
  for (const property of Object.keys(setting)) {
    if (property !== 'scopes') throw new InvalidRouteConfigError(where, `unknown property "${property}"`)
  }
  const { scopes } = setting as RouteApiKeyConfig
  if (scopes !== undefined &&
    (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string' && scope !== ''))) {
    throw new InvalidRouteConfigError(where, 'scopes must be an array of non-empty strings')
  }
  for (const scope of scopes ?? []) {
    if (!vocabulary.includes(scope)) {
      throw new InvalidRouteConfigError(where, `unknown scope "${scope}"; the vocabulary is ${vocabulary.join(', ')}`)
    }
  }
}
