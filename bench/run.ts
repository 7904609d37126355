/**
 * `npm run bench`: runs every target of the performance issue, one child
 * process per target (`node --expose-gc dist/bench/<target>.js`), prints
 * the table and writes it, with every raw sample, to bench/results.json.
 *
 * Environment: BENCH_ROUNDS (measured rounds per target, at least 5;
 * default 9), BENCH_ONLY (comma-separated target files, e.g. "sync,news").
 */
import { spawnSync } from 'child_process'
import { writeFileSync } from 'fs'
import { cpus, loadavg } from 'os'
import { join } from 'path'
import { ROUNDS } from './common'
import type { Row } from './common'

const TARGETS = ['sync', 'set', 'news', 'sources', 'steady', 'memory', 'wire']

function runTarget(name: string): Row[] {
  const file = join(__dirname, `${name}.js`)
  const r = spawnSync(process.execPath, ['--expose-gc', file], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: process.env,
  })
  if (r.status !== 0) {
    process.stderr.write(r.stderr)
    throw new Error(`bench target ${name} failed with status ${r.status}`)
  }
  const last = r.stdout.trim().split('\n').pop() as string
  return JSON.parse(last) as Row[]
}

function fmt(x: number | null, unit: string): string {
  if (x === null) return '-'
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2
  return `${x.toFixed(digits)} ${unit}`
}

function table(rows: Row[]): string {
  const head = ['target', 'ours', 'limit', 'peer', 'ratio', 'goal', 'met']
  const body = rows.map((r) => [
    r.target,
    fmt(r.ours, r.unit),
    fmt(r.limit, r.unit),
    fmt(r.peer, r.unit),
    `${r.ratio.toFixed(2)}x`,
    r.goal,
    r.met ? 'yes' : 'NO',
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  const sep = '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|'
  return [line(head), sep, ...body.map(line)].join('\n')
}

function main(): void {
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim())
  const targets = only === undefined ? TARGETS : TARGETS.filter((t) => only.includes(t))
  const started = new Date().toISOString()
  const load = loadavg()
  const rows: Row[] = []
  for (const t of targets) {
    process.stderr.write(`bench: ${t}...\n`)
    rows.push(...runTarget(t))
  }
  const out = {
    started,
    finished: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadavg: { start: load, end: loadavg() },
    rounds: ROUNDS,
    statistic: 'median of the measured rounds (after one warm-up round); ratios are of medians from the same process',
    columns: {
      ours: 'simple-scuttle',
      limit: 'the baseline: the stream limit for 1-2, the small case for 3-6 (see "what")',
      peer: 'scuttlebutt (npm, dominictarr) doing the same work',
      ratio: 'ours / limit; for "vs peer" rows, peer / ours',
    },
    rows,
  }
  writeFileSync(join(__dirname, '..', '..', 'bench', 'results.json'), JSON.stringify(out, null, 2) + '\n')
  process.stdout.write(table(rows) + '\n')
  process.stdout.write(`\n${rows.filter((r) => r.met).length}/${rows.length} rows met; load average at start ${load.map((l) => l.toFixed(1)).join(' ')}; details in bench/results.json\n`)
}

main()
