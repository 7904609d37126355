/**
 * The paper's experiment (section 5), run with real `Gossip` streams.
 *
 * N participants, each a `Gossip` with one per-peer stream per partner
 * (`createStream()`), play rounds. In round t every participant first writes
 * its own keys at the offered rate (`rate`, possibly a ramp), then every
 * participant, in a random order, gossips with one peer chosen uniformly at
 * random: the streams of the pair are driven synchronously until quiet. At
 * the end of the round the simulator measures staleness over every remote
 * replica of every key (see {@link Staleness}); staleness is in rounds, a
 * write made in round t and still missing at the end of round t counts 1.
 *
 * Orders: `depth` and `breadth` are the stream's own (`config.order`);
 * `precise-oldest` and `precise-newest` are the paper's precise
 * reconciliation baselines, computed here from both full states (the deltas
 * one side holds newer than the other, oldest or newest write first, at most
 * `mtu` per direction) and written into the real streams as peer updates.
 *
 * The engine has no Node-only dependency, so a browser page can drive it.
 */
import { Gossip, PeerStream } from '../gossip'
import { lww_vs_current_vers } from '../resolution'
import type { FlowControlOptions, ResolutionContext, Update } from '../types'
import { derive, prng, shuffle } from './random'
import { Staleness } from './staleness'

/** The orders a simulation can use. */
export type SimOrder = 'depth' | 'breadth' | 'precise-oldest' | 'precise-newest'
/** All orders, in the order tables list them. */
export const ORDERS: readonly SimOrder[] = ['depth', 'breadth', 'precise-oldest', 'precise-newest']

/** What a simulation runs. */
export interface SimOptions {
  /** Participants. Default 128. */
  nodes: number
  /** Keys each participant owns and writes. Default 64. */
  keys: number
  /** Deltas per exchange and direction. Default 100. */
  mtu: number
  /** Rounds to run. Default 200. */
  rounds: number
  /**
   * Updates per node per round: a number, or a ramp `[from, to]` rising
   * linearly over the run, or (from code) a function of round and node.
   * Fractions are written with that probability.
   */
  rate: number | readonly [number, number] | ((round: number, node: number) => number)
  /** Which deltas go first when the mtu cannot fit them all. */
  order: SimOrder
  /** Flow control on every node (`config.flow_control`); false for off. */
  flowControl: boolean | Omit<FlowControlOptions, 'now'>
  /** Seed of every random choice: the same seed, the same run. */
  seed: number
}

/** Defaults: see docs/simulator.md for why they overload the network. */
export const simDefaults: Readonly<SimOptions> = Object.freeze({
  nodes: 128,
  keys: 64,
  mtu: 100,
  rounds: 200,
  rate: [0, 4] as const,
  order: 'depth' as SimOrder,
  flowControl: false,
  seed: 1,
})

/** What one round measured. */
export interface RoundStats {
  round: number
  /** Offered rate this round, updates per node (mean over nodes). */
  rate: number
  /** Writes the application asked for this round (all nodes). */
  offered: number
  /** Writes admitted this round (all nodes); equals `offered` without flow control. */
  admitted: number
  /** Deltas sent this round (all exchanges, both directions). */
  deltas: number
  /** Exchanges in which a side had more deltas than the mtu carried. */
  overflows: number
  /** Stale remote replicas at the end of the round. */
  stale: number
  /** Mean staleness of all remote replicas (fresh ones count 0), admitted writes. */
  avgStaleness: number
  /** Mean staleness of the stale replicas only, admitted writes. */
  avgStaleOnly: number
  /** Largest staleness of any remote replica, admitted writes. */
  maxStaleness: number
  /** Local writes waiting for admission at the end of the round (all nodes). */
  backlog: number
  /** Mean delay from `set` to admission of the writes admitted this round. */
  avgBacklogDelay: number
  /** Largest delay from `set` to admission, of writes admitted this round or still waiting. */
  maxBacklogDelay: number
  /** Like avgStaleness, but each write stamped when the application asked for it. */
  avgTotal: number
  /** Like maxStaleness, but each write stamped when the application asked for it. */
  maxTotal: number
  /** Mean allowed rate over nodes (flow control), updates per node per round. */
  allowedRate: number
}

/** A finished run. */
export interface SimResult {
  options: SimOptions
  series: RoundStats[]
  summary: SimSummary
  /** Wall-clock milliseconds per round. */
  msPerRound: number
  /** CPU milliseconds per round (user + system) where the platform tells. */
  cpuMsPerRound?: number
}

/** Figures of a whole run. */
export interface SimSummary {
  /** Mean over rounds of the per-round mean staleness (admitted writes). */
  avgStaleness: number
  /** Largest staleness seen in any round (admitted writes). */
  maxStaleness: number
  /** Stale remote replicas at the end. */
  finalStale: number
  /** Mean over rounds of avgBacklogDelay (0 without flow control). */
  avgBacklogDelay: number
  /** Largest backlog delay seen. */
  maxBacklogDelay: number
  /** Mean over rounds of the staleness as the application sees it. */
  avgTotal: number
  /** Largest staleness as the application sees it. */
  maxTotal: number
  /** Backlog at the end. */
  finalBacklog: number
  /** Writes offered and admitted in all. */
  offered: number
  admitted: number
}

/** Parses and checks options, filling defaults. @throws TypeError */
export function simOptions(partial: Partial<SimOptions> = {}): SimOptions {
  const o: SimOptions = { ...simDefaults, ...partial }
  const int = (name: string, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) throw new TypeError(`${name} must be an integer >= ${min}`)
  }
  int('nodes', o.nodes, 2)
  int('keys', o.keys, 1)
  int('mtu', o.mtu, 1)
  int('rounds', o.rounds, 1)
  int('seed', o.seed, 0)
  const rates = typeof o.rate === 'number' ? [o.rate] : typeof o.rate === 'function' ? [0] : o.rate
  if (!Array.isArray(rates) || rates.length < 1 || rates.length > 2 || rates.some((r) => typeof r !== 'number' || !(r >= 0) || r === Infinity)) {
    throw new TypeError('rate must be a non-negative number or a ramp [from, to]')
  }
  if (!ORDERS.includes(o.order)) throw new TypeError(`order must be one of ${ORDERS.join(', ')}`)
  return o
}

/** The offered rate (updates per node) in round `t` of a run, for node `node`. */
export function rateAt(o: SimOptions, t: number, node = 0): number {
  if (typeof o.rate === 'number') return o.rate
  if (typeof o.rate === 'function') return Math.max(0, o.rate(t, node))
  const [from, to] = o.rate
  return o.rounds <= 1 ? from : from + ((to - from) * t) / (o.rounds - 1)
}

/** One run of the experiment; call {@link round} per round or {@link run}. */
export class Simulation {
  readonly options: SimOptions
  readonly nodes: Gossip[] = []
  /** Rounds played. */
  t = 0
  readonly series: RoundStats[] = []
  private readonly n: number
  private readonly k: number
  private readonly random: () => number
  private readonly keyIndex = new Map<string, number>()
  private readonly keyNames: string[] = []
  private readonly nodeIndex = new Map<string, number>()
  private readonly links = new Map<number, [PeerStream, PeerStream]>()
  // Admitted writes stamped with their admission round (the paper's figure).
  private readonly admittedView: Staleness
  // Writes stamped with the round the application asked for them (flow control only).
  private readonly askedView: Staleness | null
  // Per node, the rounds of writes waiting for admission, FIFO.
  private readonly waiting: number[][] = []
  private readonly waitingHead: number[] = []
  private readonly flow: boolean
  private admittedThisRound = 0
  private delaySum = 0
  private delayMax = 0
  private deltasThisRound = 0
  private overflowsThisRound = 0
  private counter = 0

  constructor(options: Partial<SimOptions> = {}) {
    const o = (this.options = simOptions(options))
    this.n = o.nodes
    this.k = o.keys
    this.random = prng(o.seed)
    this.flow = o.flowControl !== false
    const total = o.nodes * o.keys
    this.admittedView = new Staleness(total, o.nodes - 1)
    this.askedView = this.flow ? new Staleness(total, o.nodes - 1) : null
    const resolve = (g: ResolutionContext, u: Update): boolean => {
      const before = g.get(u.key).version
      const wins = lww_vs_current_vers(g, u)
      if (wins) this.applied(g.id, u, before)
      return wins
    }
    const flowOptions = this.flow
      ? { ...(o.flowControl === true ? {} : o.flowControl), now: () => this.t }
      : undefined
    const order = o.order === 'breadth' ? 'breadth' : 'depth'
    for (let i = 0; i < o.nodes; i++) {
      const id = `n${i}`
      this.nodeIndex.set(id, i)
      for (let k = 0; k < o.keys; k++) {
        const key = `${id}/${k}`
        this.keyIndex.set(key, this.keyNames.length)
        this.keyNames.push(key)
      }
      this.nodes.push(
        new Gossip(id, {
          resolve,
          mtu: o.mtu,
          order,
          max_history: Infinity,
          random: prng(derive(o.seed, i)),
          flow_control: flowOptions,
        }),
      )
      this.waiting.push([])
      this.waitingHead.push(0)
    }
  }

  /** Plays one round and returns what it measured. */
  round(): RoundStats {
    const o = this.options
    const t = this.t
    const n = this.n
    const random = this.random
    this.admittedThisRound = 0
    this.delaySum = 0
    this.delayMax = 0
    this.deltasThisRound = 0
    this.overflowsThisRound = 0

    // Writes: each node writes its own keys at the offered rate.
    let rate = 0
    let offered = 0
    for (let i = 0; i < n; i++) {
      const r = rateAt(o, t, i)
      rate += r / n
      const whole = Math.floor(r)
      const writes = whole + (random() < r - whole ? 1 : 0)
      const g = this.nodes[i]
      for (let w = 0; w < writes; w++) {
        const j = i * this.k + Math.floor(random() * this.k)
        offered++
        if (this.askedView !== null) {
          this.askedView.write(j, t)
          this.waiting[i].push(t)
        }
        g.set(this.keyNames[j], ++this.counter)
      }
    }

    // Exchanges: everyone, in random order, with one random peer.
    const initiators = shuffle(
      Array.from({ length: n }, (_, i) => i),
      random,
    )
    for (const p of initiators) {
      let q = Math.floor(random() * (n - 1))
      if (q >= p) q++
      if (o.order === 'depth' || o.order === 'breadth') this.scuttle(p, q)
      else this.precise(p, q, o.order === 'precise-newest')
    }

    // Measure at the end of the round.
    const now = t + 1
    const keys = n * this.k
    const a = this.admittedView
    let backlog = 0
    let oldestWaiting = Infinity
    let allowed = 0
    for (let i = 0; i < n; i++) {
      const w = this.waiting[i]
      const h = this.waitingHead[i]
      backlog += w.length - h
      if (h < w.length && w[h] < oldestWaiting) oldestWaiting = w[h]
      allowed += this.nodes[i].flow?.allowed ?? 0
    }
    const asked = this.askedView ?? a
    const stats: RoundStats = {
      round: t,
      rate,
      offered,
      admitted: this.flow ? this.admittedThisRound : offered,
      deltas: this.deltasThisRound,
      overflows: this.overflowsThisRound,
      stale: a.stale,
      avgStaleness: a.average(now, keys),
      avgStaleOnly: a.averageStale(now),
      maxStaleness: a.maximum(now),
      backlog,
      avgBacklogDelay: this.admittedThisRound > 0 ? this.delaySum / this.admittedThisRound : 0,
      maxBacklogDelay: Math.max(this.delayMax, oldestWaiting === Infinity ? 0 : now - oldestWaiting),
      avgTotal: asked.average(now, keys),
      maxTotal: asked.maximum(now),
      allowedRate: this.flow ? allowed / n : 0,
    }
    this.series.push(stats)
    this.t++
    return stats
  }

  /**
   * Plays the remaining rounds. `onRound` sees each round's figures;
   * `pause` is awaited between rounds (by default a macrotask: stream
   * callbacks deferred with nextTick run there, and a page stays responsive).
   */
  async run(onRound?: (s: RoundStats) => void, pause: () => Promise<void> = yieldToEventLoop): Promise<SimResult> {
    const start = Date.now()
    const cpu = typeof process === 'object' && typeof process.cpuUsage === 'function' ? process.cpuUsage() : undefined
    const first = this.t
    while (this.t < this.options.rounds) {
      const s = this.round()
      if (onRound !== undefined) onRound(s)
      await pause()
    }
    const played = this.t - first
    return {
      options: this.options,
      series: this.series,
      summary: summarize(this.series),
      msPerRound: played > 0 ? (Date.now() - start) / played : 0,
      cpuMsPerRound: cpu !== undefined && played > 0 ? cpuMs(process.cpuUsage(cpu)) / played : undefined,
    }
  }

  // The pair's streams, made on first use: [p's stream to q, q's stream to p].
  private link(p: number, q: number): [PeerStream, PeerStream] {
    const lo = p < q ? p : q
    const hi = p < q ? q : p
    const id = lo * this.n + hi
    let l = this.links.get(id)
    if (l === undefined) {
      l = [this.nodes[lo].createStream(), this.nodes[hi].createStream()]
      this.links.set(id, l)
    }
    return p < q ? l : [l[1], l[0]]
  }

  // Scuttlebutt: p gossips, and the pair's streams run until quiet.
  private scuttle(p: number, q: number): void {
    const [sp, sq] = this.link(p, q)
    const before = this.nodes[p].flow?.overflows ?? 0
    const beforeQ = this.nodes[q].flow?.overflows ?? 0
    sp.gossip()
    for (;;) {
      const moved = this.move(sp, sq) + this.move(sq, sp)
      if (moved === 0) break
    }
    if (sp.writableLength > 0 || sq.writableLength > 0) throw new Error('streams did not settle')
    if (this.flow) {
      const over = (this.nodes[p].flow?.overflows ?? 0) > before || (this.nodes[q].flow?.overflows ?? 0) > beforeQ
      if (over) this.overflowsThisRound++
    }
  }

  private move(from: PeerStream, to: PeerStream): number {
    let moved = 0
    for (let m = from.read() as { digest?: boolean } | null; m !== null; m = from.read() as { digest?: boolean } | null) {
      moved++
      if (m.digest !== true) this.deltasThisRound++
      to.write(m)
    }
    return moved
  }

  // Precise reconciliation from full state: each side sends the mappings it
  // holds newer than the other's, oldest (or newest) write first, at most mtu.
  private precise(p: number, q: number, newest: boolean): void {
    const gp = this.nodes[p]
    const gq = this.nodes[q]
    const fp = gp.flow
    const fq = gq.flow
    if (fp !== null) fp.pump()
    if (fq !== null) fq.pump()
    const toQ = this.newer(gp, gq, newest)
    const toP = this.newer(gq, gp, newest)
    const mtu = this.options.mtu
    const [sp, sq] = this.link(p, q)
    for (let i = 0; i < toQ.length && i < mtu; i++) sq.write(toQ[i])
    for (let i = 0; i < toP.length && i < mtu; i++) sp.write(toP[i])
    this.deltasThisRound += Math.min(mtu, toQ.length) + Math.min(mtu, toP.length)
    // Nothing is read back: updates written to a stream produce no output.
    if (fp !== null && fq !== null) {
      const over = toQ.length > mtu || toP.length > mtu
      if (over) this.overflowsThisRound++
      const rp = fp.allowed
      fp.exchanged(over, fq.allowed)
      fq.exchanged(over, rp)
    }
  }

  // The mappings `from` holds newer than `to`, ordered by when they were
  // written (ties in random order).
  private newer(from: Gossip, to: Gossip, newest: boolean): Update[] {
    const out: Update[] = []
    const when: number[] = []
    const view = this.admittedView
    for (const u of from.history.entries()) {
      const key = u.key
      const mine = to.history.entry(key)
      if (mine !== undefined && mine.version >= u.version) continue
      out.push(u)
      when.push(view.timeOf(this.keyIndex.get(key) as number, u.version) ?? 0)
    }
    const idx = shuffle(
      Array.from({ length: out.length }, (_, i) => i),
      this.random,
    )
    idx.sort(newest ? (a, b) => when[b] - when[a] : (a, b) => when[a] - when[b])
    return idx.map((i) => out[i])
  }

  // Every applied update, local or remote, passes here (through resolve).
  private applied(id: string, u: Update, before: number): void {
    const j = this.keyIndex.get(u.key)
    if (j === undefined) return
    const p = this.nodeIndex.get(id) as number
    const owner = Math.floor(j / this.k)
    if (owner === p) {
      // A local write was admitted now.
      const t = this.t
      this.admittedView.write(j, t, u.version)
      if (this.askedView !== null) {
        const asked = this.askedView.admit(j, u.version)
        const w = this.waiting[p]
        const fifo = w[this.waitingHead[p]++]
        if (fifo !== asked) throw new Error('backlog admitted out of order')
        if (this.waitingHead[p] === w.length) {
          w.length = 0
          this.waitingHead[p] = 0
        }
        this.admittedThisRound++
        const delay = t - asked
        this.delaySum += delay
        if (delay > this.delayMax) this.delayMax = delay
      }
      return
    }
    this.admittedView.receive(j, before, u.version)
    if (this.askedView !== null) this.askedView.receive(j, before, u.version)
  }
}

function cpuMs(u: { user: number; system: number }): number {
  return (u.user + u.system) / 1000
}

/** Resolves on the next macrotask. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve)
    else setTimeout(resolve, 0)
  })
}

/** Whole-run figures from a series. */
export function summarize(series: readonly RoundStats[]): SimSummary {
  let avg = 0
  let max = 0
  let delay = 0
  let delayMax = 0
  let total = 0
  let totalMax = 0
  let offered = 0
  let admitted = 0
  for (const s of series) {
    avg += s.avgStaleness
    max = Math.max(max, s.maxStaleness)
    delay += s.avgBacklogDelay
    delayMax = Math.max(delayMax, s.maxBacklogDelay)
    total += s.avgTotal
    totalMax = Math.max(totalMax, s.maxTotal)
    offered += s.offered
    admitted += s.admitted
  }
  const n = Math.max(1, series.length)
  const last = series[series.length - 1]
  return {
    avgStaleness: avg / n,
    maxStaleness: max,
    finalStale: last?.stale ?? 0,
    avgBacklogDelay: delay / n,
    maxBacklogDelay: delayMax,
    avgTotal: total / n,
    maxTotal: totalMax,
    finalBacklog: last?.backlog ?? 0,
    offered,
    admitted,
  }
}
