import { readFile } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import type { Kysely } from 'kysely'
import { pendingMigrations } from '../db/migrate.js'
import { isUnavailableError } from '../db/unavailable.js'
import { errorBody, isKeygateError } from '../errors.js'
import keygate from '../index.js'
import type { KeygateOptions } from '../options.js'
import { COMMANDS, type CommandContext, type Values } from './commands.js'
import { type DatabaseTarget, messageOf, openConnection } from './connection.js'
import { AUDIT_HELP, COMMAND_HELP, KEYS_HELP, TOP_HELP } from './help.js'
import { CommandError, UsageError } from './usage.js'

export interface CliIo {
  stdout: Writable
  stderr: Writable
  env: Record<string, string | undefined>
}

export const EXIT_OK = 0
export const EXIT_ERROR = 1
export const EXIT_USAGE = 2

// Every option of every command, so one strict parse reads any command line; which command takes
// which is checked after (see COMMANDS).
const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  'database-url': { type: 'string' },
  pglite: { type: 'string' },
  schema: { type: 'string' },
  config: { type: 'string' },
  tenant: { type: 'string' },
  name: { type: 'string' },
  for: { type: 'string' },
  prefix: { type: 'string' },
  scopes: { type: 'string', multiple: true },
  plan: { type: 'string' },
  'per-minute': { type: 'string' },
  'per-hour': { type: 'string' },
  'no-rate-limit': { type: 'boolean' },
  'expires-in-days': { type: 'string' },
  'expires-at': { type: 'string' },
  'no-expiry': { type: 'boolean' },
  owner: { type: 'string' },
  'no-owner': { type: 'boolean' },
  'grace-period': { type: 'string' },
  format: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  action: { type: 'string' },
  target: { type: 'string' },
  output: { type: 'string' }
} as const

/** Options every command that opens the database takes. */
const DATABASE_OPTIONS = ['help', 'json', 'database-url', 'pglite', 'schema', 'config']

/** The plugin options a --config file may set: those that shape what keys may be. */
const CONFIG_KEYS = ['scopes', 'plans', 'defaultPlan', 'prefixes', 'maxKeys', 'maxLifetimeDays', 'rotateAfterDays', 'maxGracePeriodSeconds', 'argon2']

/** Who the audit log names for what the command line changes. */
export const CLI_ACTOR = Object.freeze({ system: 'cli' })

/**
 * Runs one command line (without `node` and the script) and resolves to its exit code: 0 done,
 * 1 failed, 2 a usage error. Writes results to `io.stdout` and one-line messages to `io.stderr`;
 * never throws.
 */
export async function run (argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const parsed = parse(argv)
    if (parsed.help !== undefined) {
      // Asked for, it is the answer; given for a command line that names no command, it is an error.
      if (parsed.helpAsked) {
        io.stdout.write(parsed.help)
        return EXIT_OK
      }
      io.stderr.write(parsed.help)
      return EXIT_USAGE
    }
    await execute(parsed, io)
    return EXIT_OK
  } catch (error) {
    if (error instanceof UsageError) {
      const help = error.command === '' ? 'keygate --help' : `keygate ${error.command} --help`
      io.stderr.write(`keygate: ${error.message} (see ${help})\n`)
      return EXIT_USAGE
    }
    io.stderr.write(`keygate: ${failure(error)}\n`)
    return isUsageFromPlugin(error) ? EXIT_USAGE : EXIT_ERROR
  }
}

interface Parsed {
  command: string
  /** Set when the answer is a help text. */
  help?: string
  /** The help was asked for (--help), rather than given for a missing command. */
  helpAsked?: boolean
  values: Values
  /** The key name of delete, rotate and update. */
  name?: string
}

function parse (argv: readonly string[]): Parsed {
  if (argv.length === 0) return { command: '', help: TOP_HELP, values: {} }
  let result
  try {
    result = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true, tokens: true })
  } catch (error) {
    throw new UsageError(parseErrorText(error), commandOf(argv))
  }
  const { values, positionals, tokens } = result
  const [first, second, ...rest] = positionals
  if (first === undefined) {
    if (values.help === true && tokens.length === 1) return { command: '', help: TOP_HELP, helpAsked: true, values: {} }
    throw new UsageError('missing command', '')
  }
  let command: string
  let operands: string[]
  if (first === 'keys' || first === 'audit') {
    if (second === undefined) {
      const help = first === 'keys' ? KEYS_HELP : AUDIT_HELP
      if (values.help === true) return { command: first, help, helpAsked: true, values: {} }
      if (tokens.length === 1) return { command: first, help, values: {} }
      throw new UsageError(`missing subcommand of ${first}`, first)
    }
    command = `${first} ${second}`
    operands = rest
    if (COMMANDS[command] === undefined) throw new UsageError(`unknown command '${command}'`, first)
  } else {
    command = first
    operands = second === undefined ? [] : [second, ...rest]
    if (COMMANDS[command] === undefined) throw new UsageError(`unknown command '${first}'`, '')
  }
  const spec = COMMANDS[command]!
  if (values.help === true) return { command, help: COMMAND_HELP[command], helpAsked: true, values: {} }
  const allowed = new Set([...DATABASE_OPTIONS, ...spec.options])
  const seen = new Set<string>()
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    if (!allowed.has(token.name)) throw new UsageError(`${command} takes no option ${token.rawName}`, command)
    const multiple = (OPTIONS[token.name as keyof typeof OPTIONS] as { multiple?: boolean }).multiple === true
    if (seen.has(token.name) && !multiple) throw new UsageError(`${token.rawName} given twice`, command)
    seen.add(token.name)
  }
  let name: string | undefined
  if (spec.takesName) {
    if (operands.length === 0) throw new UsageError(`missing the key name: keygate ${command} <name>`, command)
    name = operands.shift()
  }
  if (operands.length > 0) throw new UsageError(`unexpected argument '${operands[0]}'`, command)
  return { command, values: values as Values, ...(name === undefined ? {} : { name }) }
}

/** The command words at the start of a command line that did not parse, for the help it points to. */
function commandOf (argv: readonly string[]): string {
  const [first, second] = argv
  if (first === 'keys' || first === 'audit') return second !== undefined && COMMANDS[`${first} ${second}`] !== undefined ? `${first} ${second}` : first
  return first !== undefined && COMMANDS[first] !== undefined ? first : ''
}

/** node:util's parse errors, as one short line. */
function parseErrorText (error: unknown): string {
  const message = messageOf(error)
  const unknown = /^Unknown option '([^']+)'/.exec(message)
  if (unknown !== null) return `unknown option ${unknown[1]}`
  const missing = /^Option '(-[^ ]*) <value>' argument missing/.exec(message) ?? /^Option '(?:-[a-z], )?(--[^ ]+) <value>' argument missing/.exec(message)
  if (missing !== null) return `${missing[1]} needs a value`
  const noValue = /^Option '(?:-[a-z], )?(--[^ ']+)' does not take an argument/.exec(message)
  if (noValue !== null) return `${noValue[1]} takes no value`
  return message.split('. ')[0] as string
}

async function execute (parsed: Parsed, io: CliIo): Promise<void> {
  const spec = COMMANDS[parsed.command]!
  const { values } = parsed
  // Everything the command line says is checked before the database is opened.
  const prepared = spec.prepare(values, parsed.name, parsed.command)
  const target = databaseTarget(values, io.env, parsed.command)
  const config = await readConfig(values.config, parsed.command)
  const connection = await openConnection(target)
  try {
    // Fastify never listens here: the plugin is the programmatic API. Its logger stays off, so
    // stdout carries the answer only, and no key text can reach a log.
    const app = Fastify({ logger: false })
    try {
      await app.register(keygate, { ...config, db: connection.db, schema: values.schema, routes: false, migrate: false })
      await app.ready()
      if (parsed.command !== 'migrate') await requireMigrated(connection.db, values.schema)
      const context: CommandContext = { api: app.keygate, db: connection.db, schema: values.schema, values, io, audit: { actor: CLI_ACTOR } }
      await prepared(context)
    } finally {
      // After a failed start close may fail the same way; what the user sees is the first error.
      await app.close().catch(() => {})
    }
  } finally {
    await connection.close()
  }
}

function databaseTarget (values: Values, env: CliIo['env'], command: string): DatabaseTarget {
  if (values.pglite !== undefined) {
    if (values['database-url'] !== undefined) throw new UsageError('give --database-url or --pglite, not both', command)
    if (values.pglite === '') throw new UsageError('--pglite needs a folder', command)
    return { pglite: values.pglite }
  }
  const url = values['database-url'] ?? env.DATABASE_URL
  if (url === undefined || url === '') throw new UsageError('no database: set DATABASE_URL, or give --database-url <url> or --pglite <dir>', command)
  return { url }
}

async function readConfig (file: string | undefined, command: string): Promise<Partial<KeygateOptions>> {
  if (file === undefined) return {}
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read --config ${file}: ${(error as { code?: string }).code ?? messageOf(error)}`, command)
  }
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`--config ${file} is not JSON: ${messageOf(error)}`, command)
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError(`--config ${file} must hold a JSON object`, command)
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.includes(key)) throw new UsageError(`--config ${file}: unknown option "${key}" (allowed: ${CONFIG_KEYS.join(', ')})`, command)
  }
  return config as Partial<KeygateOptions>
}

/** The commands other than migrate leave the schema alone: a database that needs migrating is refused. */
async function requireMigrated (db: Kysely<any>, schema: string | undefined): Promise<void> {
  const pending = await pendingMigrations(db, schema)
  if (pending.length === 0) return
  const where = schema === undefined ? 'this database' : `schema ${schema}`
  throw new CommandError(`${where} needs migrating (${pending.length} pending: ${pending.join(', ')}); run keygate migrate first`)
}

/** An option the plugin refused (a bad --schema or --config value): the command line is wrong. */
function isUsageFromPlugin (error: unknown): boolean {
  return isKeygateError(error) && error.code === 'FST_KEYGATE_INVALID_OPTION'
}

/** One line saying what went wrong; never a stack trace, never a connection string. */
function failure (error: unknown): string {
  if (error instanceof CommandError) return error.message
  if (isKeygateError(error)) {
    if (error.code === 'FST_KEYGATE_SERVICE_UNAVAILABLE' && error.cause !== undefined) return unreachable(error.cause)
    return `${error.message} (${errorBody(error).error})`
  }
  if (isUnavailableError(error)) return unreachable(error)
  const code = (error as { code?: unknown }).code
  // SQLSTATE: a server that answered, and refused (a wrong password, a database that does not exist).
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return `database error: ${messageOf(error)} (SQLSTATE ${code})`
  return messageOf(error)
}

function unreachable (error: unknown): string {
  return `cannot reach the database: ${messageOf(error)}`
}
