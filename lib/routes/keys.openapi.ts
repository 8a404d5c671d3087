import { AUDIT_ACTIONS } from '../audit/audit-event.js'
import { AUDIT_FORMATS, CONTENT_TYPES } from '../audit/audit-export.js'
import { MAX_NAME_LENGTH } from '../api/create-key.schema.js'
import { DEFAULT_AUDIT_LIMIT, DEFAULT_USAGE_DAYS, MAX_AUDIT_LIMIT, MAX_USAGE_DAYS } from '../api/keygate-api.js'
import { addSecurityScheme, securityOf, type SwaggerTransformInput } from '../openapi/security.js'

// What the OpenAPI document says of the management routes, beyond the schemas Fastify validates
// and serializes with: summaries, parameters and every answer a route can give. Only
// @fastify/swagger reads this (through `config.swaggerTransform`), so nothing here changes a
// request or a response body.

// @fastify/swagger's key for an answer's description (a `description` would repeat in its schema).
const DESCRIPTION = 'x-response-description'

export const KEYS_TAG = 'API keys'
export const AUDIT_TAG = 'Audit log'

/** An error answer: the contract's envelope, with the codes this answer may carry. */
function errorResponse (description: string, codes: readonly string[], headers?: Record<string, unknown>) {
  const retryAfter = codes.includes('rate_limit_exceeded') || codes.includes('credits_exhausted')
  return {
    [DESCRIPTION]: description,
    type: 'object',
    required: ['error', 'message'],
    properties: {
      error: { type: 'string', enum: [...codes] },
      message: { type: 'string' },
      ...(retryAfter ? { retry_after: { type: 'integer', minimum: 1, description: 'Seconds to wait; also the Retry-After header.' } } : {})
    },
    ...(headers === undefined ? {} : { headers })
  }
}

const RETRY_AFTER_HEADER = { type: 'integer', description: 'Seconds to wait before trying again.' }

// The hook's answers, on every management route.
const UNAUTHORIZED = errorResponse(
  'No key, or one that is malformed, unknown, deleted, expired or rotated away: `Client unauthorized`.',
  ['unauthorized'],
  { 'WWW-Authenticate': { type: 'string', description: '`Bearer`' } }
)
const TOO_MANY = errorResponse(
  'Over a rate limit of the key (`Rate limit exceeded. Retry after <n> seconds.`), or out of credits.',
  ['rate_limit_exceeded', 'credits_exhausted'],
  { 'Retry-After': RETRY_AFTER_HEADER }
)
const INTERNAL = errorResponse('An unexpected failure; the detail is logged, never sent: `Internal error.`', ['internal_error'])
const UNAVAILABLE = errorResponse(
  'The key store or the rate-limit store is unavailable, or too many keys are being verified at once.',
  ['service_unavailable'],
  { 'Retry-After': RETRY_AFTER_HEADER }
)

function forbidden (codes: readonly string[] = ['insufficient_scope']) {
  return errorResponse(
    'The key lacks a permission (`API key lacks required permission: <scope>`)' +
      (codes.length > 1 ? ', or would grant more than it holds itself.' : '.'),
    codes,
    { 'WWW-Authenticate': { type: 'string', description: 'With `insufficient_scope`: `Bearer error="insufficient_scope", scope="<scope>"`' } }
  )
}

const BEYOND_CALLER = ['insufficient_scope', 'limit_exceeds_caller', 'expiry_exceeds_caller', 'credits_exceed_caller']
const NOT_FOUND = errorResponse(
  'No live key of that name (`Did not find any matching keys for <name>`), or no such route under the prefix.',
  ['key_not_found', 'not_found']
)
// Fastify's own refusals of a body, in the same envelope.
const BODY_ERRORS = {
  413: errorResponse('The body is larger than the server accepts.', ['payload_too_large']),
  415: errorResponse('The body is not JSON.', ['unsupported_media_type'])
}

/** Every answer but 200 that any management route can give, plus those of the route. */
function errors (own: Record<number, unknown>) {
  return { 401: UNAUTHORIZED, 403: forbidden(), 429: TOO_MANY, 500: INTERNAL, 503: UNAVAILABLE, ...own }
}

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: {
    name: {
      type: 'string',
      minLength: 1,
      description: `The key's name, URL-encoded (\`my%20key\`); 1 to ${MAX_NAME_LENGTH} characters, slashes allowed.`
    }
  }
}

const auditFilters = {
  cursor: { type: 'string', description: 'The `next` of the previous page.' },
  action: { type: 'string', enum: [...AUDIT_ACTIONS] },
  since: { type: 'string', format: 'date-time', description: 'Events at or after this instant.' },
  until: { type: 'string', format: 'date-time', description: 'Events before this instant.' },
  target: { type: 'string', description: 'A key identifier or name.' }
}

interface RouteDoc {
  operationId: string
  summary: string
  description: string
  tags: string[]
  /** The documented path after the route prefix, for the wildcard routes. */
  path?: string
  params?: unknown
  querystring?: unknown
  /** Documented answers; merged over the route's own 200 schema. */
  response: Record<string | number, unknown>
}

/**
 * A `config.swaggerTransform`: the route as documented. The four wildcard routes (`/*`, so that
 * names may be long or hold a slash) are shown as the paths clients call.
 */
function documented (doc: RouteDoc) {
  return function keygateRouteDoc (input: SwaggerTransformInput) {
    const { schema = {}, url, route } = input
    addSecurityScheme(input)
    const { path, response, ...described } = doc
    const own = (schema as { response?: Record<string, unknown> }).response
    return {
      url: path === undefined ? url : url.replace(/\/\*$/, path),
      schema: {
        ...schema,
        ...described,
        security: securityOf((route.config as { apiKey?: unknown } | undefined)?.apiKey),
        // The route's 200 (what Fastify serializes with) described, then every other answer.
        response: { ...response, 200: { ...(own?.[200] as object | undefined), ...(response[200] as object) } }
      }
    }
  }
}

const MANAGEMENT = 'A person signed in through the host (option `authenticateManagement`) may call it too.'
const BEYOND_CALLER_TEXT = 'A key grants no scope, limit, expiry or credits beyond its own.'

export const KEY_ROUTE_DOCS = {
  create: documented({
    operationId: 'createKey',
    summary: 'Create a key',
    description: `Creates a key and returns its text, \`apiKey\`, this once only. ${BEYOND_CALLER_TEXT} ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    response: errors({
      200: { [DESCRIPTION]: 'The new key, with its text.' },
      400: errorResponse('The body is not a valid key, the name is taken, or the key limit is reached.', [
        'key_name_required', 'key_name_invalid', 'key_name_taken', 'owner_invalid', 'key_for_invalid', 'key_prefix_invalid',
        'scope_invalid', 'plan_invalid', 'rate_limit_invalid', 'rate_limit_required', 'expiry_invalid', 'credits_invalid',
        'key_limit_reached', 'invalid_request', 'bad_request'
      ]),
      403: forbidden(BEYOND_CALLER),
      ...BODY_ERRORS
    })
  }),
  list: documented({
    operationId: 'listKeys',
    summary: 'List keys',
    description: `The live keys of the caller's tenant, oldest first. ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    response: errors({
      200: { [DESCRIPTION]: 'The keys; never their text.' },
      400: errorResponse('A bad `owner`.', ['invalid_request'])
    })
  }),
  onboarding: documented({
    operationId: 'listOnboardingKeys',
    summary: 'List onboarding keys',
    description: `The live ONBOARDING keys of the caller's tenant, newest first. ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    response: errors({ 200: { [DESCRIPTION]: 'The keys; never their text.' } })
  }),
  usage: documented({
    operationId: 'getKeyUsage',
    summary: 'Usage of a key',
    description: `Requests per day (UTC) of a key and the texts it was rotated from, as of the last flush. ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    path: '/{name}/usage',
    params: nameParams,
    querystring: { type: 'object', properties: { days: { type: 'integer', minimum: 1, maximum: MAX_USAGE_DAYS, default: DEFAULT_USAGE_DAYS, description: 'Days up to today.' } } },
    response: errors({
      200: { [DESCRIPTION]: 'One entry a day, oldest first.' },
      400: errorResponse('A bad `days`.', ['invalid_request']),
      404: NOT_FOUND
    })
  }),
  delete: documented({
    operationId: 'deleteKey',
    summary: 'Delete a key',
    description: `Deletes a key; it stops working at once on every instance. A key deletes only keys whose scopes it holds. ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    path: '/{name}/delete',
    params: nameParams,
    response: errors({ 200: { [DESCRIPTION]: '`{ "status": "OK" }`' }, 404: NOT_FOUND })
  }),
  rotate: documented({
    operationId: 'rotateKey',
    summary: 'Rotate a key',
    description: 'Replaces a key\'s text and returns the new one, this once only; the old text keeps working for ' +
      `\`gracePeriodSeconds\` (default 0), answering with \`Deprecation\` and \`Sunset\`. No body is the same as \`{}\`. ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    path: '/{name}/rotate',
    params: nameParams,
    response: errors({
      200: { [DESCRIPTION]: 'The key, with its new text.' },
      400: errorResponse('A bad `gracePeriodSeconds`, or a body that is not JSON.', ['grace_period_invalid', 'bad_request']),
      404: NOT_FOUND,
      ...BODY_ERRORS
    })
  }),
  update: documented({
    operationId: 'updateKey',
    summary: 'Update a key',
    description: `Changes any of a key's name, owner, scopes, plan, rate limit, expiry and credits; \`null\` clears the ones that may be cleared. ${BEYOND_CALLER_TEXT} ${MANAGEMENT}`,
    tags: [KEYS_TAG],
    path: '/{name}',
    params: nameParams,
    response: errors({
      200: { [DESCRIPTION]: 'The key as it now is.' },
      400: errorResponse('The body is not a valid change, or the new name is taken.', [
        'key_name_required', 'key_name_invalid', 'key_name_taken', 'owner_invalid', 'scope_invalid', 'plan_invalid',
        'rate_limit_invalid', 'rate_limit_required', 'expiry_invalid', 'credits_invalid', 'invalid_request', 'bad_request'
      ]),
      403: forbidden(BEYOND_CALLER),
      404: NOT_FOUND,
      ...BODY_ERRORS
    })
  }),
  audit: documented({
    operationId: 'listAuditEvents',
    summary: 'Read the audit log',
    description: `Events of the caller's tenant, newest first, a page at a time. ${MANAGEMENT}`,
    tags: [AUDIT_TAG],
    querystring: {
      type: 'object',
      properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT, default: DEFAULT_AUDIT_LIMIT }, ...auditFilters }
    },
    response: errors({
      200: { [DESCRIPTION]: 'A page of events; `next` is the cursor of the next page, or null.' },
      400: errorResponse('A bad query parameter, or one given twice.', ['invalid_request'])
    })
  }),
  auditExport: documented({
    operationId: 'exportAuditEvents',
    summary: 'Export the audit log',
    description: `Every event of the caller's tenant that matches, newest first, streamed. ${MANAGEMENT}`,
    tags: [AUDIT_TAG],
    querystring: {
      type: 'object',
      properties: { format: { type: 'string', enum: [...AUDIT_FORMATS], default: 'ndjson' }, ...auditFilters }
    },
    response: errors({
      200: {
        [DESCRIPTION]: 'One event a line (ndjson), or a header line and one row an event (csv).',
        content: Object.fromEntries(AUDIT_FORMATS.map((format) => [CONTENT_TYPES[format].split(';', 1)[0], { schema: { type: 'string' } }]))
      },
      400: errorResponse('A bad query parameter, or one given twice.', ['invalid_request'])
    })
  })
}
