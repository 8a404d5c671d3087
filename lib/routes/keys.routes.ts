import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  type CreateKeyChoices,
  createKeyBodySchema,
  createKeyValidationError,
  createStrictAjv,
  rotateKeyBodySchema,
  updateKeyBodySchema,
  updateKeyValidationError
} from '../api/create-key.schema.js'
import { type AuditQuery, type Caller, type CreateKeyInput, type KeygateApi, MAX_AUDIT_LIMIT, type RotateKeyInput, type UpdateKeyInput, USAGE_DAYS_INVALID } from '../api/keygate-api.js'
import type { AuditContext, AuditTarget } from '../audit/audit-event.js'
import { AUDIT_FORMATS, type AuditFormat, CONTENT_TYPES, exportStream } from '../audit/audit-export.js'
import { verifiedKeyOf } from '../auth/hook.js'
import { signedInUserOf } from '../auth/management-sign-in.js'
import { AUDIT_EXPORT, AUDIT_READ, KEYS_READ, KEYS_WRITE } from '../auth/scopes.js'
import { CREDITS_INTERVALS, KEY_TYPES } from '../db/schema.js'
import { GracePeriodInvalidError, InternalError, InvalidRequestError, isKeygateError, RouteNotFoundError } from '../errors.js'
import { sendError, sendOtherError } from '../http/send-error.js'
import { KEY_ROUTE_DOCS } from './keys.openapi.js'

export interface KeyRoutesOptions {
  api: KeygateApi
  /** Writes one `access.denied` event; its own small write, not awaited by the answer. */
  recordDenied: (tenant: string, target: AuditTarget | null, audit: AuditContext) => void
  choices: CreateKeyChoices
  maxGracePeriodSeconds: number
}

const limitSchema = { type: ['integer', 'null'] } as const

const keyInfoProperties = {
  name: { type: 'string' },
  identifier: { type: 'string' },
  created: { type: 'string', format: 'date-time' },
  for: { type: 'string', enum: [...KEY_TYPES] },
  scopes: { type: 'array', items: { type: 'string' } },
  plan: { type: 'string' },
  limits: {
    type: 'object',
    required: ['perMinute', 'perHour'],
    properties: { perMinute: limitSchema, perHour: limitSchema }
  },
  expires: { type: ['string', 'null'], format: 'date-time' },
  owner: { type: ['string', 'null'] },
  serviceAccount: { type: 'boolean' },
  rotationDue: { type: 'boolean' },
  rotatingFrom: {
    type: ['object', 'null'],
    required: ['identifier', 'sunset'],
    properties: { identifier: { type: 'string' }, sunset: { type: 'string', format: 'date-time' } }
  },
  lastUsed: { type: ['string', 'null'], format: 'date-time' },
  requests: { type: 'integer' },
  credits: {
    type: ['object', 'null'],
    required: ['remaining', 'refill'],
    properties: {
      remaining: { type: 'integer' },
      refill: {
        type: ['object', 'null'],
        required: ['amount', 'interval'],
        properties: { amount: { type: 'integer' }, interval: { type: 'string', enum: [...CREDITS_INTERVALS] } }
      }
    }
  }
} as const

const keyInfoSchema = {
  type: 'object',
  required: ['name', 'identifier', 'created', 'for', 'scopes', 'plan', 'limits', 'expires', 'owner', 'serviceAccount', 'rotationDue', 'rotatingFrom', 'lastUsed', 'requests', 'credits'],
  properties: keyInfoProperties
} as const

const createdKeySchema = {
  type: 'object',
  required: ['apiKey', ...keyInfoSchema.required],
  properties: { apiKey: { type: 'string' }, ...keyInfoProperties }
} as const

// `keygateManagement` lets the host's sign-in (option authenticateManagement) in here, and nowhere else.
const canRead = { apiKey: { scopes: [KEYS_READ] }, keygateManagement: true }
const canWrite = { apiKey: { scopes: [KEYS_WRITE] }, keygateManagement: true }
const canReadAudit = { apiKey: { scopes: [AUDIT_READ] }, keygateManagement: true }
const canExportAudit = { apiKey: { scopes: [AUDIT_EXPORT] }, keygateManagement: true }

const auditActorSchema = { type: 'object', additionalProperties: { type: 'string' } } as const
const auditEventSchema = {
  type: 'object',
  required: ['id', 'at', 'action', 'actor', 'target', 'ip', 'requestId'],
  properties: {
    id: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    action: { type: 'string' },
    actor: auditActorSchema,
    target: {
      type: ['object', 'null'],
      required: ['identifier', 'name'],
      properties: { identifier: { type: ['string', 'null'] }, name: { type: ['string', 'null'] }, from: { type: 'string' } }
    },
    ip: { type: ['string', 'null'] },
    requestId: { type: ['string', 'null'] }
  }
} as const

// The 4xx bodies these routes send, the hook's 401/403/429 included.
const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' }, retry_after: { type: 'integer' } }
} as const

const keyUsageSchema = {
  type: 'object',
  required: ['name', 'identifier', 'days'],
  properties: {
    name: { type: 'string' },
    identifier: { type: 'string' },
    days: {
      type: 'array',
      items: { type: 'object', required: ['date', 'requests'], properties: { date: { type: 'string' }, requests: { type: 'integer' } } }
    }
  }
} as const

const UNLIMITED = Object.freeze({ perMinute: null, perHour: null })
const DELETE_SUFFIX = '/delete'
const ROTATE_SUFFIX = '/rotate'
const USAGE_SUFFIX = '/usage'
// Digits only, no sign, no leading zero: `days=1.5`, `days=+3` or `days=030` are refused, not rounded.
const DAYS_TEXT = /^[1-9][0-9]{0,2}$/
const AUDIT_QUERY = ['cursor', 'action', 'since', 'until', 'target'] as const

/** What the request says of itself for its audit event. */
function auditOf (request: FastifyRequest): AuditContext {
  const signedIn = signedInUserOf(request)
  const actor = signedIn !== null ? { user: signedIn.user } : { identifier: (request.apiKey as { identifier: string }).identifier }
  return { actor, ip: request.ip, requestId: request.id }
}

/** `?cursor=&action=&since=&until=&target=` and, for a page, `?limit=`; the API checks the values. */
function auditQueryOf (request: FastifyRequest, withLimit: boolean): AuditQuery {
  const query = request.query as Record<string, unknown>
  const asked: AuditQuery = { requestedBy: callerOf(request) }
  for (const name of AUDIT_QUERY) {
    const value = query[name]
    if (value === undefined) continue
    // A repeated parameter arrives as an array: refused, not one of them picked.
    if (typeof value !== 'string') throw new InvalidRequestError(`${name} must be given once.`)
    asked[name] = value
  }
  if (withLimit && query.limit !== undefined) {
    if (typeof query.limit !== 'string' || !DAYS_TEXT.test(query.limit)) throw new InvalidRequestError(`limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}.`)
    asked.limit = Number(query.limit)
  }
  return asked
}

/** The key a management URL names, for an access.denied event: after /keys/ and before any suffix. */
function nameInUrl (request: FastifyRequest): string | null {
  const path = (request.params as { '*'?: string } | undefined)?.['*']
  if (typeof path !== 'string' || path === '') return null
  for (const suffix of [DELETE_SUFFIX, ROTATE_SUFFIX, USAGE_SUFFIX]) {
    if (request.method !== 'PATCH' && path.endsWith(suffix) && path.length > suffix.length) return path.slice(0, -suffix.length)
  }
  return request.method === 'PATCH' ? path : null
}

/** `?days=` as a number, undefined when absent; a bad value is a 400, never a silent default. */
function daysOf (request: FastifyRequest): number | undefined {
  const days = (request.query as Record<string, unknown>).days
  if (days === undefined) return undefined
  if (typeof days !== 'string' || !DAYS_TEXT.test(days)) throw new InvalidRequestError(USAGE_DAYS_INVALID)
  // The range itself (1 to 366) is the API's to check.
  return Number(days)
}

/** The key name before `suffix` in a wildcard path, or undefined when the path is not `<name><suffix>`. */
function nameBefore (request: FastifyRequest, suffix: string): string | undefined {
  const path = (request.params as { '*': string })['*']
  return path.endsWith(suffix) && path.length > suffix.length ? path.slice(0, -suffix.length) : undefined
}

/**
 * The key a management request acts for, with its credits as verified. The hook sets both on
 * every one of these routes; were either ever missing, acting without a caller would mean acting
 * with full power, so it fails instead.
 */
function callerOf (request: FastifyRequest): Caller {
  const signedIn = signedInUserOf(request)
  // A person acts with the scopes the host gave them; they have no limits, expiry or credits of their own.
  if (signedIn !== null) return { tenant: signedIn.tenant, user: signedIn.user, scopes: signedIn.scopes, limits: UNLIMITED }
  const entry = verifiedKeyOf(request)
  if (request.apiKey === null || entry === null) throw new InternalError()
  const { tenant, scopes, limits, expires } = request.apiKey
  return { tenant, scopes, limits, expires, credits: entry.credits === null ? null : { remaining: entry.credits.remaining, refill: entry.credits.refill } }
}

/** The management routes: the four of the Metlo API, update, rotate and usage. */
export async function keyRoutes (fastify: FastifyInstance, { api, recordDenied, choices, maxGracePeriodSeconds }: KeyRoutesOptions): Promise<void> {
  // Strict, like keygate.createKey: no coercion, unknown properties refused (Fastify's default drops them).
  const ajv = createStrictAjv()
  fastify.setValidatorCompiler(({ schema }) => ajv.compile(schema))
  fastify.setErrorHandler(function keyRoutesErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (isKeygateError(error)) return sendError(reply, error)
    if (error.validation !== undefined) return sendError(reply, validationError(request, error.validation))
    // The detail of a failure is for the log only: a client learns nothing of the database or the code.
    return sendOtherError(request, reply, error, 'keygate: a management route failed')
  })
  // A management request refused for a missing permission, by the hook or by a caller rule of
  // the API, is an access.denied event. Route hooks of this context run for the hook's answers too.
  fastify.addHook('onResponse', (request, reply, done) => {
    const tenant = request.apiKey?.tenant ?? signedInUserOf(request)?.tenant
    if (reply.statusCode === 403 && tenant !== undefined) {
      const name = nameInUrl(request)
      recordDenied(tenant, name === null ? null : { identifier: null, name }, auditOf(request))
    }
    done()
  })
  // Under the route prefix every answer is the contract's envelope, a 404 included.
  fastify.setNotFoundHandler(function keyRoutesNotFound (request: FastifyRequest, reply: FastifyReply) {
    return sendError(reply, new RouteNotFoundError(request.method, request.url.split('?', 1)[0] as string))
  })

  fastify.post('/create', {
    config: { ...canWrite, swaggerTransform: KEY_ROUTE_DOCS.create },
    schema: {
      body: createKeyBodySchema(choices),
      response: { 200: createdKeySchema, '4xx': errorSchema }
    }
  }, async (request) => await api.createKey(request.body as CreateKeyInput, { requestedBy: callerOf(request), audit: auditOf(request) }))

  fastify.get('/audit', {
    config: { ...canReadAudit, swaggerTransform: KEY_ROUTE_DOCS.audit },
    schema: {
      response: {
        200: { type: 'object', required: ['events', 'next'], properties: { events: { type: 'array', items: auditEventSchema }, next: { type: ['string', 'null'] } } },
        '4xx': errorSchema
      }
    }
  }, async (request) => await api.listAuditEvents(auditQueryOf(request, true)))

  fastify.get('/audit/export', {
    config: { ...canExportAudit, swaggerTransform: KEY_ROUTE_DOCS.auditExport },
    schema: { response: { '4xx': errorSchema } }
  }, async (request, reply) => {
    const format = (request.query as { format?: unknown }).format ?? 'ndjson'
    if (!(AUDIT_FORMATS as readonly unknown[]).includes(format)) throw new InvalidRequestError(`format must be one of ${AUDIT_FORMATS.join(', ')}.`)
    // A bad query throws here, before the 200 is sent.
    const events = api.exportAuditEvents(auditQueryOf(request, false))
    reply.header('content-type', CONTENT_TYPES[format as AuditFormat])
    return reply.send(exportStream(events, format as AuditFormat))
  })

  fastify.get('/list', {
    config: { ...canRead, swaggerTransform: KEY_ROUTE_DOCS.list },
    schema: {
      querystring: { type: 'object', properties: { owner: { type: 'string', minLength: 1, maxLength: 128 } } },
      response: { 200: { type: 'array', items: keyInfoSchema } }
    }
  }, async (request) => {
    const { owner } = request.query as { owner?: string }
    return await api.listKeys({ requestedBy: callerOf(request), ...(owner === undefined ? {} : { owner }) })
  })

  fastify.get('/onboarding', {
    config: { ...canRead, swaggerTransform: KEY_ROUTE_DOCS.onboarding },
    schema: { response: { 200: { type: 'array', items: keyInfoSchema } } }
  }, async (request) => await api.listOnboardingKeys({ requestedBy: callerOf(request) }))

  // GET {prefix}/:name/usage?days=30, a wildcard for the same reason as delete (below); the
  // static /list and /onboarding keep priority. Any key that may list keys may read any key's usage.
  fastify.get('/*', {
    config: { ...canRead, swaggerTransform: KEY_ROUTE_DOCS.usage },
    schema: { response: { 200: keyUsageSchema, '4xx': errorSchema } }
  }, async (request, reply) => {
    const name = nameBefore(request, USAGE_SUFFIX)
    if (name === undefined) return reply.callNotFound()
    return await api.usage(name, { days: daysOf(request), requestedBy: callerOf(request) })
  })

  // A wildcard rather than `/:name/delete`: router parameters stop at 100 characters by default,
  // and names may be 128 characters (more once URL-encoded) or contain a slash.
  fastify.delete('/*', {
    config: { ...canWrite, swaggerTransform: KEY_ROUTE_DOCS.delete },
    schema: {
      response: {
        200: { type: 'object', required: ['status'], properties: { status: { type: 'string' } } },
        '4xx': errorSchema
      }
    }
  }, async (request, reply) => {
    const name = nameBefore(request, DELETE_SUFFIX)
    if (name === undefined) return reply.callNotFound()
    await api.deleteKey(name, { requestedBy: callerOf(request), audit: auditOf(request) })
    return { status: 'OK' }
  })

  // POST {prefix}/:name/rotate, a wildcard for the same reason as delete.
  fastify.post('/*', {
    config: { ...canWrite, swaggerTransform: KEY_ROUTE_DOCS.rotate },
    // No body at all is a rotation with every default, as `{}` is.
    preValidation: (request, _reply, done) => { request.body ??= {}; done() },
    schema: {
      body: rotateKeyBodySchema(maxGracePeriodSeconds),
      response: { 200: createdKeySchema, '4xx': errorSchema }
    }
  }, async (request, reply) => {
    const name = nameBefore(request, ROTATE_SUFFIX)
    if (name === undefined) return reply.callNotFound()
    return await api.rotateKey(name, request.body as RotateKeyInput, { requestedBy: callerOf(request), audit: auditOf(request) })
  })

  // PATCH {prefix}/:name: the whole path is the name.
  fastify.patch('/*', {
    config: { ...canWrite, swaggerTransform: KEY_ROUTE_DOCS.update },
    schema: {
      body: updateKeyBodySchema(choices),
      response: { 200: keyInfoSchema, '4xx': errorSchema }
    }
  }, async (request) => {
    const name = (request.params as { '*': string })['*']
    return await api.updateKey(name, request.body as UpdateKeyInput, { requestedBy: callerOf(request), audit: auditOf(request) })
  })

  /** A body that failed its route's schema, as the contract's 400 for that route. */
  function validationError (request: FastifyRequest, errors: NonNullable<FastifyError['validation']>): FastifyError {
    switch (request.method) {
      // The one query schema: GET /list?owner=.
      case 'GET': return new InvalidRequestError('owner must be a user id of 1 to 128 characters.')
      case 'PATCH': return updateKeyValidationError(request.body, errors as never, choices)
      case 'POST': if (request.routeOptions.url?.endsWith('/*') === true) return new GracePeriodInvalidError(maxGracePeriodSeconds)
    }
    return createKeyValidationError(request.body, errors as never, choices)
  }
}

