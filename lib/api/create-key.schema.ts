import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { KEY_TYPES } from '../db/schema.js'
import type { FastifyError } from 'fastify'
import {
  InvalidRequestError,
  KeyForInvalidError,
  KeyNameInvalidError,
  KeyNameRequiredError,
  KeyPrefixInvalidError
} from '../errors.js'

export const MAX_NAME_LENGTH = 128

// No C0 or C1 control characters (newlines, escapes, NUL): names end up in logs and terminals.
const NAME_PATTERN = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$'

/** The body of a create, for the route and for `keygate.createKey` alike. */
export function createKeyBodySchema (prefixes: readonly string[]) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN },
      keyFor: { type: 'string', enum: [...KEY_TYPES], default: 'GENERIC' },
      prefix: { type: 'string', enum: [...prefixes] }
    }
  } as const
}

/**
 * Strict validation: unlike Fastify's default Ajv setup, nothing is coerced and unknown
 * properties are refused rather than silently dropped.
 */
export function createStrictAjv (): Ajv {
  return new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: true })
}

/** Turns the first validation failure into the coded error the contract names for it. */
export function createKeyValidationError (body: unknown, errors: readonly ErrorObject[], prefixes: readonly string[]): FastifyError {
  // No body at all is a create without a name.
  if (body === undefined || body === null) return new KeyNameRequiredError()
  const [first] = errors
  if (first === undefined) return new InvalidRequestError('Request body is invalid.')
  const field = first.keyword === 'required' ? String(first.params.missingProperty) : first.instancePath.slice(1)
  switch (field) {
    case 'name':
      return first.keyword === 'required' || first.keyword === 'minLength' ? new KeyNameRequiredError() : new KeyNameInvalidError()
    case 'keyFor':
      return new KeyForInvalidError()
    case 'prefix':
      return new KeyPrefixInvalidError(prefixes.join(', '))
  }
  if (first.keyword === 'additionalProperties') {
    return new InvalidRequestError('Unknown property in request body. Allowed: name, keyFor, prefix.')
  }
  return new InvalidRequestError('Request body must be a JSON object.')
}

export type CreateKeyValidator = ValidateFunction
