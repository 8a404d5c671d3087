import { type ErrorBody, errorFor, KeygateConnectionError, RateLimitedError } from './errors.js'
import { type KeygateClientOptions, resolveClientOptions } from './options.js'
import { deprecationOf, rateLimitOf } from './rate-limit.js'
import type {
  AuditEvent,
  AuditExportQuery,
  AuditFilter,
  AuditPage,
  AuditQuery,
  CreatedKey,
  CreateKeyInput,
  KeygateResult,
  KeyInfo,
  KeyUsage,
  ListKeysQuery,
  RotateKeyInput,
  UpdateKeyInput,
  UsageQuery
} from './types.js'

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
type Query = Record<string, string | number | Date | undefined>

/** What a response says of the caller, besides its body. */
type Told = Pick<KeygateResult<unknown>, 'rateLimit' | 'deprecation'>

interface Call {
  method: Method
  /** After the route prefix, already encoded. */
  path: string
  query?: Query
  body?: object
}

const REDACTED = '[redacted]'
// <prefix>_<8-character key id><18-character secret><6-character checksum>
const KEY_SHAPE = /^([A-Za-z0-9]+)_([A-Za-z0-9]{8})[A-Za-z0-9]{24}$/

/**
 * The path of a key's route: the name URL-encoded, a slash or `%` in it included, as the server's
 * wildcard routes decode it. `.` and `..` cannot be sent: every URL parser reads them as "this
 * folder" and "the folder above", whatever their encoding.
 */
function keyPath (name: string, suffix: string): string {
  if (typeof name !== 'string' || name === '') throw new TypeError('name must be a non-empty string.')
  if (name === '.' || name === '..') throw new TypeError(`A key named "${name}" cannot be named in a URL; manage it from the server's code.`)
  return `/${encodeURIComponent(name)}${suffix}`
}

function isoOf (value: string | Date | undefined | null): string | undefined | null {
  return value instanceof Date ? value.toISOString() : value
}

function whole (value: string | null): number | null {
  return value !== null && /^[0-9]{1,10}$/.test(value.trim()) ? Number(value.trim()) : null
}

function auditFilterQuery (filter: AuditFilter): Query {
  return { action: filter.action, since: filter.since, until: filter.until, target: filter.target }
}

/** Lines of an NDJSON body as they arrive, each parsed; a body read a chunk at a time. */
async function * ndjson (body: ReadableStream<Uint8Array>): AsyncGenerator<AuditEvent> {
  const decoder = new TextDecoder()
  let pending = ''
  const reader = body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true })
      const lines = pending.split('\n')
      pending = done ? '' : lines.pop() as string
      for (const line of lines) if (line.trim() !== '') yield JSON.parse(line) as AuditEvent
      if (done) return
    }
  } finally {
    // A consumer that stops early lets go of the connection.
    await reader.cancel().catch(() => {})
  }
}

/**
 * A client of the key-management routes of a server running fastify-keygate. Every method answers
 * `{ data, rateLimit, deprecation, status }` or throws a KeygateError; the key is held in a private field and
 * is never part of an error, a log line or what `util.inspect` and `JSON.stringify` show.
 */
export class KeygateClient {
  readonly #apiKey: string
  readonly #root: string
  readonly #baseUrl: string
  readonly #routePrefix: string
  readonly #retryOnRateLimit: boolean
  readonly #maxRetryWaitSeconds: number
  readonly #fetch: typeof fetch
  readonly #sleep: (ms: number) => Promise<void>
  readonly #now: () => number

  constructor (options: KeygateClientOptions = {}) {
    const resolved = resolveClientOptions(options)
    this.#apiKey = resolved.apiKey
    this.#baseUrl = resolved.baseUrl
    this.#routePrefix = resolved.routePrefix
    this.#root = resolved.baseUrl + resolved.routePrefix
    this.#retryOnRateLimit = resolved.retryOnRateLimit
    this.#maxRetryWaitSeconds = resolved.maxRetryWaitSeconds
    this.#fetch = resolved.fetch
    this.#sleep = resolved.sleep
    this.#now = resolved.now
  }

  /** The server's address, without a trailing slash. */
  get baseUrl (): string { return this.#baseUrl }

  get routePrefix (): string { return this.#routePrefix }

  /** The public identifier of the key (`<prefix>.<key id>`), as listings show it; null for text of another shape. */
  get keyIdentifier (): string | null {
    const match = KEY_SHAPE.exec(this.#apiKey)
    return match === null ? null : `${match[1] as string}.${match[2] as string}`
  }

  /** `POST {prefix}/create`: a new key, its full text in `data.apiKey`, shown this once. Needs `keys:write`. */
  async createKey (input: CreateKeyInput): Promise<KeygateResult<CreatedKey>> {
    const body = input.expiresAt === undefined ? input : { ...input, expiresAt: isoOf(input.expiresAt) }
    return await this.#json({ method: 'POST', path: '/create', body })
  }

  /** `GET {prefix}/list`: the tenant's live keys, oldest first; `owner` filters. Needs `keys:read`. */
  async listKeys (query: ListKeysQuery = {}): Promise<KeygateResult<KeyInfo[]>> {
    return await this.#json({ method: 'GET', path: '/list', query: { owner: query.owner } })
  }

  /** `GET {prefix}/onboarding`: the ONBOARDING keys, newest first. Needs `keys:read`. */
  async listOnboardingKeys (): Promise<KeygateResult<KeyInfo[]>> {
    return await this.#json({ method: 'GET', path: '/onboarding' })
  }

  /** `DELETE {prefix}/:name/delete`: `data` is `{ status: 'OK' }`. Needs `keys:write`. */
  async deleteKey (name: string): Promise<KeygateResult<{ status: 'OK' }>> {
    return await this.#json({ method: 'DELETE', path: keyPath(name, '/delete') })
  }

  /** `PATCH {prefix}/:name`: the key as changed. Needs `keys:write`. */
  async updateKey (name: string, changes: UpdateKeyInput): Promise<KeygateResult<KeyInfo>> {
    const body = changes.expiresAt === undefined ? changes : { ...changes, expiresAt: isoOf(changes.expiresAt) }
    return await this.#json({ method: 'PATCH', path: keyPath(name, ''), body })
  }

  /** `POST {prefix}/:name/rotate`: a new text for the key, shown this once; the old one works `gracePeriodSeconds` more. Needs `keys:write`. */
  async rotateKey (name: string, input: RotateKeyInput = {}): Promise<KeygateResult<CreatedKey>> {
    return await this.#json({ method: 'POST', path: keyPath(name, '/rotate'), body: input })
  }

  /** `GET {prefix}/:name/usage?days=`: requests per UTC day, oldest first. Needs `keys:read`. */
  async usage (name: string, query: UsageQuery = {}): Promise<KeygateResult<KeyUsage>> {
    return await this.#json({ method: 'GET', path: keyPath(name, '/usage'), query: { days: query.days } })
  }

  /** `GET {prefix}/audit`: one page of the tenant's audit events, newest first. Needs `audit:read`. */
  async listAuditEvents (query: AuditQuery = {}): Promise<KeygateResult<AuditPage>> {
    return await this.#json({
      method: 'GET',
      path: '/audit',
      query: { ...auditFilterQuery(query), limit: query.limit, cursor: query.cursor }
    })
  }

  /**
   * Every page of the audit log from `query.cursor` (or the newest) on, each with its rate-limit
   * state, one request per page as the loop asks for it; it ends after a page with `next` null or
   * no events.
   */
  async * auditPages (query: AuditQuery = {}): AsyncGenerator<KeygateResult<AuditPage>, void, undefined> {
    let cursor = query.cursor
    for (;;) {
      const page = await this.listAuditEvents({ ...query, cursor })
      yield page
      if (page.data.next === null || page.data.events.length === 0) return
      cursor = page.data.next
    }
  }

  /** The events of `auditPages`, one by one, newest first. */
  async * auditEvents (query: AuditQuery = {}): AsyncGenerator<AuditEvent, void, undefined> {
    for await (const page of this.auditPages(query)) yield * page.data.events
  }

  /**
   * `GET {prefix}/audit/export`, the whole body as text: NDJSON (default) or CSV. Needs
   * `audit:export`. For a long log, `exportAuditStream` or `exportAuditEvents` keep memory flat.
   */
  async exportAudit (query: AuditExportQuery = {}): Promise<KeygateResult<string>> {
    const { response, told } = await this.#send(this.#exportCall(query))
    return { data: await response.text(), ...told, status: response.status }
  }

  /** The same, as the response's byte stream (to pipe to a file: `Readable.fromWeb(data)`). */
  async exportAuditStream (query: AuditExportQuery = {}): Promise<KeygateResult<ReadableStream<Uint8Array>>> {
    const { response, told } = await this.#send(this.#exportCall(query))
    if (response.body === null) throw new KeygateConnectionError(`The server answered ${response.status} without a body.`)
    return { data: response.body, ...told, status: response.status }
  }

  /** The NDJSON export parsed as it arrives, one event at a time, newest first. */
  async exportAuditEvents (filter: AuditFilter = {}): Promise<KeygateResult<AsyncIterable<AuditEvent>>> {
    const { data, ...rest } = await this.exportAuditStream({ ...filter, format: 'ndjson' })
    return { data: ndjson(data), ...rest }
  }

  toJSON (): { baseUrl: string, routePrefix: string } {
    return { baseUrl: this.#baseUrl, routePrefix: this.#routePrefix }
  }

  [Symbol.for('nodejs.util.inspect.custom')] (): string {
    return `KeygateClient { baseUrl: '${this.#baseUrl}', routePrefix: '${this.#routePrefix}', keyIdentifier: ${this.keyIdentifier === null ? 'null' : `'${this.keyIdentifier}'`} }`
  }

  #exportCall (query: AuditExportQuery): Call {
    return { method: 'GET', path: '/audit/export', query: { ...auditFilterQuery(query), format: query.format } }
  }

  async #json<T> (call: Call): Promise<KeygateResult<T>> {
    const { response, told } = await this.#send(call)
    let data: T
    try {
      data = JSON.parse(await response.text()) as T
    } catch {
      // A connection cut mid-body, or a body that is not JSON.
      throw new KeygateConnectionError(`The server answered ${response.status} with a body that could not be read as JSON.`)
    }
    return { data, ...told, status: response.status }
  }

  /** One call, and with `retryOnRateLimit` one more after a 429's wait. */
  async #send (call: Call): Promise<{ response: Response, told: Told }> {
    try {
      return await this.#sendOnce(call)
    } catch (error) {
      if (!this.#retryOnRateLimit || !(error instanceof RateLimitedError) || error.creditsExhausted ||
        error.retryAfter === null || error.retryAfter > this.#maxRetryWaitSeconds) throw error
      await this.#sleep(error.retryAfter * 1000)
      return await this.#sendOnce(call)
    }
  }

  async #sendOnce (call: Call): Promise<{ response: Response, told: Told }> {
    const search = new URLSearchParams()
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) search.set(name, value instanceof Date ? value.toISOString() : String(value))
    }
    const url = this.#root + call.path + (search.size === 0 ? '' : `?${search.toString()}`)
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}`, accept: 'application/json' }
    if (call.body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    try {
      response = await this.#fetch(url, {
        method: call.method,
        headers,
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) })
      })
    } catch (error) {
      throw new KeygateConnectionError(`Could not reach ${this.#baseUrl}: ${this.#redact(String((error as Error)?.message))}`, { cause: error })
    }
    const rateLimit = rateLimitOf(response.headers, this.#now())
    if (!response.ok) throw await this.#errorOf(response, rateLimit)
    return { response, told: { rateLimit, deprecation: deprecationOf(response.headers) } }
  }

  async #errorOf (response: Response, rateLimit: KeygateResult<unknown>['rateLimit']): Promise<Error> {
    // Whatever the server (or a proxy before it) wrote, the key never gets into an error.
    const text = this.#redact(await response.text().catch(() => ''))
    let body: ErrorBody | undefined
    try {
      const parsed = JSON.parse(text) as Partial<ErrorBody> | null
      if (typeof parsed?.error === 'string' && typeof parsed.message === 'string') body = parsed as ErrorBody
    } catch {}
    body ??= {
      error: response.statusText === '' ? `http_${response.status}` : response.statusText.toLowerCase().replace(/[^a-z]+/g, '_'),
      message: `The server answered ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}.`
    }
    return errorFor({ status: response.status, body, rateLimit, retryAfterHeader: whole(response.headers.get('retry-after')) })
  }

  #redact (text: string): string {
    return text.replaceAll(this.#apiKey, REDACTED)
  }
}
