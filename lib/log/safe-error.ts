/** What a log line may show of an error raised by Redis, the database or a store. */
export interface SafeError {
  type: string
  message: string
  code?: string
  stack?: string
}

/**
 * Keeps an error's kind, message, code and stack and drops everything else. Clients attach what
 * they were sending to their errors (ioredis puts the refused command's arguments on it: a cache
 * entry, its fingerprint and hash digest), and a logger prints every property it finds.
 *
 * No prototype, and the kind again as a hidden `name`: pino's `err` serializer writes `type` from
 * the constructor's name when there is one, which for a plain object is "Object".
 */
export function safeError (error: unknown): SafeError {
  if (!(error instanceof Error)) return logged({ type: typeof error, message: 'a non-Error value was thrown' })
  const code = (error as { code?: unknown }).code
  return logged({
    type: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(error.stack === undefined ? {} : { stack: error.stack })
  })
}

function logged (fields: SafeError): SafeError {
  const safe: SafeError = Object.assign(Object.create(null) as SafeError, fields)
  Object.defineProperty(safe, 'name', { value: fields.type, enumerable: false })
  return safe
}
