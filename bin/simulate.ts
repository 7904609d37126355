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

// Without --rate: a load gossip carries at the defaults (about 1.57 at most).
const CARRIED_RATE = 1

export const usage = `usage: simple-scuttle simulate [options]

  --nodes N          participants (default ${simDefaults.nodes})
  --keys K           keys per participant (default ${simDefaults.keys})
  --mtu M            deltas per exchange and direction (default ${simDefaults.mtu})
  --rounds R         rounds to run (default ${simDefaults.rounds})
  --rate R|FROM:TO   updates per node per round, or a ramp over the run
                     (default ${CARRIED_RATE}, a load gossip carries; with --overload
                     ${(simDefaults.rate as readonly number[]).join(':')})
  --overload         the paper's overload experiment: the rate ramps past what
                     gossip can carry, and depth and breadth are compared
  --order O          depth | breadth | precise-oldest | precise-newest | all
                     (default ${simDefaults.order}; with --overload depth and breadth)
  --flow-control     AIMD flow control on every node (paper section 4)
  --seed S           seed of every random choice (default ${simDefaults.seed})
  --json             print one JSON object (options, per-round series, summary;
                     with --order all: {runs: [one such object per order]})
  --svg FILE         write a plot of staleness over rounds
  --help             this text

Staleness is in rounds: how long a node's copy of another node's key lags
behind its writer. 128 nodes with mtu 100 deliver at most about 1.6 updates
per node per round, and staleness stays bounded up to about 1.5; --overload
ramps the offered load from 0 to 4 (see docs/simulator.md). The run ends
with a sentence saying what its figures show against the paper's findings.
`

export interface CliOptions {
  sim: Partial<SimOptions>
  orders: SimOrder[]
  json: boolean
  svg?: string
  help: boolean
  /** The paper's overload experiment asked for (--overload). */
  overload: boolean
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
    overload: { type: 'boolean' },
    order: { type: 'string' },
    'flow-control': { type: 'boolean' },
    json: { type: 'boolean' },
    svg: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  const out: CliOptions = { sim: {}, orders: [simDefaults.order], json: v.json === true, help: v.help === true, overload: v.overload === true }
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
  } else {
    out.sim.rate = v.overload === true ? simDefaults.rate : CARRIED_RATE
  }
  if (v.overload === true) out.orders = ['depth', 'breadth']
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

/**
 * The most updates per node per round gossip can deliver to every copy:
 * each node starts one exchange per round, an exchange carries at most
 * `mtu` deltas each way, and a write must reach the other nodes - 1.
 */
export function capacity(o: SimOptions): number {
  return (2 * o.mtu) / (o.nodes - 1)
}

/**
 * Rounds of staleness the worst copy gains per round over the second half
 * of a run (the least-squares slope of the per-round maximum): about 0
 * while gossip keeps up, near 1 when writes wait ever longer.
 */
export function growth(series: readonly RoundStats[]): number {
  const ys = series.slice(Math.floor(series.length / 2)).map((s) => s.maxStaleness)
  const n = ys.length
  if (n < 2) return 0
  const mx = (n - 1) / 2
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my)
    den += (x - mx) * (x - mx)
  })
  return num / den
}

// Under this growth the worst copy is said to stay bounded; above OVERLOADED, to grow without bound.
const BOUNDED = 0.1
const OVERLOADED = 0.3

/**
 * What a run's figures show, in plain sentences, against the paper's
 * findings: below capacity staleness stays bounded; past it staleness grows
 * without bound (flow control bounds that of admitted writes); under
 * overload scuttle-depth keeps copies fresher than scuttle-breadth.
 */
export function verdict(results: readonly SimResult[]): string {
  const o = results[0].options
  const cap = capacity(o)
  const copies = o.nodes * (o.nodes - 1) * o.keys
  const peak = Math.max(0, ...results[0].series.map((s) => s.rate))
  const flow = o.flowControl !== false
  const first = results.find((r) => r.options.order === 'depth') ?? results[0]
  const s = first.summary
  const g = growth(first.series)
  const behind = `${s.finalStale.toLocaleString('en-US')} of the ${copies.toLocaleString('en-US')} copies were behind at the end`
  const load = typeof o.rate === 'number' ? `${o.rate} update${o.rate === 1 ? '' : 's'} per node per round` : `up to ${fmt(peak)} updates per node per round`
  const out: string[] = []
  if (peak < cap) {
    out.push(
      g < BOUNDED
        ? `The offered load (${load}) stayed under the ${cap.toFixed(2)} gossip can carry here, and every copy stayed close behind its writer: ${fmt(s.avgStaleness)} rounds on average, ${s.maxStaleness} at worst (${behind}: the last rounds' writes, on their way). As the paper finds, anti-entropy keeps up with a load it can carry.`
        : `The offered load stayed under the ${cap.toFixed(2)} updates per node per round gossip can carry here, yet the worst copy fell ${g.toFixed(2)} rounds further behind every round: not what the paper finds below capacity.`,
    )
  } else if (!flow) {
    out.push(
      g > OVERLOADED
        ? `Once the offered rate passed about ${cap.toFixed(2)} updates per node per round, what gossip can carry here, copies fell further behind every round (the worst by ${g.toFixed(2)} rounds per round in the second half; ${behind}). That is the overload the paper studies, and its finding that staleness then grows without bound, reproduced.`
        : `The offered rate passed about ${cap.toFixed(2)} updates per node per round, what gossip can carry here, yet the worst copy gained only ${g.toFixed(2)} rounds per round in the second half: the paper's unbounded growth past capacity, not reproduced at these settings.`,
    )
  } else {
    out.push(
      g < BOUNDED
        ? `The offered rate passed about ${cap.toFixed(2)} updates per node per round, what gossip can carry here, and flow control kept the staleness of the writes it admitted bounded (${s.maxStaleness} rounds at worst), holding the rest in a backlog (up to ${s.maxBacklogDelay} rounds): the paper's flow-control finding, reproduced; the delay moved into the backlog.`
        : `With flow control the worst admitted copy still fell ${g.toFixed(2)} rounds further behind every round in the second half: the paper's flow-control finding, not reproduced at these settings.`,
    )
  }
  const depth = results.find((r) => r.options.order === 'depth')?.summary
  const breadth = results.find((r) => r.options.order === 'breadth')?.summary
  if (depth !== undefined && breadth !== undefined) {
    const figures = `average ${fmt(depth.avgStaleness)} against ${fmt(breadth.avgStaleness)} rounds, worst ${depth.maxStaleness} against ${breadth.maxStaleness}`
    if (peak < cap || flow) {
      out.push(`scuttle-depth and scuttle-breadth (${figures}) differ little here: the orders matter when an exchange cannot carry everything, which --overload without flow control shows.`)
    } else if (depth.avgStaleness < breadth.avgStaleness && depth.maxStaleness <= breadth.maxStaleness) {
      out.push(`scuttle-depth kept copies fresher than scuttle-breadth (${figures}): the paper's main finding, reproduced.`)
    } else if (depth.avgStaleness < breadth.avgStaleness || depth.maxStaleness <= breadth.maxStaleness) {
      out.push(`scuttle-depth against scuttle-breadth: ${figures}. The paper's main finding, that depth keeps copies fresher, reproduced in part (docs/simulator.md says when).`)
    } else {
      out.push(`scuttle-depth against scuttle-breadth: ${figures}. The paper's main finding, that depth keeps copies fresher, not reproduced in this run.`)
    }
  }
  return out.join('\n')
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
      `${table(results)}\n\n${verdict(results)}\n`,
  )
  if (!cli.overload && cli.sim.rate === CARRIED_RATE) out(`(--overload runs the paper's overload experiment; from this repository: npm start -- --overload)\n`)
  if (cli.svg !== undefined) out(`\nplot written to ${cli.svg}\n`)
  return 0
}
