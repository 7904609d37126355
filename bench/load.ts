/**
 * `npm run bench:load`: the node under load, as a user feels it (issue 23).
 * NODES real `simple-scuttle node` processes in a full mesh on 127.0.0.1
 * (each dials every one started before it), each taking RATE `set`s a
 * second on stdin for SECONDS, open loop (the generator sends what is due
 * every 5 ms, whatever the node answers). Measured per run:
 * - acknowledged writes/s during the load (acks received before the load
 *   ended, over its length), and until the last ack;
 * - ack latency p50, p99, max: from when the set was due (open loop: a
 *   generator running late counts against the node) to its answer;
 * - the backlog (sets written, not answered) sampled every 250 ms: at the
 *   end of the load, its peak, and its growth over the load's second half
 *   (writes/s, a least-squares slope): a node that keeps up has none;
 * - time to converge after the load: from the last set written until every
 *   node answers `get` of every writer's last key with its value (polled:
 *   one round of gets per node, every 100 ms);
 * - nothing lost: every acknowledged write read back with `state` on every
 *   node once converged;
 * - CPU seconds of all nodes, and their peak RSS.
 *
 * Variants (LOAD_BINS, `name=path,...`, a path being a worktree or its
 * dist/bin/simple-scuttle.js; default: this build as `ours`) run in
 * alternating rounds (LOAD_ROUNDS), every node a fresh process. Ratios are
 * against the first variant (the previous release when given first).
 *
 * Environment: LOAD_NODES (10), LOAD_RATE (200 per node), LOAD_SECONDS
 * (30), LOAD_ROUNDS (1), LOAD_DATA (1: every node with --data in a fresh
 * directory; 0: in memory), LOAD_INTERVAL (100 ms), LOAD_MTU (500),
 * LOAD_PROF (a directory: nodes run with --cpu-prof into it),
 * LOAD_TIMEOUT (s to wait for convergence, 300), LOAD_OUT (results file,
 * default bench/load-results.json).
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { NodeProc, median, ms, pace, percentile, variants } from './proc'

const NODES = Number(process.env.LOAD_NODES ?? 10)
const RATE = Number(process.env.LOAD_RATE ?? 200)
const SECONDS = Number(process.env.LOAD_SECONDS ?? 30)
const ROUNDS = Number(process.env.LOAD_ROUNDS ?? 1)
const DATA = (process.env.LOAD_DATA ?? '1') !== '0'
const INTERVAL = Number(process.env.LOAD_INTERVAL ?? 100)
const MTU = Number(process.env.LOAD_MTU ?? 500)
const PROF = process.env.LOAD_PROF
const TIMEOUT = Number(process.env.LOAD_TIMEOUT ?? 300) * 1000
const OUT = process.env.LOAD_OUT ?? path.join(__dirname, '..', '..', 'bench', 'load-results.json')

/** What one run measured. */
export interface LoadRun {
  variant: string
  round: number
  offeredPerS: number
  sent: number
  acked: number
  refused: number
  /** Acks received during the load, per second of load. */
  ackedPerS: number
  /** All acks, per second from the start to the last ack. */
  ackedPerSToDrain: number
  p50: number
  p99: number
  max: number
  backlogAtEnd: number
  backlogPeak: number
  /** Least-squares slope of the backlog over the load's second half, writes/s. */
  backlogGrowthPerS: number
  /** From the end of the load to the last ack, ms. */
  drainMs: number
  /** From the end of the load to every node holding every writer's last write, ms (null: not within LOAD_TIMEOUT). */
  convergeMs: number | null
  /** Acknowledged writes missing or wrong on some node at the end (summed over nodes). */
  lost: number
  cpuSeconds: number
  peakRssMB: number
  backlog: [number, number][]
}

function slope(points: [number, number][]): number {
  const n = points.length
  if (n < 2) return 0
  let sx = 0
  let sy = 0
  for (const [x, y] of points) {
    sx += x
    sy += y
  }
  const mx = sx / n
  const my = sy / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

async function untilMesh(nodes: NodeProc[]): Promise<void> {
  const deadline = ms() + 60_000
  for (;;) {
    const peers = await Promise.all(nodes.map((n) => n.cmd('peers')))
    if (peers.every((p) => (p.peers as unknown[]).length === nodes.length - 1)) return
    if (ms() > deadline) throw new Error('the mesh did not connect within 60 s')
    await pace(100)
  }
}

export async function runLoad(variant: { name: string; bin: string }, round: number): Promise<LoadRun> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-bench-load-'))
  const nodes: NodeProc[] = []
  const flags = PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(PROF, `${variant.name}-${round}`)}`]
  try {
    for (let i = 0; i < NODES; i++) {
      const args = ['--listen', '127.0.0.1:0', '--interval', String(INTERVAL), '--mtu', String(MTU)]
      for (const p of nodes) args.push('--connect', p.address)
      if (DATA) args.push('--data', path.join(root, `n${i}`))
      const n = new NodeProc(variant.bin, `n${i}`, args, flags)
      nodes.push(n)
      await n.ready()
    }
    await untilMesh(nodes)
    const cpu0 = nodes.reduce((s, n) => s + (n.cpuSeconds() ?? 0), 0)

    const total = Math.round(RATE * SECONDS)
    const sent = new Array<number>(NODES).fill(0)
    const latencies: number[] = []
    const acked = new Array<number>(NODES).fill(0)
    const refused: string[] = []
    let answered = 0
    let ackedInLoad = 0
    let lastAck = 0
    let loading = true
    const backlog: [number, number][] = []
    const start = ms()
    const sampler = setInterval(() => backlog.push([(ms() - start) / 1000, nodes.reduce((s, n, i) => s + sent[i] - acked[i], 0) - refused.length]), 250)
    // Open loop: every 5 ms, each node gets the sets due by now.
    for (;;) {
      const elapsed = ms() - start
      const due = elapsed >= SECONDS * 1000 ? total : Math.floor((elapsed * RATE) / 1000)
      for (let i = 0; i < NODES; i++) {
        if (sent[i] >= due) continue
        const lines: string[] = []
        const from = sent[i]
        for (let s = from; s < due; s++) lines.push(`set w${i}-${s} ${s}`)
        sent[i] = due
        nodes[i].sendMany(lines, (k, line, at) => {
          answered++
          if (line.startsWith('{"ok":true')) {
            acked[i]++
            latencies.push(at - (start + ((from + k) * 1000) / RATE))
            if (loading) ackedInLoad++
            lastAck = at
          } else refused.push(`w${i}-${from + k}: ${line.slice(0, 200)}`)
        })
      }
      if (due >= total) break
      await pace(5)
    }
    const end = ms()
    loading = false
    const backlogAtEnd = nodes.reduce((s, n) => s + n.outstanding, 0)
    // Converged: every node holds every writer's last write (a source's
    // writes arrive in version order, so the last one stands for all).
    let convergeMs: number | null = null
    for (;;) {
      const rounds = nodes.map(
        (n) =>
          new Promise<boolean>((resolve) => {
            const lines = nodes.map((_w, w) => `get w${w}-${total - 1}`)
            let ok = true
            let left = lines.length
            n.sendMany(lines, (_k, line) => {
              if ((JSON.parse(line) as { value: unknown }).value !== total - 1) ok = false
              if (--left === 0) resolve(ok)
            })
          }),
      )
      const all = await Promise.all(rounds)
      if (all.every(Boolean)) {
        convergeMs = ms() - end
        break
      }
      if (ms() - end > TIMEOUT) break
      await pace(100)
    }
    clearInterval(sampler)
    while (answered < NODES * total && nodes.every((n) => n.child.exitCode === null)) await pace(50)
    // Nothing lost: every acknowledged write, on every node.
    let lost = 0
    for (const n of nodes) {
      const state = (await n.cmd('state')).state as Record<string, { value: unknown }>
      for (let w = 0; w < NODES; w++) {
        for (let s = 0; s < acked[w]; s++) if (state[`w${w}-${s}`]?.value !== s) lost++
      }
    }
    const cpuSeconds = nodes.reduce((s, n) => s + (n.cpuSeconds() ?? 0), 0) - cpu0
    const peakRssMB = Math.max(...nodes.map((n) => n.peakRssMB() ?? 0))
    latencies.sort((a, b) => a - b)
    const half = backlog.filter(([t]) => t >= SECONDS / 2 && t <= SECONDS)
    const totalAcked = acked.reduce((a, b) => a + b, 0)
    return {
      variant: variant.name,
      round,
      offeredPerS: RATE * NODES,
      sent: NODES * total,
      acked: totalAcked,
      refused: refused.length,
      ackedPerS: ackedInLoad / ((end - start) / 1000),
      ackedPerSToDrain: totalAcked / ((lastAck - start) / 1000),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1],
      backlogAtEnd,
      backlogPeak: Math.max(0, ...backlog.map(([, b]) => b)),
      backlogGrowthPerS: slope(half),
      drainMs: Math.max(0, lastAck - end),
      convergeMs,
      lost,
      cpuSeconds,
      peakRssMB,
      backlog: backlog.filter((_p, i) => i % 4 === 0).map(([t, b]) => [Math.round(t * 10) / 10, b]),
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
    fs.rmSync(root, { recursive: true, force: true })
  }
}

function fmt(x: number | null, digits = 0): string {
  return x === null || Number.isNaN(x) ? '-' : x.toFixed(digits)
}

async function main(): Promise<void> {
  const vs = variants(process.env.LOAD_BINS)
  const runs: LoadRun[] = []
  const started = new Date().toISOString()
  const load0 = os.loadavg()
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order each round, so neither variant always goes first.
    const order = r % 2 === 0 ? vs : [...vs].reverse()
    for (const v of order) {
      process.stderr.write(`bench:load round ${r + 1}/${ROUNDS} ${v.name} (${NODES} nodes x ${RATE}/s x ${SECONDS} s, ${DATA ? '--data' : 'in memory'})...\n`)
      const run = await runLoad(v, r)
      runs.push(run)
      process.stderr.write(
        `  acked ${fmt(run.ackedPerS)}/s, p50 ${fmt(run.p50)} ms, p99 ${fmt(run.p99)} ms, backlog growth ${fmt(run.backlogGrowthPerS, 1)}/s, ` +
          `converged ${fmt(run.convergeMs)} ms after, lost ${run.lost}, cpu ${fmt(run.cpuSeconds, 1)} s\n`,
      )
    }
  }
  const med = (name: string, f: (r: LoadRun) => number | null): number | null => {
    const xs = runs.filter((r) => r.variant === name).map(f)
    return xs.some((x) => x === null) ? null : median(xs as number[])
  }
  const offered = RATE * NODES
  const summary = vs.map((v) => {
    const s = {
      variant: v.name,
      ackedPerS: med(v.name, (r) => r.ackedPerS) as number,
      p50: med(v.name, (r) => r.p50) as number,
      p99: med(v.name, (r) => r.p99) as number,
      backlogGrowthPerS: med(v.name, (r) => r.backlogGrowthPerS) as number,
      backlogAtEnd: med(v.name, (r) => r.backlogAtEnd) as number,
      convergeMs: med(v.name, (r) => r.convergeMs),
      lost: Math.max(...runs.filter((r) => r.variant === v.name).map((r) => r.lost)),
      cpuSeconds: med(v.name, (r) => r.cpuSeconds) as number,
      peakRssMB: med(v.name, (r) => r.peakRssMB) as number,
    }
    return {
      ...s,
      goals: {
        keepsUp: s.ackedPerS >= 0.97 * offered && s.backlogGrowthPerS <= 0.02 * offered,
        p99Under1s: s.p99 < 1000,
        convergesWithin5s: s.convergeMs !== null && s.convergeMs <= 5000,
        nothingLost: s.lost === 0,
      },
    }
  })
  const base = summary[0]
  const ratios = summary.slice(1).map((s) => ({
    variant: s.variant,
    against: base.variant,
    ackedPerS: s.ackedPerS / base.ackedPerS,
    p50: s.p50 / base.p50,
    p99: s.p99 / base.p99,
    convergeMs: s.convergeMs === null || base.convergeMs === null ? null : s.convergeMs / base.convergeMs,
    cpuSeconds: s.cpuSeconds / base.cpuSeconds,
  }))
  const head = `| ${NODES} x ${RATE}/s x ${SECONDS} s${DATA ? ', --data' : ''} | ${summary.map((s) => s.variant).join(' | ')} |`
  const rows = [
    head,
    `|---|${summary.map(() => '---').join('|')}|`,
    `| acked writes/s (offered ${offered}) | ${summary.map((s) => fmt(s.ackedPerS)).join(' | ')} |`,
    `| ack latency p50 ms | ${summary.map((s) => fmt(s.p50)).join(' | ')} |`,
    `| ack latency p99 ms | ${summary.map((s) => fmt(s.p99)).join(' | ')} |`,
    `| backlog growth, writes/s | ${summary.map((s) => fmt(s.backlogGrowthPerS, 1)).join(' | ')} |`,
    `| backlog at load end | ${summary.map((s) => fmt(s.backlogAtEnd)).join(' | ')} |`,
    `| converged after load, ms | ${summary.map((s) => fmt(s.convergeMs)).join(' | ')} |`,
    `| acked writes lost | ${summary.map((s) => String(s.lost)).join(' | ')} |`,
    `| CPU s (all nodes) | ${summary.map((s) => fmt(s.cpuSeconds, 1)).join(' | ')} |`,
    `| peak RSS MB (largest node) | ${summary.map((s) => fmt(s.peakRssMB)).join(' | ')} |`,
    `| goals met (keeps up, p99 < 1 s, converged <= 5 s, nothing lost) | ${summary
      .map((s) => Object.values(s.goals).map((g) => (g ? 'yes' : 'NO')).join(', '))
      .join(' | ')} |`,
  ]
  const out = {
    started,
    finished: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadavg: { start: load0, end: os.loadavg() },
    setup: { nodes: NODES, rate: RATE, seconds: SECONDS, rounds: ROUNDS, data: DATA, interval: INTERVAL, mtu: MTU, variants: vs },
    statistic: 'median over rounds of each variant; ratios are variant / first variant',
    summary,
    ratios,
    runs,
  }
  fs.writeFileSync(OUT, `${JSON.stringify(out, null, 2)}\n`)
  process.stdout.write(`${rows.join('\n')}\n`)
  for (const r of ratios) {
    process.stdout.write(
      `${r.variant} / ${r.against}: acked/s ${r.ackedPerS.toFixed(2)}x, p50 ${r.p50.toFixed(2)}x, p99 ${r.p99.toFixed(2)}x, ` +
        `converge ${r.convergeMs === null ? '-' : `${r.convergeMs.toFixed(2)}x`}, CPU ${r.cpuSeconds.toFixed(2)}x\n`,
    )
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
