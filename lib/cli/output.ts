import type { CreatedKey, KeyInfo } from '../api/keygate-api.js'
import type { Limits } from '../ratelimit/plans.js'

// Human output: short lines a person reads. Machines use --json, which prints the API's own answers.

function limitsText (limits: Limits): string {
  const parts = []
  if (limits.perMinute !== null) parts.push(`${limits.perMinute}/min`)
  if (limits.perHour !== null) parts.push(`${limits.perHour}/h`)
  return parts.length === 0 ? 'unlimited' : parts.join(', ')
}

function creditsText (key: KeyInfo): string {
  if (key.credits === null) return 'none'
  const refill = key.credits.refill
  return `${key.credits.remaining} left` + (refill === null ? '' : `, refilled to ${refill.amount} each ${refill.interval}`)
}

/** A key's settings, one per line, indented under the line that names it. */
export function keyDetails (key: KeyInfo): string {
  const rows: Array<[string, string]> = [
    ['identifier', key.identifier],
    ['for', key.for],
    ['scopes', key.scopes.join(', ')],
    ['plan', `${key.plan} (${limitsText(key.limits)})`],
    ['owner', key.owner ?? 'none (service account)'],
    ['expires', key.expires ?? 'never'],
    ['created', key.created]
  ]
  if (key.credits !== null) rows.push(['credits', creditsText(key)])
  if (key.rotatingFrom !== null) rows.push(['old text', `${key.rotatingFrom.identifier} works until ${key.rotatingFrom.sunset}`])
  return rows.map(([label, value]) => `  ${label.padEnd(11)}${value}\n`).join('')
}

/** The new key's text, on its own last line so it is easy to copy. */
export function keyText (created: CreatedKey): string {
  return `\nAPI key (shown once, store it now):\n${created.apiKey}\n`
}

/** The keys as a table, a header row first. */
export function keyTable (keys: readonly KeyInfo[]): string {
  const header = ['NAME', 'IDENTIFIER', 'FOR', 'SCOPES', 'PLAN', 'OWNER', 'EXPIRES', 'LAST USED']
  const rows = keys.map((key) => [
    key.name,
    key.identifier,
    key.for,
    key.scopes.join(','),
    key.plan,
    key.owner ?? '-',
    key.expires ?? 'never',
    key.lastUsed ?? 'never'
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] as string).length)))
  return [header, ...rows]
    .map((row) => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i] as number)).join('  ') + '\n')
    .join('')
}
