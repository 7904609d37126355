/**
 * `simple-scuttle simulate [options]`: the paper's experiment on real Gossip
 * streams. Prints a table (or one JSON object with --json), can write an SVG
 * plot, and shows a progress bar on stderr for runs longer than a second.
 */
import { accessSync, constants, statSync, writeFileSync } from 'fs'
import { dirname, resolve } from 'path'
import { readArgs, UsageError } from './args'
import { ORDERS, Simulation, plot, simDefaults, simOptions } from '../lib/sim'
import type { Line, RoundStats, SimOptions, SimOrder, SimResult } from '../lib/sim'

export const usage = `usage: simple-scuttle simulate [options]

  --nodes N          participants (default ${simDefaults.nodes})
  --keys K           keys per participant (default ${simDefaults.keys})
  --mtu M            deltas per exchange and direction (default ${simDefaults.mtu})
  --rounds R         rounds to run (default ${simDefaults.rounds})
  --rate R|FROM:TO   updates per node per round, or a ramp over the run
                     (default ${(simDefaults.rate as readonly number[]).join(':')})
  --order O          depth | breadth | precise-oldest | precise-newest | all
                     (default ${simDefaults.order})
  --flow-control     AIMD flow control on every node (paper section 4)
  --seed S           seed of every random choice (default ${simDefaults.seed})
  --json             print one JSON object (options, per-round series, summary;
                     with --order all: {runs: [one such object per order]})
  --svg FILE         write a plot of staleness over rounds
  --help             this text

Staleness is in rounds. The defaults ramp the offered load from 0 to 4
updates per node per round; 128 nodes with mtu 100 deliver at most about 1.6,
and staleness stays bounded up to about 1.5 (see docs/simulator.md).
`

export interface CliOptions {
  sim: Partial<SimOptions>
  orders: SimOrder[]
  json: boolean
  svg?: string
  help: boolean
}

/** Parses the command line. @throws UsageError (an Error) with a message for the user. */
export function parseArgs(args: readonly string[]): CliOptions {
  const v = readArgs(args, {
    nodes: { type: 'string' },
    keys: { type: 'string' },
    mtu: { type: 'string' },
    rounds: { type: 'string' },
    seed: { type: 'string' },
    rate: { type: 'string' },
    order: { type: 'string' },
    'flow-control': { type: 'boolean' },
    json: { type: 'boolean' },
    svg: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  const out: CliOptions = { sim: {}, orders: [simDefaults.order], json: v.json === true, help: v.help === true }
  const int = (name: string, text: string): number => {
    const n = Number(text)
    if (text.trim() === '' || !Number.isSafeInteger(n)) throw new UsageError(`--${name} needs an integer, got ${text}`)
    return n
  }
  for (const name of ['nodes', 'keys', 'mtu', 'rounds', 'seed'] as const) {
    const text = v[name]
    if (text !== undefined) out.sim[name] = int(name, text)
  }
  if (v.rate !== undefined) {
    const parts = v.rate.split(':').map(Number)
    if (parts.length > 2 || parts.some((p) => !Number.isFinite(p) || p < 0) || v.rate.trim() === '') {
      throw new UsageError(`--rate needs R or FROM:TO (non-negative numbers), got ${v.rate}`)
    }
    out.sim.rate = parts.length === 1 ? parts[0] : [parts[0], parts[1]]
  }
  if (v.order !== undefined) {
    if (v.order === 'all') out.orders = [...ORDERS]
    else if (ORDERS.includes(v.order as SimOrder)) out.orders = [v.order as SimOrder]
    else throw new UsageError(`--order must be one of ${ORDERS.join(', ')}, all; got ${v.order}`)
  }
  if (v['flow-control'] === true) out.sim.flowControl = true
  if (v.svg !== undefined) {
    if (v.svg === '') throw new UsageError('--svg needs a file name')
    out.svg = v.svg
  }
  try {
    simOptions(out.sim) // validate early
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  return out
}

/**
 * Why `file` cannot be written, or null: checked before a run, so that a
 * long simulation does not end in a failed write.
 */
export function unwritable(file: string): string | null {
  const full = resolve(file)
  try {
    const st = statSync(full)
    if (st.isDirectory()) return `${file} is a directory`
    accessSync(full, constants.W_OK)
    return null
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code !== 'ENOENT' && e.code !== 'ENOTDIR') return `${file}: ${e.code === 'EACCES' ? 'permission denied' : e.message}`
  }
  const dir = dirname(full)
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`
    accessSync(dir, constants.W_OK)
    return null
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return e.code === 'ENOENT' ? `no such directory: ${dir}` : `${dir}: ${e.code === 'EACCES' ? 'permission denied' : e.message}`
  }
}

const COLORS: Record<SimOrder, string> = {
  depth: '#1f77b4',
  breadth: '#d62728',
  'precise-oldest': '#2ca02c',
  'precise-newest': '#9467bd',
}

/**
 * The SVG figure of one or more runs: maximum staleness, average staleness
 * and the load, one colour per order. With flow control each staleness
 * panel shows the admitted writes (solid, the paper's figure), the backlog
 * delay (dotted) and their sum as the application sees it (dashed).
 */
export function figure(results: readonly SimResult[]): string {
  const o = results[0].options
  const flow = o.flowControl !== false
  const rate = describeRate(o, ' to ')
  const panel = (ylabel: string, pick: (s: RoundStats) => [number, number, number]): { ylabel: string; lines: Line[] } => {
    const lines: Line[] = []
    for (const r of results) {
      const c = COLORS[r.options.order]
      const name = r.options.order
      lines.push({ name: flow ? `${name} admitted` : name, values: r.series.map((s) => pick(s)[0]), color: c })
      if (flow) {
        lines.push({ name: `${name} backlog`, values: r.series.map((s) => pick(s)[1]), color: c, dash: '2 2' })
        lines.push({ name: `${name} total`, values: r.series.map((s) => pick(s)[2]), color: c, dash: '7 3' })
      }
    }
    return { ylabel, lines }
  }
  const panels = [
    panel('maximum staleness (rounds)', (s) => [s.maxStaleness, s.maxBacklogDelay, s.maxTotal]),
    panel('average staleness (rounds)', (s) => [s.avgStaleness, s.avgBacklogDelay, s.avgTotal]),
  ]
  const load: Line[] = [{ name: 'offered', values: results[0].series.map((s) => s.rate), color: '#555' }]
  if (flow) {
    for (const r of results) {
      load.push({
        name: `${r.options.order} admitted`,
        values: r.series.map((s) => s.admitted / o.nodes),
        color: COLORS[r.options.order],
        dash: '5 3',
      })
    }
  }
  panels.push({ ylabel: 'updates per node per round', lines: load })
  return plot({
    title: `${o.nodes} nodes x ${o.keys} keys, mtu ${o.mtu}, rate ${rate}${flow ? ', flow control' : ''}, seed ${o.seed}`,
    xlabel: 'round',
    panels,
    panelHeight: flow ? 230 : 200,
  })
}

function describeRate(o: SimOptions, arrow: string): string {
  if (typeof o.rate === 'number') return `${o.rate}`
  if (typeof o.rate === 'function') return 'custom'
  return `${o.rate[0]}${arrow}${o.rate[1]}`
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2)
}

/** The human-readable summary table. */
export function table(results: readonly SimResult[]): string {
  const flow = results[0].options.flowControl !== false
  const head = ['order', 'avg staleness', 'max staleness', 'final stale']
  if (flow) head.push('avg backlog', 'max backlog', 'avg total', 'max total', 'admitted/offered')
  head.push('ms/round', 'cpu ms/round')
  const rows = results.map((r) => {
    const s = r.summary
    const row = [r.options.order, fmt(s.avgStaleness), fmt(s.maxStaleness), String(s.finalStale)]
    if (flow) {
      row.push(fmt(s.avgBacklogDelay), fmt(s.maxBacklogDelay), fmt(s.avgTotal), fmt(s.maxTotal), `${s.admitted}/${s.offered}`)
    }
    row.push(r.msPerRound.toFixed(1), r.cpuMsPerRound === undefined ? '-' : r.cpuMsPerRound.toFixed(1))
    return row
  })
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), ...rows.map(line)].join('\n')
}

function bar(done: number, total: number, label: string): string {
  const width = 30
  const filled = Math.round((done / total) * width)
  return `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`
}

/** Runs the command; returns the exit code. */
export async function simulate(args: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let cli: CliOptions
  try {
    cli = parseArgs(args)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`simple-scuttle simulate: ${err.message}\nsee: simple-scuttle simulate --help\n`)
    return 2
  }
  if (cli.help) {
    out(usage)
    return 0
  }
  if (cli.svg !== undefined) {
    const problem = unwritable(cli.svg)
    if (problem !== null) {
      process.stderr.write(`simple-scuttle simulate: --svg: cannot write the plot: ${problem}\n\n${usage}`)
      return 2
    }
  }
  const results: SimResult[] = []
  const start = Date.now()
  const tty = process.stderr.isTTY === true
  let shown = false
  for (const order of cli.orders) {
    const sim = new Simulation({ ...cli.sim, order })
    const total = sim.options.rounds
    const label = cli.orders.length > 1 ? `${order.padEnd(14)}` : 'simulating'
    let lastDraw = 0
    const result = await sim.run((s) => {
      if (cli.json) return
      const now = Date.now()
      if (now - start < 1000 || now - lastDraw < (tty ? 100 : 2000)) return
      lastDraw = now
      shown = true
      process.stderr.write(tty ? bar(s.round + 1, total, label) : `${label.trim()}: round ${s.round + 1}/${total}\n`)
    })
    if (shown && tty) process.stderr.write(`${bar(total, total, label)}\n`)
    results.push(result)
  }
  if (cli.svg !== undefined) {
    try {
      writeFileSync(cli.svg, figure(results))
    } catch (err) {
      process.stderr.write(`simple-scuttle simulate: --svg: cannot write the plot: ${(err as Error).message}\n`)
      return 1
    }
  }
  if (cli.json) {
    const body = results.map((r) => ({
      options: r.options,
      msPerRound: r.msPerRound,
      cpuMsPerRound: r.cpuMsPerRound,
      summary: r.summary,
      series: r.series,
    }))
    out(`${JSON.stringify(results.length === 1 ? body[0] : { runs: body })}\n`)
    return 0
  }
  const o = results[0].options
  const rate = describeRate(o, ' -> ')
  out(
    `${o.nodes} nodes x ${o.keys} keys, mtu ${o.mtu}, ${o.rounds} rounds, offered rate ${rate} updates/node/round, ` +
      `flow control ${o.flowControl !== false ? 'on' : 'off'}, seed ${o.seed}\n` +
      `staleness in rounds, over every remote replica (avg: mean over rounds of the mean over replicas; max: worst replica in any round)\n\n` +
      `${table(results)}\n`,
  )
  if (cli.svg !== undefined) out(`\nplot written to ${cli.svg}\n`)
  return 0
}
