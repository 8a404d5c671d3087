// Prometheus metrics for fastify-keygate, from its diagnostics channels, with prom-client.
// examples/server.ts serves them on GET /metrics. That route is public here for the example's sake;
// a real deployment keeps it off the public internet (a separate port, a network policy, or a
// guard of its own).
import diagnosticsChannel from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { Counter, Histogram, Registry } from 'prom-client'
import { type Argon2Message, type CacheMessage, CHANNELS, type DenialMessage, type StoreErrorMessage, type VerificationMessage } from '../lib/index.js'

export interface KeygateMetrics {
  registry: Registry
  /** Stops listening to the channels. */
  close: () => void
}

/** Counts what keygate publishes, into `registry` (a new one by default). */
export function keygateMetrics (registry = new Registry()): KeygateMetrics {
  const registers = [registry]
  const verifications = new Counter({ name: 'keygate_verifications_total', help: 'Requests the API-key check decided, by outcome.', labelNames: ['outcome'], registers })
  const denials = new Counter({ name: 'keygate_denials_total', help: 'Requests refused, by reason and status.', labelNames: ['reason', 'status'], registers })
  const lookups = new Counter({ name: 'keygate_cache_lookups_total', help: 'Key cache lookups, by level (local, shared) and result (hit, stale, miss).', labelNames: ['level', 'result'], registers })
  const argon2 = new Histogram({
    name: 'keygate_argon2_duration_seconds',
    help: 'argon2 verifications run for requests, by outcome.',
    labelNames: ['outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers
  })
  const storeErrors = new Counter({ name: 'keygate_store_errors_total', help: 'Failures of the rate-limit store and of the Redis key cache.', labelNames: ['store', 'operation'], registers })

  const listeners: Array<[string, (message: unknown) => void]> = [
    [CHANNELS.verification, (m) => verifications.inc({ outcome: (m as VerificationMessage).outcome })],
    [CHANNELS.denial, (m) => denials.inc({ reason: (m as DenialMessage).reason, status: (m as DenialMessage).statusCode })],
    [CHANNELS.cache, (m) => lookups.inc({ level: (m as CacheMessage).level, result: (m as CacheMessage).result })],
    [CHANNELS.argon2, (m) => argon2.observe({ outcome: (m as Argon2Message).outcome }, (m as Argon2Message).durationMs / 1000)],
    [CHANNELS.storeError, (m) => storeErrors.inc({ store: (m as StoreErrorMessage).store, operation: (m as StoreErrorMessage).operation })]
  ]
  for (const [name, listener] of listeners) diagnosticsChannel.subscribe(name, listener)
  return {
    registry,
    close: () => { for (const [name, listener] of listeners) diagnosticsChannel.unsubscribe(name, listener) }
  }
}

/** GET /metrics in Prometheus' text format, public (`config: { apiKey: false }`); stops listening on close. */
export async function metricsRoute (fastify: FastifyInstance): Promise<void> {
  const metrics = keygateMetrics()
  fastify.addHook('onClose', async () => metrics.close())
  fastify.get('/metrics', { config: { apiKey: false } }, async (_request, reply) => {
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
