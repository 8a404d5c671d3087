import { KeygateConfigError } from './errors.js'

/** Where the key is looked for when `apiKey` is not given, in this order. */
export const API_KEY_ENV = ['KEYGATE_API_KEY', 'METALOGUE_API_KEY', 'METLO_API_KEY'] as const
/** Where the server's address is looked for when `baseUrl` is not given, in this order. */
export const BASE_URL_ENV = ['KEYGATE_BASE_URL', 'METALOGUE_BASE_URL'] as const
export const DEFAULT_ROUTE_PREFIX = '/api/v1/keys'
export const DEFAULT_MAX_RETRY_WAIT_SECONDS = 60

export interface KeygateClientOptions {
  /**
   * The server's address, e.g. `https://api.example.com` (a path is kept: `https://example.com/gateway`).
   * Default: env `KEYGATE_BASE_URL`, then `METALOGUE_BASE_URL`.
   */
  baseUrl?: string | undefined
  /** The key to call with. Default: env `KEYGATE_API_KEY`, then `METALOGUE_API_KEY`, then `METLO_API_KEY`. */
  apiKey?: string | undefined
  /** The plugin's `routePrefix`. Default `/api/v1/keys`. */
  routePrefix?: string | undefined
  /**
   * On a 429 `rate_limit_exceeded`, wait `retryAfter` seconds and send the request once more.
   * Never for `credits_exhausted`, nor when the wait is over `maxRetryWaitSeconds`. Default false.
   */
  retryOnRateLimit?: boolean | undefined
  /** The longest wait `retryOnRateLimit` accepts, in seconds. Default 60. */
  maxRetryWaitSeconds?: number | undefined
  /** Where variables are read. Default `process.env`. */
  env?: Record<string, string | undefined> | undefined
  /** Default the global `fetch`. */
  fetch?: typeof fetch | undefined
  /** How the retry waits. Default a timer. For tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined
  /** The clock, in milliseconds since the epoch, for resets told in seconds from now. Default `Date.now`. */
  now?: (() => number) | undefined
}

export interface ResolvedClientOptions {
  apiKey: string
  /** Origin and path, no trailing slash. */
  baseUrl: string
  routePrefix: string
  retryOnRateLimit: boolean
  maxRetryWaitSeconds: number
  fetch: typeof fetch
  sleep: (ms: number) => Promise<void>
  now: () => number
}

// What an HTTP header value can carry and a key can be: visible ASCII, no spaces.
const KEY_TEXT = /^[\x21-\x7e]+$/

function firstSet (env: Record<string, string | undefined>, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name]
    if (value !== undefined && value.trim() !== '') return value.trim()
  }
  return undefined
}

function defaultEnv (): Record<string, string | undefined> {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {}
}

function resolveBaseUrl (value: unknown): string {
  // The value itself is never repeated: a URL may carry credentials.
  const invalid = new KeygateConfigError('baseUrl must be an absolute http(s) URL without query or fragment, e.g. https://api.example.com.')
  if (typeof value !== 'string') throw invalid
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') throw invalid
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

/** The client's settings, from its options and then the environment. Throws KeygateConfigError, never with the key in it. */
export function resolveClientOptions (options: KeygateClientOptions = {}): ResolvedClientOptions {
  const env = options.env ?? defaultEnv()

  const apiKey = options.apiKey ?? firstSet(env, API_KEY_ENV)
  if (apiKey === undefined || apiKey === '') {
    throw new KeygateConfigError(`No API key: pass apiKey, or set ${API_KEY_ENV.join(', ')}.`)
  }
  if (typeof apiKey !== 'string' || !KEY_TEXT.test(apiKey)) {
    throw new KeygateConfigError('apiKey must be the key text: visible ASCII characters, no spaces.')
  }

  const baseUrl = options.baseUrl ?? firstSet(env, BASE_URL_ENV)
  if (baseUrl === undefined || baseUrl === '') {
    throw new KeygateConfigError(`No server address: pass baseUrl, or set ${BASE_URL_ENV.join(' or ')}.`)
  }

  const routePrefix = options.routePrefix ?? DEFAULT_ROUTE_PREFIX
  if (typeof routePrefix !== 'string' || !routePrefix.startsWith('/') || routePrefix.endsWith('/')) {
    throw new KeygateConfigError('routePrefix must be a path that starts with "/" and does not end with one, e.g. /api/v1/keys.')
  }

  const maxRetryWaitSeconds = options.maxRetryWaitSeconds ?? DEFAULT_MAX_RETRY_WAIT_SECONDS
  if (typeof maxRetryWaitSeconds !== 'number' || !(maxRetryWaitSeconds >= 0)) {
    throw new KeygateConfigError('maxRetryWaitSeconds must be a number of seconds, 0 or more.')
  }

  if (typeof (options.fetch ?? globalThis.fetch) !== 'function') {
    throw new KeygateConfigError('No fetch: this runtime has no global fetch (Node 18 or later has one); pass the fetch option.')
  }

  return {
    apiKey,
    baseUrl: resolveBaseUrl(baseUrl),
    routePrefix,
    retryOnRateLimit: options.retryOnRateLimit === true,
    maxRetryWaitSeconds,
    // The global fetch needs to be called as a plain function, not as a method of the options.
    fetch: options.fetch === undefined ? (input, init) => globalThis.fetch(input, init) : options.fetch,
    sleep: options.sleep ?? (async (ms) => await new Promise((resolve) => setTimeout(resolve, ms))),
    now: options.now ?? Date.now
  }
}
