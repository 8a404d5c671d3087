import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { cliDatabase, keygateCli, occurrences } from '../helpers/cli.js'
import { usingPostgres } from '../helpers/database.js'

// PGlite starts anew for every command (seconds each, more on a busy machine): this file gets more
// time than the suite's default.
t.setTimeout(360_000)

interface Event {
  id: string
  at: string
  action: string
  actor: unknown
  target: { identifier: string | null, name: string | null, from?: string } | null
  ip: string | null
  requestId: string | null
}

/** A CSV cell as RFC 4180 quotes it, for the cells these events have. */
function cell (text: string | null | undefined): string {
  if (text === null || text === undefined) return ''
  return /[",]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

for (const backend of ['pglite', 'postgres']) {
  t.test(`audit export on ${backend}: NDJSON and CSV, to stdout or a file, filtered`, { skip: backend === 'postgres' && !usingPostgres ? 'needs DATABASE_URL' : false }, async (t) => {
    const database = await cliDatabase(t, backend)
    const cli = async (...argv: string[]) => await keygateCli([...argv, ...database.args])
    t.equal((await cli('migrate')).code, 0)
    const created = await cli('keys', 'create', '--name', 'a', '--json')
    const rotated = await cli('keys', 'rotate', 'a', '--grace-period', '60', '--json')
    t.equal((await cli('keys', 'update', 'a', '--scopes', 'query')).code, 0)
    const other = await cli('keys', 'create', '--name', 'b', '--json')
    t.equal((await cli('keys', 'delete', 'b')).code, 0)
    const keys = [created, rotated, other].map((result) => JSON.parse(result.stdout).apiKey as string)
    const [a1, a2, b] = [created, rotated, other].map((result) => JSON.parse(result.stdout).identifier as string)

    // NDJSON on stdout: every event, newest first, the command line as their actor, no key text.
    const ndjson = await cli('audit', 'export')
    t.equal(ndjson.code, 0)
    t.equal(ndjson.stderr, '')
    t.equal(ndjson.stdout.endsWith('\n'), true)
    const events = ndjson.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as Event)
    t.same(events.map(({ action, actor, target, ip, requestId }) => ({ action, actor, target, ip, requestId })), [
      { action: 'key.deleted', actor: { system: 'cli' }, target: { identifier: b, name: 'b' }, ip: null, requestId: null },
      { action: 'key.created', actor: { system: 'cli' }, target: { identifier: b, name: 'b' }, ip: null, requestId: null },
      { action: 'key.updated', actor: { system: 'cli' }, target: { identifier: a2, name: 'a' }, ip: null, requestId: null },
      { action: 'key.rotated', actor: { system: 'cli' }, target: { identifier: a2, name: 'a', from: a1 }, ip: null, requestId: null },
      { action: 'key.created', actor: { system: 'cli' }, target: { identifier: a1, name: 'a' }, ip: null, requestId: null }
    ])
    t.equal(ndjson.stdout, events.map((event) => JSON.stringify(event) + '\n').join(''))
    for (const key of keys) t.equal(occurrences(ndjson.stdout, key), 0)

    // CSV to a file: the header, then one CRLF line per event; stdout says what was written.
    const file = join(database.dir, 'audit.csv')
    t.same(await cli('audit', 'export', '--format', 'csv', '--output', file, '--json'), {
      code: 0,
      stdout: `{"events":5,"format":"csv","output":${JSON.stringify(file)}}\n`,
      stderr: ''
    })
    const actor = '"{""system"":""cli""}"'
    t.equal(await readFile(file, 'utf8'), [
      'id,at,action,actor,target_identifier,target_name,target_from,ip,request_id',
      ...events.map((event) => [event.id, event.at, event.action, actor, cell(event.target?.identifier), cell(event.target?.name), cell(event.target?.from), '', ''].join(','))
    ].join('\r\n') + '\r\n')
    t.same(await cli('audit', 'export', '--output', file), { code: 0, stdout: `Wrote 5 audit events (ndjson) to ${file}.\n`, stderr: '' })
    t.equal(await readFile(file, 'utf8'), ndjson.stdout, 'the file is replaced')

    // Filters.
    const onlyCreated = await cli('audit', 'export', '--action', 'key.created')
    t.same(onlyCreated.stdout.trimEnd().split('\n').map((line) => JSON.parse(line).target.name), ['b', 'a'])
    const rotatedAt = (events[3] as Event).at
    const since = await cli('audit', 'export', '--since', rotatedAt, '--target', 'a')
    t.same(since.stdout.trimEnd().split('\n').map((line) => JSON.parse(line).action), ['key.updated', 'key.rotated'])
    const until = await cli('audit', 'export', '--until', rotatedAt)
    t.same(until.stdout.trimEnd().split('\n').map((line) => JSON.parse(line).action), ['key.created'])
    t.same(await cli('audit', 'export', '--tenant', 'acme'), { code: 0, stdout: '', stderr: '' }, 'another tenant has no events')
    t.same(await cli('audit', 'export', '--tenant', 'acme', '--format', 'csv'), {
      code: 0,
      stdout: 'id,at,action,actor,target_identifier,target_name,target_from,ip,request_id\r\n',
      stderr: ''
    })
  })
}
