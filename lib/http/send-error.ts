import type { FastifyError, FastifyReply } from 'fastify'
import { errorBody, statusOf } from '../errors.js'

/** Replies with the error contract's body and the headers its status calls for. */
export function sendError (reply: FastifyReply, error: FastifyError): FastifyReply {
  const status = statusOf(error)
  if (status === 401) reply.header('www-authenticate', 'Bearer')
  return reply.code(status).send(errorBody(error))
}
