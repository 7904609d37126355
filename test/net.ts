/**
 * An in-process network for tests: nodes joined by links whose traffic is
 * moved by `settle()`, so a test decides exactly when exchanges happen and
 * can look at every node between them.
 */
import { Clock, Gossip, PeerStream, base } from '../lib'
import type { Config, Message, Update } from '../lib'

export interface Link {
  readonly a: number
  readonly b: number
  readonly sa: PeerStream
  readonly sb: PeerStream
}

/** Everything one stream read out, in runs between digests. */
export interface Traffic {
  /** Largest number of updates a stream sent between two digest objects. */
  longestRun: number
  /** A source's updates went out of increasing version order within a run. */
  disorder: string[]
  /** Updates moved, in all. */
  updates: number
}

export function lww(overrides: Partial<Config> = {}): Config {
  return { resolve: base.resolution.lww_vs_current_vers, ...overrides }
}

export class Net {
  readonly nodes: Gossip[] = []
  readonly links: Link[] = []
  traffic: Traffic = { longestRun: 0, disorder: [], updates: 0 }
  private readonly runs = new Map<PeerStream, { n: number; last: Map<string, number> }>()

  /**
   * @param start - where each node's Lamport clock starts. Equal starts make
   *   versions of different nodes interleave and tie, as they do between
   *   real machines; by default all nodes start at 0.
   */
  constructor(ids: string[], config: (id: string) => Config, start: (i: number) => number = () => 0) {
    ids.forEach((id, i) => this.nodes.push(bornAt(start(i), id, config(id))))
  }

  /** Join nodes a and b with a fresh stream on each side. */
  connect(a: number, b: number): Link {
    const link = { a, b, sa: this.nodes[a].createStream(), sb: this.nodes[b].createStream() }
    this.links.push(link)
    return link
  }

  /** Move traffic until every link is quiet. */
  async settle(): Promise<void> {
    // One answer per direction per exchange: runs do not carry over.
    this.runs.clear()
    for (;;) {
      let moved = 0
      for (const l of this.links) {
        moved += this.move(l.sa, l.sb)
        moved += this.move(l.sb, l.sa)
      }
      const busy = this.links.some((l) => l.sa.writableLength > 0 || l.sb.writableLength > 0)
      if (moved === 0 && !busy) return
      // Let stream callbacks scheduled with nextTick run, then look again.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private move(from: PeerStream, to: PeerStream): number {
    let moved = 0
    let run = this.runs.get(from)
    if (run === undefined) {
      run = { n: 0, last: new Map() }
      this.runs.set(from, run)
    }
    for (let m = from.read() as Message | null; m !== null; m = from.read() as Message | null) {
      moved++
      if ('digest' in m) {
        run.n = 0
        run.last.clear()
      } else {
        run.n++
        this.traffic.updates++
        if (run.n > this.traffic.longestRun) this.traffic.longestRun = run.n
        const prev = run.last.get(m.source_id)
        if (prev !== undefined && prev >= m.version) this.traffic.disorder.push(`${m.source_id}@${m.version}`)
        run.last.set(m.source_id, m.version)
      }
      to.write(m)
    }
    return moved
  }
}

const turn = () => new Promise((r) => setImmediate(r))

/** Move what `a` and `b` queued for each other until both are quiet; returns updates moved. */
export async function settle(a: PeerStream, b: PeerStream): Promise<number> {
  let updates = 0
  for (;;) {
    let moved = 0
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      for (let m = from.read() as Message | null; m !== null; m = from.read() as Message | null) {
        if (!('digest' in m)) updates++
        to.write(m)
        moved++
      }
    }
    if (moved === 0) return updates
    await turn()
  }
}

/** One gossip() from `a`, then `settle`. */
export async function exchange(a: PeerStream, b: PeerStream): Promise<number> {
  a.gossip()
  return settle(a, b)
}

/**
 * A connected graph on n nodes: a random spanning tree (node i joins
 * `parents[i] % i`) plus `extra` edges for cycles, without loops or repeats.
 */
export function connectedEdges(n: number, parents: number[], extra: [number, number][]): [number, number][] {
  const edges: [number, number][] = []
  const seen = new Set<string>()
  const add = (a: number, b: number) => {
    const k = a < b ? `${a},${b}` : `${b},${a}`
    if (a === b || seen.has(k)) return
    seen.add(k)
    edges.push([a, b])
  }
  for (let i = 1; i < n; i++) add(parents[i] % i, i)
  for (const [a, b] of extra) add(a % n, b % n)
  return edges
}

/** A Gossip whose clock starts at `start`, as if the wall clock read that. */
export function bornAt(start: number, id: string, config: Config): Gossip {
  const now = Clock.now
  Clock.now = () => start
  try {
    return new Gossip(id, config)
  } finally {
    Clock.now = now
  }
}

/** Each node's state as comparable plain data. */
export function stateOf(g: Gossip): Record<string, [unknown, string, number]> {
  const out: Record<string, [unknown, string, number]> = Object.create(null)
  for (const k of [...Object.keys(g.state)].sort()) {
    const u = g.state[k] as Update
    out[k] = [u.value, u.source_id, u.version]
  }
  return out
}

/** The highest version of `source` that `g` has seen. */
export function maxOf(g: Gossip, source: string): number {
  return g.history.sources.get(source)?.max ?? -Infinity
}

/**
 * The paper's invariant, for every ordered pair (p, q) and every key k that
 * q has written (mu_q(q)(k), shared keys included, whatever resolve made of
 * them): p holds q's mapping of k, or a newer one, or its version is above
 * p's max for q. Returns the violations. (A third node's copy of q's mapping
 * may be stale, so the invariant is stated against q's own.)
 */
export function invariantViolations(nodes: Gossip[]): string[] {
  const bad: string[] = []
  for (const p of nodes) {
    for (const q of nodes) {
      if (p === q) continue
      for (const u of q.history.mappings()) {
        if (u.source_id !== q.id) continue
        const mine = p.history.mapping(u.source_id, u.key)
        if (mine !== undefined && mine.version >= u.version) continue
        if (u.version > maxOf(p, u.source_id)) continue
        bad.push(`${p.id} lacks ${describe(u)} held by ${q.id} but its max for ${u.source_id} is ${maxOf(p, u.source_id)}`)
      }
    }
  }
  return bad
}

export function describe(u: Update): string {
  return `${u.key}=${JSON.stringify(u.value)}@${u.source_id}:${u.version}`
}
