/**
 * The demo's network: real `Gossip` nodes from lib/, joined by links, moved
 * one gossip tick at a time. No DOM here: the page draws what this holds.
 *
 * Every link is a pair of the library's own per-peer streams
 * (`gossip.createStream()` on each side). Traffic is moved between them
 * synchronously with `read()`/`write()` (as test/net.ts does), so a tick is
 * one well-defined round of the paper: every node starts one exchange with a
 * neighbour, and the round ends when every link is quiet. Moving the traffic
 * by hand rather than with `pipe` is what lets a lossy link drop a whole
 * answer, and lets the page count ticks exactly.
 */
// The Gossip path of the library, not its package entry: lib/index.ts also
// re-exports the Node-only TCP node, file store and signing, which a browser
// has no use for (and cannot bundle without polyfills).
import { prng } from '../lib/sim/random'
import * as base from '../lib/base'
import { Gossip } from '../lib/gossip'
import type { PeerStream } from '../lib/gossip'
import type { Message, Order } from '../lib/types'

const MAX_PASSES = 64

export type Topology = 'ring' | 'random' | 'mesh'

export interface Settings {
  topology: Topology
  /** Number of nodes, 2–64. */
  n: number
  /** Deltas per exchange. */
  mtu: number
  order: Order
  /** Probability that an answer (a run of deltas) is lost on a link, 0–1. */
  drop: number
  /** Seed of the network's randomness (layout of random graphs, peer choice, loss). */
  seed: number
}

export const LIMITS = {
  n: { min: 2, max: 64 },
  mtu: { min: 1, max: 200 },
  drop: { min: 0, max: 0.9 },
} as const

/** A small seeded generator (mulberry32), so a seed replays a run. */
export const seeded = prng

export interface Link {
  readonly a: number
  readonly b: number
  /** Node a's stream for b, and node b's stream for a. */
  readonly sa: PeerStream
  readonly sb: PeerStream
  /** Tick of the last exchange over this link, and of the last lost answer. */
  active: number
  lost: number
}

/** One direction of a link while a tick's traffic is moved. */
interface Direction {
  // Inside a run of deltas (an answer), and whether that run is being dropped.
  inRun: boolean
  dropping: boolean
}

/** What one node knows, as the page shows it. */
export interface NodeView {
  readonly id: string
  /** Keys whose newest mapping this node does not hold yet. */
  readonly stale: number
  /** Ticks since the oldest update this node still lacks (the paper's staleness), 0 when up to date. */
  readonly age: number
  /** Keys held. */
  readonly keys: number
}

export interface TickStats {
  readonly tick: number
  readonly exchanges: number
  readonly deltas: number
  readonly lostAnswers: number
  /** Stale mappings summed over all nodes after the tick. */
  readonly stale: number
}

/** Edges of a topology over n nodes, each as [a, b] with a < b. */
export function edgesOf(topology: Topology, n: number, random: () => number): Array<[number, number]> {
  const edges = new Set<string>()
  const add = (a: number, b: number): void => {
    if (a === b) return
    edges.add(a < b ? `${a},${b}` : `${b},${a}`)
  }
  if (topology === 'mesh') {
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) add(a, b)
  } else if (topology === 'ring') {
    for (let a = 0; a < n; a++) add(a, (a + 1) % n)
  } else {
    // A random spanning tree keeps the graph connected; extra random edges
    // bring the mean degree to about 3.
    for (let a = 1; a < n; a++) add(a, Math.floor(random() * a))
    const target = Math.min((n * (n - 1)) / 2, Math.round(n * 1.5))
    for (let tries = 0; edges.size < target && tries < 10 * n; tries++) {
      add(Math.floor(random() * n), Math.floor(random() * n))
    }
  }
  return [...edges].map((e) => e.split(',').map(Number) as [number, number]).sort((x, y) => x[0] - y[0] || x[1] - y[1])
}

export class Network {
  readonly settings: Readonly<Settings>
  readonly nodes: Gossip[] = []
  readonly links: Link[] = []
  /** Link indices of each node. */
  readonly adjacent: number[][] = []
  /** Writes made through `write`, per node. */
  readonly clicks: number[] = []
  /** Gossip ticks run so far. */
  tick = 0
  drop: number
  readonly history: TickStats[] = []
  private readonly random: () => number
  // Per key: versions written, with the tick of each write, oldest first.
  private readonly writes = new Map<string, Array<{ version: number; tick: number }>>()
  private readonly owner = new Map<string, number>()
  // Links with traffic still to move.
  private readonly pending = new Set<Link>()

  constructor(settings: Settings) {
    this.settings = Object.freeze({ ...settings })
    this.drop = settings.drop
    this.random = seeded(settings.seed)
    const config = {
      resolve: base.resolution.lww_vs_current_vers,
      mtu: settings.mtu,
      order: settings.order,
      random: this.random,
    }
    for (let i = 0; i < settings.n; i++) {
      this.nodes.push(new Gossip(`n${i}`, config))
      this.adjacent.push([])
      this.clicks.push(0)
    }
    for (const [a, b] of edgesOf(settings.topology, settings.n, this.random)) {
      const link: Link = { a, b, sa: this.nodes[a].createStream(), sb: this.nodes[b].createStream(), active: -1, lost: -1 }
      this.adjacent[a].push(this.links.length)
      this.adjacent[b].push(this.links.length)
      this.links.push(link)
    }
  }

  /** The key node i writes when clicked: its own id. */
  keyOf(i: number): string {
    return this.nodes[i].id
  }

  /** A click: node i writes its key, with the number of times it was clicked. */
  write(i: number): { key: string; value: number } {
    const g = this.nodes[i]
    const key = this.keyOf(i)
    const value = ++this.clicks[i]
    g.set(key, value)
    const log = this.writes.get(key) ?? []
    log.push({ version: g.get(key).version, tick: this.tick })
    this.writes.set(key, log)
    this.owner.set(key, i)
    return { key, value }
  }

  /**
   * One gossip tick: every node, in random order, starts an exchange with a
   * random neighbour; then traffic moves until every link is quiet.
   */
  step(): TickStats {
    this.tick++
    const order = this.nodes.map((_, i) => i)
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    const busy = this.pending
    let exchanges = 0
    for (const i of order) {
      const adj = this.adjacent[i]
      if (adj.length === 0) continue
      const link = this.links[adj[Math.floor(this.random() * adj.length)]]
      const stream = link.a === i ? link.sa : link.sb
      if (stream.gossip()) {
        exchanges++
        link.active = this.tick
        busy.add(link)
      }
    }
    const moved = this.flush(busy)
    const stale = this.views().reduce((s, v) => s + v.stale, 0)
    this.prune()
    const stats: TickStats = { tick: this.tick, exchanges, deltas: moved.deltas, lostAnswers: moved.lost, stale }
    this.history.push(stats)
    if (this.history.length > 600) this.history.splice(0, this.history.length - 600)
    return stats
  }

  // Move every message of the busy links until none is left to read.
  private flush(busy: Set<Link>): { deltas: number; lost: number } {
    const dirs = new Map<PeerStream, Direction>()
    let deltas = 0
    let lost = 0
    const move = (link: Link, from: PeerStream, to: PeerStream): number => {
      let dir = dirs.get(from)
      if (dir === undefined) dirs.set(from, (dir = { inRun: false, dropping: false }))
      let n = 0
      for (let m = from.read() as Message | null; m !== null; m = from.read() as Message | null) {
        n++
        if ('digest' in m) {
          dir.inRun = false
        } else {
          if (!dir.inRun) {
            // The first delta of an answer decides the fate of the whole
            // answer: losing part of one could let the receiver's max for a
            // source pass a version it never got.
            dir.inRun = true
            dir.dropping = this.drop > 0 && this.random() < this.drop
            if (dir.dropping) {
              lost++
              link.lost = this.tick
            }
          }
          if (dir.dropping) continue
          deltas++
        }
        to.write(m)
      }
      return n
    }
    // A normal exchange is quiet after three or four passes; a link still
    // talking after MAX_PASSES keeps its traffic for the next tick rather
    // than hold up the page.
    for (let pass = 0; busy.size > 0 && pass < MAX_PASSES; pass++) {
      for (const link of [...busy]) {
        const moved = move(link, link.sa, link.sb) + move(link, link.sb, link.sa)
        const quiet =
          link.sa.readableLength + link.sb.readableLength + link.sa.writableLength + link.sb.writableLength === 0
        if (moved === 0 && quiet) busy.delete(link)
      }
    }
    return { deltas, lost }
  }

  /** What every node holds, against the newest write of every key. */
  views(): NodeView[] {
    return this.nodes.map((g) => {
      let stale = 0
      let oldest = Infinity
      for (const [key, log] of this.writes) {
        const newest = log[log.length - 1]
        const held = g.get(key).version
        if (held >= newest.version) continue
        stale++
        // The paper's staleness: time since the oldest update this node lacks.
        for (const w of log) {
          if (w.version > held) {
            if (w.tick < oldest) oldest = w.tick
            break
          }
        }
      }
      return { id: g.id, stale, age: stale === 0 ? 0 : this.tick - oldest, keys: Object.keys(g.state).length }
    })
  }

  /** Every node's value of `key`. */
  valuesOf(key: string): unknown[] {
    return this.nodes.map((g) => g.get(key).value)
  }

  /** Keys written so far, with the value their writer holds. */
  truth(): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [key, i] of this.owner) out[key] = this.nodes[i].get(key).value
    return out
  }

  // Forget writes every node has moved past.
  private prune(): void {
    for (const [key, log] of this.writes) {
      if (log.length < 2) continue
      let least = Infinity
      for (const g of this.nodes) least = Math.min(least, g.get(key).version)
      let drop = 0
      while (drop < log.length - 1 && log[drop].version <= least) drop++
      if (drop > 0) log.splice(0, drop)
    }
  }
}
