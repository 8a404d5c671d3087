import { channel } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'

/** A route's `config.apiKey`, noted as the route was registered. */
export interface NotedRoute {
  setting: unknown
  /** `METHOD url`, for the error message. */
  where: string
}

const noted = new WeakMap<object, NotedRoute[]>()

// Fastify tells a plugin nothing of the routes registered before it, but it does tell the
// diagnostics channel below of every instance it creates, before any route is added (tracing
// packages use it the same way). From the moment this module is loaded, each new instance notes
// the `config.apiKey` of every route it is given, so the plugin can check them all at startup,
// wherever and whenever they were registered.
channel('fastify.initialization').subscribe((message) => {
  const { fastify } = message as { fastify: FastifyInstance }
  const routes: NotedRoute[] = []
  noted.set(fastify, routes)
  fastify.addHook('onRoute', (routeOptions) => {
    const setting: unknown = routeOptions.config?.apiKey
    if (setting !== undefined && setting !== false) routes.push({ setting, where: `${String(routeOptions.method)} ${routeOptions.url}` })
  })
})

/**
 * The routes noted for the app this instance belongs to (child instances inherit from their
 * parent's object), or undefined when the app was created before this module was loaded.
 */
export function notedRoutes (instance: FastifyInstance): readonly NotedRoute[] | undefined {
  for (let at: object | null = instance; at !== null; at = Object.getPrototypeOf(at)) {
    const routes = noted.get(at)
    if (routes !== undefined) return routes
  }
  return undefined
}
