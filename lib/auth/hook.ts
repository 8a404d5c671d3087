import type { FastifyReply, FastifyRequest } from 'fastify'
import { isKeygateError, UnauthorizedError } from '../errors.js'
import { sendError } from '../http/send-error.js'
import type { Authenticate } from './authenticator.js'
import { keyTextFromHeader } from './authorization-header.js'

/**
 * The onRequest hook for the whole host app: every route needs a valid key unless its
 * `config.apiKey` is `false`. Unknown URLs need one too, so the route table stays private.
 */
export function createAuthHook (authenticate: Authenticate) {
  return async function keygateAuth (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (request.routeOptions.config.apiKey === false) return
    const keyText = keyTextFromHeader(request.headers.authorization)
    try {
      const key = keyText === null ? null : await authenticate(keyText)
      if (key === null) return sendError(reply, new UnauthorizedError())
      request.apiKey = key
    } catch (error) {
      if (!isKeygateError(error)) throw error
      // The cause is the database's own error: no key text is in it.
      request.log.error({ err: error.cause }, error.message)
      return sendError(reply, error)
    }
  }
}
