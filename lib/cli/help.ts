// The help texts: `keygate --help`, and `--help` on every command.

const DATABASE_OPTIONS = `Database (every command but help):
  --database-url <url>   PostgreSQL connection string (default: the DATABASE_URL variable)
  --pglite <dir>         an embedded PGlite database kept in <dir> instead (needs the
                         optional package @electric-sql/pglite); wins over DATABASE_URL
  --schema <name>        PostgreSQL schema of the keygate tables (default: the search_path)
  --config <file.json>   plugin options the host app uses: scopes, plans, defaultPlan,
                         prefixes, maxKeys, maxLifetimeDays, rotateAfterDays,
                         maxGracePeriodSeconds, argon2
  --json                 machine-readable output on stdout
  -h, --help             this help`

export const TOP_HELP = `Usage: keygate <command> [options]

Manage fastify-keygate API keys from the command line.

Commands:
  migrate          create or update the keygate tables
  keys create      create a key and print it, once
  keys list        list the live keys of a tenant
  keys delete      delete a key (running servers refuse it within their cacheTtl)
  keys rotate      give a key a new text and print it, once
  keys update      change a key's name, owner, scopes, plan, limits or expiry
  audit export     write the audit log as NDJSON or CSV

Run keygate <command> --help for its options.

Exit codes: 0 done, 1 failed (database unreachable, key not found, refused by
keygate), 2 the command line is wrong (unknown command or option, bad or missing value).
`

export const KEYS_HELP = `Usage: keygate keys <create|list|delete|rotate|update> [options]

  keys create --name <name> [options]   create a key and print it, once
  keys list [options]                   list the live keys of a tenant
  keys delete <name> [options]          delete a key
  keys rotate <name> [options]          give a key a new text and print it, once
  keys update <name> [options]          change a key

Run keygate keys <subcommand> --help for its options.
`

export const AUDIT_HELP = `Usage: keygate audit export [options]

  audit export   write the audit log as NDJSON or CSV

Run keygate audit export --help for its options.
`

export const COMMAND_HELP: Record<string, string> = {
  migrate: `Usage: keygate migrate [options]

Creates the keygate tables, or brings them up to date. Safe to run again, and from
several places at once. The other commands refuse a database that needs it.

${DATABASE_OPTIONS}
`,
  'keys create': `Usage: keygate keys create --name <name> [options]

Creates a key and prints it once, on stdout. Store it now: it is never shown again.

  --name <name>            the key's name, unique among the tenant's live keys (required)
  --tenant <tenant>        the tenant the key belongs to (default: default)
  --for <type>             GENERIC, GCP, AWS or ONBOARDING (default: GENERIC)
  --prefix <prefix>        one of the configured prefixes (default: the first, metlo)
  --scopes <a,b,...>       permissions, comma-separated or repeated (default: *)
  --plan <plan>            one of the configured plans (default: free)
  --per-minute <n>         the key's own limit per minute, in place of its plan's
  --per-hour <n>           the key's own limit per hour, in place of its plan's
  --expires-in-days <n>    the key stops working n days from now
  --expires-at <date>      the key stops working then (ISO 8601 date-time with a zone)
  --owner <user>           the host's user id of its owner (default: none, a service account)

${DATABASE_OPTIONS}
`,
  'keys list': `Usage: keygate keys list [options]

Lists the tenant's live keys, oldest first. Never the key texts.

  --tenant <tenant>   the tenant (default: default)
  --owner <user>      only the keys of this owner

${DATABASE_OPTIONS}
`,
  'keys delete': `Usage: keygate keys delete <name> [options]

Deletes the key with this name: it stops working at once (on running servers, within
their cache time, 5 s by default).

  --tenant <tenant>   the tenant (default: default)

${DATABASE_OPTIONS}
`,
  'keys rotate': `Usage: keygate keys rotate <name> [options]

Gives the key a new text, printed once on stdout, with all its settings. The old text
works for the grace period, then stops.

  --tenant <tenant>       the tenant (default: default)
  --grace-period <time>   how long the old text keeps working: seconds, or a number
                          with s, m, h or d (3600, 90m, 1d; default 0: it stops at once)

${DATABASE_OPTIONS}
`,
  'keys update': `Usage: keygate keys update <name> [options]

Changes the key with this name; it keeps its text. Give at least one change.

  --tenant <tenant>        the tenant (default: default)
  --name <new name>        rename it
  --owner <user>           give it an owner
  --no-owner               make it a service account (no owner)
  --scopes <a,b,...>       replace its permissions, comma-separated or repeated
  --plan <plan>            move it to another plan
  --per-minute <n>         its own limit per minute
  --per-hour <n>           its own limit per hour
  --no-rate-limit          drop its own limits: its plan's apply
  --expires-at <date>      a new expiry (ISO 8601 date-time with a zone)
  --expires-in-days <n>    a new expiry, n days from now
  --no-expiry              it never expires

${DATABASE_OPTIONS}
`,
  'audit export': `Usage: keygate audit export [options]

Writes the tenant's audit events, newest first, to stdout or a file.

  --tenant <tenant>    the tenant (default: default)
  --format <format>    ndjson (default) or csv
  --since <date>       events at or after this ISO 8601 date-time
  --until <date>       events before this ISO 8601 date-time
  --action <action>    key.created, key.updated, key.rotated, key.deleted, key.expired
                       or access.denied
  --target <key>       events about this key (identifier or name)
  --output <file>      write to this file (replaced if it exists) instead of stdout

${DATABASE_OPTIONS}
`
}
