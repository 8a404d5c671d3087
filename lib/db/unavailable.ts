import { ServiceUnavailableError, isKeygateError } from '../errors.js'

// Node socket errors and PostgreSQL's SQLSTATE classes for a server that is gone or refusing work:
// 08 connection exception, 53 insufficient resources, 57P0x shutdown/cannot connect now.
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'PGlite is closed',
  'driver has already been destroyed'
]

/** True when an error says the database cannot be reached, as opposed to a bug or a bad query. */
export function isUnavailableError (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') {
    if (SOCKET_CODES.has(code) || code.startsWith('08') || code.startsWith('53') || code.startsWith('57P0')) return true
  }
  if (error instanceof AggregateError && error.errors.some(isUnavailableError)) return true
  return UNAVAILABLE_MESSAGES.some((text) => error.message.includes(text))
}

/** Runs a database operation; an unreachable database becomes the contract's 503, nothing else changes. */
export async function whileAvailable<T> (operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    if (!isKeygateError(error) && isUnavailableError(error)) throw new ServiceUnavailableError({ cause: error })
    throw error
  }
}
