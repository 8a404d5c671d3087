import { Readable } from 'node:stream'
import type { AuditEvent } from './audit-event.js'

export const AUDIT_FORMATS = ['ndjson', 'csv'] as const
export type AuditFormat = typeof AUDIT_FORMATS[number]

export const CONTENT_TYPES: Record<AuditFormat, string> = {
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8'
}

const CSV_COLUMNS = ['id', 'at', 'action', 'actor', 'target_identifier', 'target_name', 'target_from', 'ip', 'request_id'] as const

// OWASP's list: a spreadsheet reads a cell starting with these as a formula.
const FORMULA_START = /^[=+\-@\t\r]/
const NEEDS_QUOTES = /[",\r\n]/

/** One CSV cell: neutralised against formula injection, then quoted as RFC 4180 asks. */
function csvCell (value: string | null | undefined): string {
  if (value === null || value === undefined) return ''
  const safe = FORMULA_START.test(value) ? `'${value}` : value
  return NEEDS_QUOTES.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe
}

function csvRow (event: AuditEvent): string {
  const cells = [
    event.id,
    event.at,
    event.action,
    JSON.stringify(event.actor),
    event.target?.identifier,
    event.target?.name,
    event.target?.from,
    event.ip,
    event.requestId
  ]
  // CRLF line ends, as RFC 4180 has them.
  return cells.map(csvCell).join(',') + '\r\n'
}

/** The events as a stream of text, read from `events` as the client takes it (backpressure keeps memory flat). */
export function exportStream (events: AsyncIterable<AuditEvent>, format: AuditFormat): Readable {
  return Readable.from((async function * () {
    if (format === 'csv') yield CSV_COLUMNS.join(',') + '\r\n'
    for await (const event of events) yield format === 'csv' ? csvRow(event) : JSON.stringify(event) + '\n'
  })(), { objectMode: false })
}
