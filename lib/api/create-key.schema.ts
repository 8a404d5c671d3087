import { Ajv, type ErrorObject } from 'ajv'
import type { FastifyError } from 'fastify'
import { CREDITS_INTERVALS, KEY_TYPES } from '../db/schema.js'
import {
  CreditsInvalidError,
  ExpiryInvalidError,
  InvalidRequestError,
  KeyForInvalidError,
  KeyNameInvalidError,
  KeyNameRequiredError,
  KeyPrefixInvalidError,
  OwnerInvalidError,
  PlanInvalidError,
  RateLimitInvalidError,
  ScopeInvalidError
} from '../errors.js'

export const MAX_NAME_LENGTH = 128

// No C0 or C1 control characters (newlines, escapes, NUL): names end up in logs and terminals.
const NAME_PATTERN = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$'
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/
const CONTROL_CHARACTERS = new RegExp(CONTROL_CHARACTER.source, 'g')

/** A name create would accept: 1 to 128 characters (code points, as Ajv counts), no control characters. */
export function isValidName (name: unknown): name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 2 * MAX_NAME_LENGTH) return false
  return !CONTROL_CHARACTER.test(name) && [...name].length <= MAX_NAME_LENGTH
}

/** A name fit to echo in a message: control characters replaced, cut to the longest valid length. */
export function shownName (name: string): string {
  const cut = [...name.slice(0, 2 * MAX_NAME_LENGTH)].slice(0, MAX_NAME_LENGTH).join('')
  return cut.replace(CONTROL_CHARACTERS, '\ufffd') + (cut.length < name.length ? '…' : '')
}

/** What a create may choose from: the configured prefixes, scopes and plans. */
export interface CreateKeyChoices {
  prefixes: readonly string[]
  /** `*`, the vocabulary and its `namespace:*` wildcards. */
  grantableScopes: readonly string[]
  plans: readonly string[]
}

const CREATE_PROPERTIES = 'name, owner, scopes, plan, rateLimit, expiresAt, credits, keyFor, prefix, expiresInDays'
const UPDATE_PROPERTIES = 'name, owner, scopes, plan, rateLimit, expiresAt, credits'

const positiveInteger = { type: 'integer', minimum: 1, maximum: 2_147_483_647 } as const
// A date and a time with its zone, as JSON dates are written; Date.parse then rules out 2027-02-31.
const ISO_DATE_TIME = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$'

const DATE_TIME_PARTS = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/

/**
 * The instant of a date-time the schema's pattern let through, or undefined when it names a
 * moment that does not exist (2027-02-31, 24:00): Date would roll those over into another day.
 */
export function parseDateTime (text: string): Date | undefined {
  const [, year, month, day, hour, minute, second = 0] = (DATE_TIME_PARTS.exec(text) ?? []).map((part) => part === undefined ? undefined : Number(part))
  if (year === undefined || month === undefined || day === undefined || hour === undefined || minute === undefined) return undefined
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return undefined
  const date = new Date(text)
  return Number.isNaN(date.getTime()) ? undefined : date
}

/** The fields create and update share, validated the same way by both. */
function keyFields ({ grantableScopes, plans }: CreateKeyChoices) {
  return {
    name: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN },
    owner: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN },
    scopes: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...grantableScopes] } },
    plan: { type: 'string', enum: [...plans] },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { perMinute: positiveInteger, perHour: positiveInteger }
    },
    expiresAt: { type: 'string', maxLength: 40, pattern: ISO_DATE_TIME },
    credits: {
      type: 'object',
      additionalProperties: false,
      required: ['remaining'],
      properties: {
        remaining: { type: 'integer', minimum: 0, maximum: 2_147_483_647 },
        refill: {
          type: 'object',
          additionalProperties: false,
          required: ['amount', 'interval'],
          properties: { amount: positiveInteger, interval: { type: 'string', enum: [...CREDITS_INTERVALS] } }
        }
      }
    }
  } as const
}

/** The body of a create, for the route and for `keygate.createKey` alike. */
export function createKeyBodySchema (choices: CreateKeyChoices) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      ...keyFields(choices),
      keyFor: { type: 'string', enum: [...KEY_TYPES], default: 'GENERIC' },
      prefix: { type: 'string', enum: [...choices.prefixes] },
      expiresInDays: positiveInteger
    }
  } as const
}

/** The body of an update: any of the fields, at least one; `rateLimit: null`, `expiresAt: null` and `credits: null` clear them. */
export function updateKeyBodySchema (choices: CreateKeyChoices) {
  const fields = keyFields(choices)
  return {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      ...fields,
      owner: { ...fields.owner, type: ['string', 'null'] },
      rateLimit: { ...fields.rateLimit, type: ['object', 'null'] },
      expiresAt: { ...fields.expiresAt, type: ['string', 'null'] },
      credits: { ...fields.credits, type: ['object', 'null'] }
    }
  } as const
}

/** The body of a rotation. */
export function rotateKeyBodySchema (maxGracePeriodSeconds: number) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: maxGracePeriodSeconds } }
  } as const
}

/**
 * Strict validation: unlike Fastify's default Ajv setup, nothing is coerced and unknown
 * properties are refused rather than silently dropped.
 */
export function createStrictAjv (): Ajv {
  return new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: true })
}

// Scope names are echoed back in the 400; a longer one is cut so the message stays readable.
const MAX_ECHOED_SCOPE = 64

/** Turns the first validation failure into the coded error the contract names for it. */
export function createKeyValidationError (body: unknown, errors: readonly ErrorObject[], choices: CreateKeyChoices, allowed = CREATE_PROPERTIES): FastifyError {
  // No body at all is a create without a name.
  if (body === undefined || body === null) return new KeyNameRequiredError()
  const [first] = errors
  if (first === undefined) return new InvalidRequestError('Request body is invalid.')
  const path = first.instancePath.split('/').slice(1)
  // A required property of the body names the field; one inside a field (credits.remaining) names that field.
  const field = first.keyword === 'required' && path.length === 0 ? String(first.params.missingProperty) : path[0]
  switch (field) {
    case 'name':
      return first.keyword === 'required' || first.keyword === 'minLength' ? new KeyNameRequiredError() : new KeyNameInvalidError()
    case 'keyFor':
      return new KeyForInvalidError()
    case 'prefix':
      return new KeyPrefixInvalidError(choices.prefixes.join(', '))
    case 'plan':
      return new PlanInvalidError(choices.plans.join(', '))
    case 'rateLimit':
      return new RateLimitInvalidError()
    case 'scopes':
      return scopesError(body, path[1], first.keyword, choices)
    case 'expiresAt':
      return new ExpiryInvalidError(`expiresAt must be an ISO 8601 date-time with a time zone, like 2027-01-31T00:00:00Z${allowed === UPDATE_PROPERTIES ? ', or null' : ''}.`)
    case 'credits':
      return new CreditsInvalidError(allowed === UPDATE_PROPERTIES ? ', or null to remove them' : '')
    case 'expiresInDays':
      return new ExpiryInvalidError('expiresInDays must be a whole number of days, 1 or more.')
    case 'owner':
      return new OwnerInvalidError(allowed === UPDATE_PROPERTIES ? ', or null for a service account' : '')
  }
  if (first.keyword === 'additionalProperties') {
    return new InvalidRequestError(`Unknown property in request body. Allowed: ${allowed}.`)
  }
  if (first.keyword === 'minProperties') return new InvalidRequestError(`Nothing to update. Give any of: ${allowed}.`)
  return new InvalidRequestError('Request body must be a JSON object.')
}

/** The same for an update: no body is a 400 of its own, and the allowed fields differ. */
export function updateKeyValidationError (body: unknown, errors: readonly ErrorObject[], choices: CreateKeyChoices): FastifyError {
  if (body === undefined || body === null) return new InvalidRequestError(`Nothing to update. Give any of: ${UPDATE_PROPERTIES}.`)
  return createKeyValidationError(body, errors, choices, UPDATE_PROPERTIES)
}

function scopesError (body: unknown, index: string | undefined, keyword: string, choices: CreateKeyChoices): FastifyError {
  if (index === undefined) {
    const problem = keyword === 'uniqueItems' ? 'must not repeat a scope' : 'must be a non-empty array of scope names'
    return new InvalidRequestError(`scopes ${problem}.`)
  }
  const scope = (body as { scopes: unknown[] }).scopes[Number(index)]
  const shown = typeof scope === 'string' ? scope.slice(0, MAX_ECHOED_SCOPE) : JSON.stringify(scope)
  return new ScopeInvalidError(shown, choices.grantableScopes.join(', '))
}

