import fastifySwagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import keygate, { type KeygateOptions, SECURITY_SCHEME, SECURITY_SCHEME_NAME } from '../../lib/index.js'
import { createKey, FAST_ARGON2, testClock } from '../helpers/app.js'
import { openTestDatabase } from '../helpers/database.js'
import { captureLogs } from '../helpers/log-capture.js'

type Doc = Record<string, any>

const SCHEME = {
  type: 'apiKey',
  in: 'header',
  name: 'Authorization',
  description: 'An API key: `Authorization: <key>` or `Authorization: Bearer <key>`. A route lists the scopes a key must hold; a key with `*` holds them all.'
}

// The host's own scheme, which one of its routes uses.
const HOST_SCHEME = { type: 'apiKey', in: 'cookie', name: 'session' } as const

// A schema a host shares between two routes of different scopes: the plugin must not change it.
const sharedSchema = { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }

/** Host routes: public, any key, scopes, the host's own security, and a shared schema. */
function hostRoutes (app: FastifyInstance): void {
  app.get('/health', { config: { apiKey: false } }, async () => ({ ok: true }))
  app.get('/v1/endpoints', async () => ({ ok: true }))
  app.post('/v1/connectors', { config: { apiKey: { scopes: ['connector:write', 'query'] } } }, async () => ({ ok: true }))
  app.get('/v1/own', { schema: { security: [{ hostScheme: [] }] } as never }, async () => ({ ok: true }))
  app.get('/v1/shared-a', { schema: sharedSchema, config: { apiKey: { scopes: ['federate'] } } }, async () => ({ ok: true }))
  app.get('/v1/shared-b', { schema: sharedSchema }, async () => ({ ok: true }))
}

interface Setup {
  /** OpenAPI version, or 'swagger' for a Swagger 2.0 document. */
  version?: string
  /** Register @fastify/swagger after the plugin instead of before. */
  swaggerAfter?: boolean
  keygate?: Partial<KeygateOptions>
  components?: Doc
  security?: Doc[]
  logger?: ReturnType<typeof captureLogs>['logger']
}

/** A host app with @fastify/swagger registered before the plugin (as it asks), and its document. */
async function documented (t: Test, setup: Setup = {}): Promise<{ app: FastifyInstance, doc: Doc }> {
  const database = await openTestDatabase()
  const app = Fastify(setup.logger === undefined ? {} : { logger: setup.logger })
  t.teardown(async () => {
    await app.close()
    await database.close()
  })
  const swagger = async (): Promise<void> => {
    await app.register(fastifySwagger, setup.version === 'swagger'
      ? { swagger: { info: { title: 'host', version: '1.0.0' }, securityDefinitions: { hostScheme: HOST_SCHEME } } }
      : {
          openapi: {
            openapi: setup.version ?? '3.1.0',
            info: { title: 'host', version: '1.0.0' },
            components: setup.components ?? { securitySchemes: { hostScheme: HOST_SCHEME } },
            ...(setup.security === undefined ? {} : { security: setup.security })
          }
        })
  }
  if (setup.swaggerAfter !== true) await swagger()
  await app.register(keygate, { db: database.db, schema: database.schema, argon2: FAST_ARGON2, now: testClock().now, ...setup.keygate })
  if (setup.swaggerAfter === true) await swagger()
  hostRoutes(app)
  await app.ready()
  return { app, doc: app.swagger() as Doc }
}

/** Method and path of every operation, with its security. */
function operations (doc: Doc): Record<string, unknown> {
  const found: Record<string, unknown> = {}
  for (const [path, item] of Object.entries(doc.paths as Doc)) {
    for (const [method, operation] of Object.entries(item as Doc)) found[`${method.toUpperCase()} ${path}`] = (operation as Doc).security
  }
  return found
}

const errorSchema = (codes: string[], extra: Doc = {}) => ({
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string', enum: codes }, message: { type: 'string' }, ...extra }
})
const RETRY_AFTER = { retry_after: { type: 'integer', minimum: 1, description: 'Seconds to wait; also the Retry-After header.' } }
const json = (schema: Doc) => ({ 'application/json': { schema } })

for (const version of ['3.1.0', '3.0.3']) {
  t.test(`OpenAPI ${version}: a valid document with the API-key scheme and every route's security`, async (t) => {
    const { doc } = await documented(t, { version })
    t.same(await new Validator().validate(structuredClone(doc)), { valid: true })
    t.equal(doc.openapi, version)
    t.same(doc.components.securitySchemes, { hostScheme: HOST_SCHEME, apiKey: SCHEME })
    t.same(SECURITY_SCHEME, SCHEME)
    t.equal(SECURITY_SCHEME_NAME, 'apiKey')
    t.same(doc.security, [{ apiKey: [] }], 'a key is the default: every route needs one unless it says otherwise')
    t.same(operations(doc), {
      'POST /api/v1/keys/create': [{ apiKey: ['keys:write'] }],
      'GET /api/v1/keys/audit': [{ apiKey: ['audit:read'] }],
      'GET /api/v1/keys/audit/export': [{ apiKey: ['audit:export'] }],
      'GET /api/v1/keys/list': [{ apiKey: ['keys:read'] }],
      'GET /api/v1/keys/onboarding': [{ apiKey: ['keys:read'] }],
      'GET /api/v1/keys/{name}/usage': [{ apiKey: ['keys:read'] }],
      'DELETE /api/v1/keys/{name}/delete': [{ apiKey: ['keys:write'] }],
      'POST /api/v1/keys/{name}/rotate': [{ apiKey: ['keys:write'] }],
      'PATCH /api/v1/keys/{name}': [{ apiKey: ['keys:write'] }],
      'GET /health': [],
      'GET /v1/endpoints': [{ apiKey: [] }],
      'POST /v1/connectors': [{ apiKey: ['connector:write', 'query'] }],
      'GET /v1/own': [{ hostScheme: [] }],
      'GET /v1/shared-a': [{ apiKey: ['federate'] }],
      'GET /v1/shared-b': [{ apiKey: [] }]
    }, 'the wildcard routes are documented at the paths clients call; public routes need nothing')
    t.same(sharedSchema, { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }, 'a schema the host shares is left as it was')
  })
}

t.test('the key routes: summaries, parameters and every answer in the contract\'s envelope', async (t) => {
  const { doc } = await documented(t)
  const paths = doc.paths as Doc

  const remove = paths['/api/v1/keys/{name}/delete'].delete
  t.equal(remove.operationId, 'deleteKey')
  t.equal(remove.summary, 'Delete a key')
  t.same(remove.tags, ['API keys'])
  t.same(remove.parameters, [{
    schema: { type: 'string', minLength: 1 },
    in: 'path',
    name: 'name',
    required: true,
    description: 'The key\'s name, URL-encoded (`my%20key`); 1 to 128 characters, slashes allowed.'
  }])
  t.same(Object.keys(remove.responses), ['200', '401', '403', '404', '429', '500', '503'])
  t.same(remove.responses['200'], { description: '`{ "status": "OK" }`', content: json({ type: 'object', required: ['status'], properties: { status: { type: 'string' } } }) })
  t.same(remove.responses['401'], {
    description: 'No key, or one that is malformed, unknown, deleted, expired or rotated away: `Client unauthorized`.',
    headers: { 'WWW-Authenticate': { schema: { type: 'string' }, description: '`Bearer`' } },
    content: json(errorSchema(['unauthorized']))
  })
  t.same(remove.responses['403'].content, json(errorSchema(['insufficient_scope'])))
  t.same(remove.responses['404'].content, json(errorSchema(['key_not_found', 'not_found'])))
  t.same(remove.responses['429'], {
    description: 'Over a rate limit of the key (`Rate limit exceeded. Retry after <n> seconds.`), or out of credits.',
    headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds to wait before trying again.' } },
    content: json(errorSchema(['rate_limit_exceeded', 'credits_exhausted'], RETRY_AFTER))
  })
  t.same(remove.responses['500'].content, json(errorSchema(['internal_error'])))
  t.same(remove.responses['503'].content, json(errorSchema(['service_unavailable'])))

  const create = paths['/api/v1/keys/create'].post
  t.equal(create.operationId, 'createKey')
  t.same(Object.keys(create.responses), ['200', '400', '401', '403', '413', '415', '429', '500', '503'])
  t.same(create.responses['400'].content, json(errorSchema([
    'key_name_required', 'key_name_invalid', 'key_name_taken', 'owner_invalid', 'key_for_invalid', 'key_prefix_invalid',
    'scope_invalid', 'plan_invalid', 'rate_limit_invalid', 'rate_limit_required', 'expiry_invalid', 'credits_invalid',
    'key_limit_reached', 'invalid_request', 'bad_request'
  ])))
  t.same(create.responses['403'].content, json(errorSchema(['insufficient_scope', 'limit_exceeds_caller', 'expiry_exceeds_caller', 'credits_exceed_caller'])))
  t.same(create.responses['413'].content, json(errorSchema(['payload_too_large'])))
  t.same(create.responses['415'].content, json(errorSchema(['unsupported_media_type'])))
  t.same(create.requestBody.content['application/json'].schema.required, ['name'])
  t.equal(create.requestBody.content['application/json'].schema.additionalProperties, false)
  t.same(create.responses['200'].content['application/json'].schema.required, [
    'apiKey', 'name', 'identifier', 'created', 'for', 'scopes', 'plan', 'limits', 'expires', 'owner', 'serviceAccount',
    'rotationDue', 'rotatingFrom', 'lastUsed', 'requests', 'credits'
  ])

  const rotate = paths['/api/v1/keys/{name}/rotate'].post
  t.equal(rotate.operationId, 'rotateKey')
  t.same(Object.keys(rotate.responses), ['200', '400', '401', '403', '404', '413', '415', '429', '500', '503'])
  t.same(rotate.responses['400'].content, json(errorSchema(['grace_period_invalid', 'bad_request'])))
  t.same(rotate.requestBody.content['application/json'].schema, {
    type: 'object', additionalProperties: false, properties: { gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 604800 } }
  })

  const update = paths['/api/v1/keys/{name}'].patch
  t.equal(update.operationId, 'updateKey')
  t.same(Object.keys(update.responses), ['200', '400', '401', '403', '404', '413', '415', '429', '500', '503'])
  t.same(update.requestBody.content['application/json'].schema.minProperties, 1)

  const usage = paths['/api/v1/keys/{name}/usage'].get
  t.equal(usage.operationId, 'getKeyUsage')
  t.same(usage.parameters.map((p: Doc) => [p.in, p.name, p.required]), [['query', 'days', false], ['path', 'name', true]])
  t.same(usage.parameters[0].schema, { type: 'integer', minimum: 1, maximum: 366, default: 30 })
  t.same(usage.responses['400'].content, json(errorSchema(['invalid_request'])))
  t.same(usage.responses['200'].content['application/json'].schema.required, ['name', 'identifier', 'days'])

  const list = paths['/api/v1/keys/list'].get
  t.same(Object.keys(list.responses), ['200', '400', '401', '403', '429', '500', '503'])
  t.same(list.parameters.map((p: Doc) => [p.in, p.name, p.required]), [['query', 'owner', false]])
  t.equal(list.responses['200'].content['application/json'].schema.type, 'array')
  t.same(Object.keys(paths['/api/v1/keys/onboarding'].get.responses), ['200', '401', '403', '429', '500', '503'])

  const audit = paths['/api/v1/keys/audit'].get
  t.same(audit.tags, ['Audit log'])
  t.same(audit.parameters.map((p: Doc) => p.name), ['limit', 'cursor', 'action', 'since', 'until', 'target'])
  const exported = paths['/api/v1/keys/audit/export'].get
  t.same(exported.responses['200'].content, { 'application/x-ndjson': { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } } })
  t.same(exported.parameters[0], { schema: { type: 'string', enum: ['ndjson', 'csv'], default: 'ndjson' }, in: 'query', name: 'format', required: false })
})

t.test('with the document on, the routes answer exactly as before', async (t) => {
  const { app } = await documented(t)
  const admin = await createKey(app, 'admin')
  const call = async (method: 'GET' | 'DELETE', url: string, key?: string) =>
    await app.inject({ method, url, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })

  const health = await call('GET', '/health')
  t.equal(health.statusCode, 200)
  t.same(health.json(), { ok: true })
  const anonymous = await call('GET', '/v1/endpoints')
  t.equal(anonymous.statusCode, 401)
  t.same(anonymous.json(), { error: 'unauthorized', message: 'Client unauthorized' })
  const missing = await call('DELETE', '/api/v1/keys/nobody/delete', admin)
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { error: 'key_not_found', message: 'Did not find any matching keys for nobody' })
  const deleted = await call('DELETE', '/api/v1/keys/admin/delete', admin)
  t.equal(deleted.statusCode, 200)
  t.same(deleted.json(), { status: 'OK' })
})

t.test('a scheme or default the host declared itself is kept', async (t) => {
  const own = { type: 'http', scheme: 'bearer' } as const
  const { doc } = await documented(t, { components: { securitySchemes: { apiKey: own, hostScheme: HOST_SCHEME } }, security: [] })
  t.same(await new Validator().validate(structuredClone(doc)), { valid: true })
  t.same(doc.components.securitySchemes, { apiKey: own, hostScheme: HOST_SCHEME })
  t.same(doc.security, [])
})

t.test('@fastify/swagger registered after the plugin: nothing added, and the log says why once', async (t) => {
  const logs = captureLogs()
  const { doc } = await documented(t, { swaggerAfter: true, logger: logs.logger })
  t.same(await new Validator().validate(structuredClone(doc)), { valid: true })
  t.same(doc.components, { schemas: {}, securitySchemes: { hostScheme: HOST_SCHEME } })
  t.equal(doc.security, undefined)
  t.same(Object.keys(doc.paths), ['/health', '/v1/endpoints', '/v1/connectors', '/v1/own', '/v1/shared-a', '/v1/shared-b'])
  t.equal(doc.paths['/v1/endpoints'].get.security, undefined)
  const warnings = logs.text().split('\n').filter((line) => line.includes('@fastify/swagger'))
  t.equal(warnings.length, 1)
  t.equal(JSON.parse(warnings[0]!).msg, 'keygate: @fastify/swagger was registered after fastify-keygate; register it before, so the document shows the API-key scheme, each route\'s scopes and the key routes')
})

t.test('routes: false: no key routes and no security are added, so the host can declare its own', async (t) => {
  const { doc } = await documented(t, { keygate: { routes: false } })
  t.same(await new Validator().validate(structuredClone(doc)), { valid: true })
  t.same(doc.components, { schemas: {}, securitySchemes: { hostScheme: HOST_SCHEME } })
  t.equal(doc.paths['/v1/connectors'].post.security, undefined)
})

t.test('Swagger 2.0: the scheme goes to securityDefinitions', async (t) => {
  const { doc } = await documented(t, { version: 'swagger' })
  t.equal(doc.swagger, '2.0')
  t.same(doc.securityDefinitions, { hostScheme: HOST_SCHEME, apiKey: { type: 'apiKey', in: 'header', name: 'Authorization' } })
  t.same(doc.security, [{ apiKey: [] }])
  t.same(doc.paths['/api/v1/keys/{name}/delete'].delete.security, [{ apiKey: ['keys:write'] }])
  t.same(doc.paths['/health'].get.security, [])
})
