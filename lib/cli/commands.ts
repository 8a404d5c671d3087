import { createWriteStream } from 'node:fs'
import { unlink } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import type { Kysely } from 'kysely'
import type { AuditQuery, CreateKeyInput, KeygateApi, UpdateKeyInput } from '../api/keygate-api.js'
import { parseDateTime } from '../api/create-key.schema.js'
import { AUDIT_ACTIONS, type AuditContext } from '../audit/audit-event.js'
import { AUDIT_FORMATS, type AuditFormat, exportStream } from '../audit/audit-export.js'
import { pendingMigrations } from '../db/migrate.js'
import { KEY_TYPES, type KeyType } from '../db/schema.js'
import type { CliIo } from './main.js'
import { keyDetails, keyTable, keyText } from './output.js'
import { UsageError } from './usage.js'

/** The parsed options, by long name. */
export interface Values {
  help?: boolean
  json?: boolean
  'database-url'?: string
  pglite?: string
  schema?: string
  config?: string
  tenant?: string
  name?: string
  for?: string
  prefix?: string
  scopes?: string[]
  plan?: string
  'per-minute'?: string
  'per-hour'?: string
  'no-rate-limit'?: boolean
  'expires-in-days'?: string
  'expires-at'?: string
  'no-expiry'?: boolean
  owner?: string
  'no-owner'?: boolean
  'grace-period'?: string
  format?: string
  since?: string
  until?: string
  action?: string
  target?: string
  output?: string
}

/** What a command runs with, once the database is open and the plugin registered. */
export interface CommandContext {
  api: KeygateApi
  /** The connection, not scoped to the schema. */
  db: Kysely<any>
  schema: string | undefined
  values: Values
  io: CliIo
  /** Names the command line as the actor of every change. */
  audit: AuditContext
}

export interface CommandSpec {
  /** Options besides the database ones. */
  options: readonly string[]
  /** Takes the key's name as its one operand. */
  takesName: boolean
  /** Checks the command line (a UsageError for anything wrong) and returns the work to do. */
  prepare: (values: Values, name: string | undefined, command: string) => (context: CommandContext) => Promise<void>
}

const DAY_MS = 86_400_000
const GRACE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

function json (context: CommandContext, value: unknown): void {
  context.io.stdout.write(JSON.stringify(value) + '\n')
}

function tenantOf (values: Values): { tenant?: string } {
  return values.tenant === undefined ? {} : { tenant: values.tenant }
}

/** A whole number of 1 or more, or a usage error naming the option. */
function positiveInteger (values: Values, option: 'per-minute' | 'per-hour' | 'expires-in-days', command: string): number | undefined {
  const text = values[option]
  if (text === undefined) return undefined
  if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 2_147_483_647) throw new UsageError(`--${option} must be a whole number, 1 or more: ${text}`, command)
  return Number(text)
}

function dateTime (values: Values, option: 'expires-at' | 'since' | 'until', command: string): string | undefined {
  const text = values[option]
  if (text === undefined) return undefined
  if (parseDateTime(text) === undefined) throw new UsageError(`--${option} must be an ISO 8601 date-time with a time zone, e.g. 2027-01-31T00:00:00Z: ${text}`, command)
  return text
}

/** `--scopes a,b --scopes c` as one list. */
function scopesOf (values: Values, command: string): string[] | undefined {
  if (values.scopes === undefined) return undefined
  const scopes = values.scopes.flatMap((text) => text.split(',')).map((scope) => scope.trim())
  if (scopes.some((scope) => scope === '')) throw new UsageError('--scopes takes scopes separated by commas, none empty', command)
  return scopes
}

function rateLimitOf (values: Values, command: string): CreateKeyInput['rateLimit'] | undefined {
  const perMinute = positiveInteger(values, 'per-minute', command)
  const perHour = positiveInteger(values, 'per-hour', command)
  if (perMinute === undefined && perHour === undefined) return undefined
  return { ...(perMinute === undefined ? {} : { perMinute }), ...(perHour === undefined ? {} : { perHour }) }
}

function notBoth (values: Values, command: string, ...options: Array<keyof Values>): void {
  const given = options.filter((option) => values[option] !== undefined)
  if (given.length > 1) throw new UsageError(`give only one of ${given.map((option) => `--${option}`).join(', ')}`, command)
}

const migrate: CommandSpec = {
  options: [],
  takesName: false,
  prepare: () => async (context) => {
    const before = await pendingMigrations(context.db, context.schema)
    await context.api.migrate()
    const after = new Set(await pendingMigrations(context.db, context.schema))
    const applied = before.filter((name) => !after.has(name))
    if (context.values.json === true) return json(context, { applied })
    context.io.stdout.write(applied.length === 0
      ? 'The database is up to date: nothing to migrate.\n'
      : `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}.\n`)
  }
}

const keysCreate: CommandSpec = {
  options: ['tenant', 'name', 'for', 'prefix', 'scopes', 'plan', 'per-minute', 'per-hour', 'expires-in-days', 'expires-at', 'owner'],
  takesName: false,
  prepare: (values, _name, command) => {
    if (values.name === undefined) throw new UsageError('--name is required', command)
    if (values.for !== undefined && !(KEY_TYPES as readonly string[]).includes(values.for)) {
      throw new UsageError(`--for must be one of ${KEY_TYPES.join(', ')}: ${values.for}`, command)
    }
    notBoth(values, command, 'expires-in-days', 'expires-at')
    const scopes = scopesOf(values, command)
    const rateLimit = rateLimitOf(values, command)
    const expiresInDays = positiveInteger(values, 'expires-in-days', command)
    const expiresAt = dateTime(values, 'expires-at', command)
    const input: CreateKeyInput = {
      name: values.name,
      ...tenantOf(values),
      ...(values.for === undefined ? {} : { keyFor: values.for as KeyType }),
      ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
      ...(scopes === undefined ? {} : { scopes }),
      ...(values.plan === undefined ? {} : { plan: values.plan }),
      ...(rateLimit === undefined ? {} : { rateLimit }),
      ...(expiresInDays === undefined ? {} : { expiresInDays }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(values.owner === undefined ? {} : { owner: values.owner })
    }
    return async (context) => {
      const created = await context.api.createKey(input, { audit: context.audit })
      if (context.values.json === true) return json(context, created)
      context.io.stdout.write(`Created key ${created.name} in tenant ${values.tenant ?? 'default'}.\n${keyDetails(created)}${keyText(created)}`)
    }
  }
}

const keysList: CommandSpec = {
  options: ['tenant', 'owner'],
  takesName: false,
  prepare: (values) => async (context) => {
    const keys = await context.api.listKeys({ ...tenantOf(values), ...(values.owner === undefined ? {} : { owner: values.owner }) })
    if (context.values.json === true) return json(context, keys)
    const tenant = values.tenant ?? 'default'
    const whose = values.owner === undefined ? '' : ` owned by ${values.owner}`
    context.io.stdout.write(keys.length === 0 ? `No keys${whose} in tenant ${tenant}.\n` : keyTable(keys))
  }
}

const keysDelete: CommandSpec = {
  options: ['tenant'],
  takesName: true,
  prepare: (values, name) => async (context) => {
    await context.api.deleteKey(name as string, { ...tenantOf(values), audit: context.audit })
    if (context.values.json === true) return json(context, { deleted: name })
    context.io.stdout.write(`Deleted key ${name as string}.\n`)
  }
}

/** `3600`, `90s`, `30m`, `12h`, `7d`: seconds. */
function gracePeriodOf (values: Values, command: string): number | undefined {
  const text = values['grace-period']
  if (text === undefined) return undefined
  const match = /^([0-9]{1,9})([smhd]?)$/.exec(text)
  if (match === null) throw new UsageError(`--grace-period must be seconds, or a whole number with s, m, h or d (90m, 1d): ${text}`, command)
  return Number(match[1]) * (GRACE_UNITS[match[2] === '' ? 's' : match[2] as string] as number)
}

const keysRotate: CommandSpec = {
  options: ['tenant', 'grace-period'],
  takesName: true,
  prepare: (values, name, command) => {
    const grace = gracePeriodOf(values, command)
    return async (context) => {
      const created = await context.api.rotateKey(name as string, grace === undefined ? {} : { gracePeriodSeconds: grace }, { ...tenantOf(values), audit: context.audit })
      if (context.values.json === true) return json(context, created)
      const old = created.rotatingFrom === null ? 'The old text stopped working.' : `The old text ${created.rotatingFrom.identifier} works until ${created.rotatingFrom.sunset}.`
      context.io.stdout.write(`Rotated key ${created.name}. ${old}\n${keyDetails(created)}${keyText(created)}`)
    }
  }
}

const keysUpdate: CommandSpec = {
  options: ['tenant', 'name', 'owner', 'no-owner', 'scopes', 'plan', 'per-minute', 'per-hour', 'no-rate-limit', 'expires-at', 'expires-in-days', 'no-expiry'],
  takesName: true,
  prepare: (values, name, command) => {
    notBoth(values, command, 'owner', 'no-owner')
    notBoth(values, command, 'expires-at', 'expires-in-days', 'no-expiry')
    if (values['no-rate-limit'] === true && (values['per-minute'] !== undefined || values['per-hour'] !== undefined)) {
      throw new UsageError('give --no-rate-limit or --per-minute/--per-hour, not both', command)
    }
    const scopes = scopesOf(values, command)
    const rateLimit = rateLimitOf(values, command)
    const days = positiveInteger(values, 'expires-in-days', command)
    const expiresAt = dateTime(values, 'expires-at', command)
    const changes: UpdateKeyInput = {
      ...(values.name === undefined ? {} : { name: values.name }),
      ...(values.owner === undefined ? {} : { owner: values.owner }),
      ...(values['no-owner'] === true ? { owner: null } : {}),
      ...(scopes === undefined ? {} : { scopes }),
      ...(values.plan === undefined ? {} : { plan: values.plan }),
      ...(rateLimit === undefined ? {} : { rateLimit }),
      ...(values['no-rate-limit'] === true ? { rateLimit: null } : {}),
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(values['no-expiry'] === true ? { expiresAt: null } : {})
    }
    if (days === undefined && Object.keys(changes).length === 0) throw new UsageError('nothing to change: give at least one option', command)
    return async (context) => {
      // The API takes a date on update; days count from the moment it runs.
      const expiry = days === undefined ? {} : { expiresAt: new Date(Date.now() + days * DAY_MS).toISOString() }
      const key = await context.api.updateKey(name as string, { ...changes, ...expiry }, { ...tenantOf(values), audit: context.audit })
      if (context.values.json === true) return json(context, key)
      context.io.stdout.write(`Updated key ${key.name}.\n${keyDetails(key)}`)
    }
  }
}

const auditExport: CommandSpec = {
  options: ['tenant', 'format', 'since', 'until', 'action', 'target', 'output'],
  takesName: false,
  prepare: (values, _name, command) => {
    const format = values.format ?? 'ndjson'
    if (!(AUDIT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be ${AUDIT_FORMATS.join(' or ')}: ${format}`, command)
    if (values.action !== undefined && !(AUDIT_ACTIONS as readonly string[]).includes(values.action)) {
      throw new UsageError(`--action must be one of ${AUDIT_ACTIONS.join(', ')}: ${values.action}`, command)
    }
    if (values.output === '') throw new UsageError('--output needs a file name', command)
    const since = dateTime(values, 'since', command)
    const until = dateTime(values, 'until', command)
    const query: AuditQuery = {
      ...tenantOf(values),
      ...(since === undefined ? {} : { since }),
      ...(until === undefined ? {} : { until }),
      ...(values.action === undefined ? {} : { action: values.action }),
      ...(values.target === undefined ? {} : { target: values.target })
    }
    return async (context) => {
      let count = 0
      const counted = (async function * () {
        for await (const event of context.api.exportAuditEvents(query)) {
          count++
          yield event
        }
      })()
      const text = exportStream(counted, format as AuditFormat)
      const file = values.output
      if (file === undefined) {
        // The standard output stays open for whoever runs this in-process; a reader that stops
        // early (| head) just ends the export.
        try {
          await pipeline(text, context.io.stdout, { end: false })
        } catch (error) {
          if ((error as { code?: unknown }).code !== 'EPIPE') throw error
        }
        return
      }
      try {
        await pipeline(text, createWriteStream(file))
      } catch (error) {
        // No half-written export left behind to be mistaken for a whole one.
        await unlink(file).catch(() => {})
        throw error
      }
      if (context.values.json === true) return json(context, { events: count, format, output: file })
      context.io.stdout.write(`Wrote ${count} audit event${count === 1 ? '' : 's'} (${format}) to ${file}.\n`)
    }
  }
}

export const COMMANDS: Record<string, CommandSpec> = {
  migrate,
  'keys create': keysCreate,
  'keys list': keysList,
  'keys delete': keysDelete,
  'keys rotate': keysRotate,
  'keys update': keysUpdate,
  'audit export': auditExport
}
