import type { RouteOptions } from 'fastify'
import { InvalidRouteConfigError } from '../errors.js'

/** `config.apiKey` on a route: `false` makes it public; an object states what the key needs. */
export interface RouteApiKeyConfig {
  /**
   * Permissions the key must hold, all of them. Required in the type (a route that needs just a
   * valid key leaves `apiKey` out): an object of optional properties alone would let
   * `apiKey: true` or a misspelt `scope` compile.
   */
  scopes: readonly string[]
}

/**
 * Checks routes' `config.apiKey`. Routes registered after the plugin are checked as they are
 * registered (`onRoute`), so a mistake, such as a typo in a scope, fails startup. Fastify tells a
 * plugin nothing of the routes registered before it, so those are checked by the hook at their
 * first request, and a mistake there fails closed: the route answers 500 and the log says why.
 */
export class RouteConfigs {
  readonly #vocabulary: readonly string[]
  /** Settings already found valid: the hook checks each once. */
  readonly #valid = new WeakSet<object>()

  constructor (vocabulary: readonly string[]) {
    this.#vocabulary = vocabulary
  }

  /** For `onRoute`: throws `FST_KEYGATE_INVALID_ROUTE_CONFIG`. */
  readonly onRoute = (routeOptions: RouteOptions): void => {
    this.check(routeOptions.config?.apiKey, `${String(routeOptions.method)} ${routeOptions.url}`)
  }

  /** True when the hook may use this setting as it is: absent, `false`, or checked already. */
  isChecked (setting: unknown): boolean {
    return setting === undefined || setting === false || this.#valid.has(setting as object)
  }

  /** Throws `FST_KEYGATE_INVALID_ROUTE_CONFIG` for a bad setting; remembers a good one. */
  check (setting: unknown, where: string): void {
    if (setting === undefined || setting === false) return
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
      if (!this.#vocabulary.includes(scope)) {
        throw new InvalidRouteConfigError(where, `unknown scope "${scope}"; the vocabulary is ${this.#vocabulary.join(', ')}`)
      }
    }
    this.#valid.add(setting)
  }
}
