/**
 * Membership on simulated time: real `Gossip` nodes, each with a real
 * `Membership` whose clock is the simulation's, over a full mesh of links
 * that delay whole messages by a random amount (from a distribution) and
 * lose them with a given probability. Each node gossips with one random
 * peer every `interval`, heartbeats every `interval` and runs its failure
 * detector every `interval / 2`, each on a phase of its own, as the TCP
 * node does. Nodes can crash (stop everything; what was in flight still
 * arrives) and restart (a new incarnation of the same id, with new
 * connections on every link).
 *
 * A message is one whole answer (everything a stream pushed in one go), as
 * in test/properties/faults.test.ts: links are FIFO (a later message never overtakes
 * an earlier one, as on a TCP connection) and lose whole messages.
 */
import { Gossip, Membership, PeerStream, base } from '../lib'
import type { Member, MembershipOptions, Message } from '../lib'
import * as fs from 'fs'
import * as path from 'path'
import { prng } from '../lib/sim/random'

const ARTIFACT = path.join(__dirname, '..', '..', 'test', 'artifacts', 'membership.json')

/** Record a figure for the report (test/artifacts/membership.json, git-ignored). */
export function figure(name: string, value: unknown): void {
  let all: Record<string, unknown> = {}
  try {
    all = JSON.parse(fs.readFileSync(ARTIFACT, 'utf8')) as Record<string, unknown>
  } catch {
    // the first figure
  }
  all[name] = value
  fs.mkdirSync(path.dirname(ARTIFACT), { recursive: true })
  fs.writeFileSync(ARTIFACT, `${JSON.stringify(all, null, 2)}\n`)
}

/** A delay distribution: a random delay in ms from uniform numbers in [0, 1). */
export type Delay = (random: () => number) => number

/** Delay distributions by name, each of mean `mean` ms. */
export const delays = {
  exponential: (mean: number): Delay => (r) => -mean * Math.log(1 - r()),
  uniform: (mean: number): Delay => (r) => 2 * mean * r(),
  // Log-normal with sigma 0.5 (a long right tail), mean `mean`.
  lognormal: (mean: number): Delay => {
    const sigma = 0.5
    const mu = Math.log(mean) - (sigma * sigma) / 2
    return (r) => {
      // Box-Muller
      const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
      return Math.exp(mu + sigma * z)
    }
  },
}

export interface SimParams {
  nodes: number
  /** Gossip and heartbeat interval, ms. */
  interval: number
  /** Probability that a message is lost. */
  loss: number
  delay: Delay
  seed: number
  membership?: MembershipOptions
}

interface Wire {
  from: PeerStream
  to: PeerStream
  // The node at the receiving end.
  dest: number
  lastDue: number
  open: boolean
}

interface Event {
  at: number
  seq: number
  run: () => void
}

/** What one observer saw of one member. */
export interface Seen {
  /** Times a heartbeat of the member arrived (its mapping advanced). */
  arrivals: number[]
  /** 'dead' events, with the member as reported. */
  dead: { at: number; member: Member }[]
  /** 'live' events. */
  live: { at: number; member: Member }[]
}

class Heap {
  private readonly items: Event[] = []
  get size(): number {
    return this.items.length
  }
  push(e: Event): void {
    const a = this.items
    a.push(e)
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1
      if (less(a[p], a[i])) break
      ;[a[p], a[i]] = [a[i], a[p]]
      i = p
    }
  }
  pop(): Event | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      for (let i = 0; ; ) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && less(a[l], a[m])) m = l
        if (r < a.length && less(a[r], a[m])) m = r
        if (m === i) break
        ;[a[m], a[i]] = [a[i], a[m]]
        i = m
      }
    }
    return top
  }
  peek(): Event | undefined {
    return this.items[0]
  }
}

function less(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

export class MembershipSim {
  time = 0
  readonly random: () => number
  readonly ids: string[]
  gossips: Gossip[] = []
  memberships: Membership[] = []
  readonly alive: boolean[]
  /** When each node was last killed (-1: never). */
  readonly killedAt: number[]
  /** seen[observer][member id] */
  seen: Map<string, Seen>[] = []
  sent = 0
  lost = 0
  private readonly heap = new Heap()
  private seq = 0
  // wires[i][j]: node i's messages to node j.
  private wires: Wire[][] = []
  // Bumped at each restart, so that the timers of a dead incarnation stop.
  private readonly epoch: number[]

  constructor(readonly p: SimParams) {
    this.random = prng(p.seed)
    this.ids = Array.from({ length: p.nodes }, (_, i) => `n${i}`)
    this.alive = this.ids.map(() => true)
    this.killedAt = this.ids.map(() => -1)
    this.epoch = this.ids.map(() => 0)
    this.wires = this.ids.map(() => [])
    for (let i = 0; i < p.nodes; i++) this.seen.push(new Map())
    for (let i = 0; i < p.nodes; i++) this.boot(i)
    for (let i = 0; i < p.nodes; i++) for (let j = i + 1; j < p.nodes; j++) this.connect(i, j)
    for (let i = 0; i < p.nodes; i++) this.schedule(i)
  }

  private boot(i: number): void {
    const g = new Gossip(this.ids[i], { resolve: base.resolution.lww_vs_current_vers, random: this.random })
    const m = new Membership(g, { interval: this.p.interval, now: () => this.time, ...this.p.membership })
    this.gossips[i] = g
    this.memberships[i] = m
    const seen = (id: string): Seen => {
      let s = this.seen[i].get(id)
      if (s === undefined) {
        s = { arrivals: [], dead: [], live: [] }
        this.seen[i].set(id, s)
      }
      return s
    }
    g.history.on('update', (u) => {
      if (u.key === `heartbeat/${u.source_id}` && u.source_id !== g.id) seen(u.source_id).arrivals.push(this.time)
    })
    m.on('dead', (member: Member) => seen(member.id).dead.push({ at: this.time, member }))
    m.on('live', (member: Member) => seen(member.id).live.push({ at: this.time, member }))
    m.advertise()
    m.beat()
  }

  private connect(i: number, j: number): void {
    const a = this.gossips[i].createStream()
    const b = this.gossips[j].createStream()
    const old = [this.wires[i][j], this.wires[j][i]]
    for (const w of old) if (w !== undefined) this.closeWire(w)
    this.wires[i][j] = { from: a, to: b, dest: j, lastDue: 0, open: true }
    this.wires[j][i] = { from: b, to: a, dest: i, lastDue: 0, open: true }
  }

  private closeWire(w: Wire): void {
    w.open = false
    w.from.destroy()
    w.to.destroy()
  }

  at(t: number, run: () => void): void {
    this.heap.push({ at: t, seq: this.seq++, run })
  }

  // Node i's timers, each with a random phase.
  private schedule(i: number): void {
    const epoch = this.epoch[i]
    const every = (period: number, f: () => void) => {
      const tick = () => {
        if (this.epoch[i] !== epoch || !this.alive[i]) return
        f()
        this.at(this.time + period, tick)
      }
      this.at(this.time + this.random() * period, tick)
    }
    const interval = this.p.interval
    every(interval, () => {
      const peers = this.ids.map((_, j) => j).filter((j) => j !== i)
      const j = peers[Math.floor(this.random() * peers.length)]
      this.wires[i][j].from.gossip()
    })
    every(interval, () => this.memberships[i].beat())
    const m = this.memberships[i] as unknown as { checkInterval: number }
    every(m.checkInterval, () => this.memberships[i].check())
  }

  /** Crash node i now: it stops; messages to it are lost. */
  kill(i: number): void {
    this.alive[i] = false
    this.killedAt[i] = this.time
    this.epoch[i]++
  }

  /** Start node i again: a new incarnation (no saved state), new connections. */
  restart(i: number): void {
    this.memberships[i].stop()
    this.alive[i] = true
    this.epoch[i]++
    this.boot(i)
    for (let j = 0; j < this.p.nodes; j++) if (j !== i) this.connect(Math.min(i, j), Math.max(i, j))
    this.schedule(i)
  }

  // Collect what every stream pushed, as one message per stream, and send it.
  private collect(): boolean {
    let any = false
    for (let i = 0; i < this.p.nodes; i++) {
      for (const w of this.wires[i]) {
        if (w === undefined || !w.open) continue
        const packet: Message[] = []
        for (let m = w.from.read() as Message | null; m !== null; m = w.from.read() as Message | null) packet.push(m)
        if (packet.length === 0) continue
        any = true
        if (!this.alive[i]) continue
        this.sent++
        if (this.random() < this.p.loss) {
          this.lost++
          continue
        }
        const due = Math.max(w.lastDue, this.time + this.p.delay(this.random))
        w.lastDue = due
        this.at(due, () => {
          if (!w.open || !this.alive[w.dest]) return
          for (const m of packet) w.to.write(m)
        })
      }
    }
    return any
  }

  private busy(): boolean {
    for (const row of this.wires) for (const w of row) if (w !== undefined && w.open && (w.to.writableLength > 0 || w.from.readableLength > 0)) return true
    return false
  }

  /** Run events until time `end`. */
  async run(end: number, stop: () => boolean = () => false): Promise<void> {
    for (;;) {
      const next = this.heap.peek()
      if (next === undefined || next.at > end) break
      this.heap.pop()
      this.time = next.at
      next.run()
      // Streams answer synchronously unless a buffer filled: then let them run.
      for (let spins = 0; this.collect() || this.busy(); spins++) {
        if (spins > 1000) throw new Error('streams did not settle')
        if (this.busy()) await new Promise((resolve) => setImmediate(resolve))
      }
      if (stop()) return
    }
    this.time = Math.max(this.time, end)
  }

  /** Stop every membership's listener. */
  close(): void {
    for (const m of this.memberships) m.stop()
  }
}
