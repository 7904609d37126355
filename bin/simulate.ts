/**
 * `simple-scuttle simulate [options]`: the paper's experiment on real Gossip
 * streams. Prints a table (or one JSON object with --json), can write an SVG
 * plot, and shows a progress bar on stderr for runs longer than a second.
 */
import { writeFileSync } from 'fs'
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
and staleness stays bounded up to about 1.5 (see docs/README.md).
`

export interface CliOptions {
  sim: Partial<SimOptions>
  orders: SimOrder[]
  json: boolean
  svg?: string
  help: boolean
}

/** Parses the command line. @throws Error with a message for the user. */
export function parseArgs(args: readonly string[]): CliOptions {
  const out: CliOptions = { sim: {}, orders: [simDefaults.order], json: false, help: false }
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v)
    if (v === undefined || v.trim() === '' || !Number.isSafeInteger(n)) throw new Error(`--${name} needs an integer, got ${v}`)
    return n
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const eq = arg.indexOf('=')
    const name = arg.startsWith('--') ? arg.slice(2, eq === -1 ? undefined : eq) : arg
    const value = (): string | undefined => (eq !== -1 ? arg.slice(eq + 1) : args[++i])
    switch (name) {
      case 'nodes':
      case 'keys':
      case 'mtu':
      case 'rounds':
      case 'seed':
        out.sim[name] = int(name, value())
        break
      case 'rate': {
        const v = value() ?? ''
        const parts = v.split(':').map(Number)
        if (parts.length > 2 || parts.some((p) => !Number.isFinite(p) || p < 0) || v.trim() === '') {
          throw new Error(`--rate needs R or FROM:TO (non-negative numbers), got ${v}`)
        }
        out.sim.rate = parts.length === 1 ? parts[0] : [parts[0], parts[1]]
        break
      }
      case 'order': {
        const v = value()
        if (v === 'all') out.orders = [...ORDERS]
        else if (ORDERS.includes(v as SimOrder)) out.orders = [v as SimOrder]
        else throw new Error(`--order must be one of ${ORDERS.join(', ')}, all; got ${v}`)
        break
      }
      case 'flow-control':
        out.sim.flowControl = true
        break
      case 'json':
        out.json = true
        break
      case 'svg': {
        const v = value()
        if (v === undefined || v === '') throw new Error('--svg needs a file name')
        out.svg = v
        break
      }
      case 'help':
      case '-h':
        out.help = true
        break
      default:
        throw new Error(`unknown option ${arg}`)
    }
  }
  simOptions(out.sim) // validate early
  return out
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
    process.stderr.write(`${(err as Error).message}\n\n${usage}`)
    return 2
  }
  if (cli.help) {
    out(usage)
    return 0
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
  if (cli.svg !== undefined) writeFileSync(cli.svg, figure(results))
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
