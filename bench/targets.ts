// The targets of issue 16, each computed from the run that produced the table: never asserted in a
// timed test, only reported as met or missed.
import { median, medianRps, type Scenario, unexpected } from './scenario.js'

type Find = (id: string, connections: number) => Scenario | undefined

interface Target {
  text: string
  /** The scenario measured and the one it is compared with (at the same connection count). */
  id: string
  against: string
  atLeast: number
  connections: number[]
  /** Also: the measured server left under this share of its core idle (pinned mode only). */
  idleBelow?: number
}

const fmt = (n: number): string => n.toFixed(2)
const pct = (n: number): string => `${(n * 100).toFixed(1)} %`

export function targetsSection (find: Find, options: { connections: number[], stormConnections: number[], pinned: boolean }): string[] {
  const { connections, stormConnections, pinned } = options
  const targets: Target[] = [
    { text: 'fastify-keygate in-process ≥ 0.95 × @fastify/bearer-auth', id: 'keygate', against: 'bearer-auth', atLeast: 0.95, connections },
    { text: 'fastify-keygate in-process ≥ 1.2 × bearer-auth + rate-limit (local)', id: 'keygate', against: 'bearer-auth-rate-limit-local', atLeast: 1.2, connections },
    { text: 'fastify-keygate with Redis ≥ 1.3 × bearer-auth + rate-limit (Redis), server idle under 5 %', id: 'keygate-redis', against: 'bearer-auth-rate-limit', atLeast: 1.3, connections, idleBelow: 0.05 },
    { text: '10,000 keys in rotation, in-process ≥ 0.8 × one key in-process', id: 'rotation', against: 'keygate', atLeast: 0.8, connections },
    { text: '10,000 keys in rotation, Redis ≥ 0.8 × one key with Redis', id: 'rotation-redis', against: 'keygate-redis', atLeast: 0.8, connections },
    { text: 'wrong-secret storm R ≥ 0.8', id: 'storm-wrong-secret', against: 'bare', atLeast: 0.8, connections: stormConnections },
    { text: 'bad-checksum storm R ≥ 0.9', id: 'storm-bad-checksum', against: 'bare', atLeast: 0.9, connections: stormConnections }
  ]
  const rows: string[] = []
  for (const target of targets) {
    for (const n of target.connections) {
      const a = find(target.id, n)
      const b = find(target.against, n)
      if (a === undefined || b === undefined) {
        rows.push(`| ${target.text} | ${n} | not run (no Redis) | — |`)
        continue
      }
      const ratio = medianRps(a) / medianRps(b)
      const perRound = a.runs.map((run, i) => run.rps / (b.runs[i]?.rps ?? NaN))
      const bare = find('bare', n)
      const r = (s: Scenario): string => bare === undefined ? '' : fmt(medianRps(s) / medianRps(bare))
      let measured = `${fmt(ratio)} (rounds ${fmt(Math.min(...perRound))} – ${fmt(Math.max(...perRound))})`
      if (target.against !== 'bare') measured += `; R ${r(a)} against ${r(b)}`
      let met = ratio >= target.atLeast
      let verdict = ''
      if (target.idleBelow !== undefined) {
        const idle = median(a.runs.map((run) => run.idle))
        if (pinned) {
          measured += `; server idle ${pct(idle)}`
          met &&= idle < target.idleBelow
        } else {
          measured += '; server idle not measured (unpinned)'
          verdict = ', idle not measured'
        }
      }
      const wrong = unexpected(a) + unexpected(b)
      if (wrong > 0) measured += `; **responses not as expected: ${wrong}**`
      rows.push(`| ${target.text} | ${n} | ${measured} | ${met && wrong === 0 ? `met${verdict}` : '**missed**'} |`)
    }
  }
  for (const n of connections) {
    const keygate = find('keygate', n)
    const handRolled = find('hand-rolled', n)
    if (keygate !== undefined && handRolled !== undefined) rows.push(`| fastify-keygate in-process against the hand-rolled check (no target; ratio shown) | ${n} | ${fmt(medianRps(keygate) / medianRps(handRolled))} | — |`)
  }
  for (const n of stormConnections) {
    const forged = find('storm-forged', n)
    const bare = find('bare', n)
    if (forged !== undefined && bare !== undefined) rows.push(`| forged-checksum storm (no target; R shown) | ${n} | R ${fmt(medianRps(forged) / medianRps(bare))} | — |`)
  }
  return [
    '## Targets (issue 16)',
    '',
    'Each ratio is of median req/s, both scenarios from this run at the same connection count; "rounds" is the same ratio within each interleaved round, lowest – highest. R is against bare Fastify as in the table.',
    '',
    '| target | connections | measured | |',
    '|---|---:|---|---|',
    ...rows,
    ''
  ]
}
