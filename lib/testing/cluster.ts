/**
 * In-process clusters for tests: nodes on a simulated clock (each with its
 * own skew), links that can be cut, healed and lose what is in flight, and
 * restarts of every kind a node can go through. A test decides exactly when
 * exchanges happen and looks at every node between them.
 */
import type { InvalidCode } from '../codes'
import { Clock } from '../clock'
import { Gossip, type PeerStream } from '../gossip'
import type { Config, Message, StateStore, Update } from '../types'

/**
 * How a node keeps its state across a restart. The cluster asks `open` for
 * the first incarnation and `reopen` for every later one; `'nothing'`
 * restarts never reach it (the node starts over without state).
 */
export interface Persistence {
  readonly name: string
  /** What a restart keeps: every mapping and the delete record, or only the resolved view (a bare store object). */
  readonly keeps: 'everything' | 'view'
  /** Start node `id`. */
  open(id: string, config: Config): Promise<Gossip>
  /** Start `node` again from what was kept: `clean` after a clean stop, else as if its process died. */
  reopen(node: Gossip, config: Config, clean: boolean): Promise<Gossip>
  /** Forget what is kept of `id` (a restart from nothing). */
  wipe(id: string): Promise<void>
  /** Optional: release what the persistence holds (files, handles) once a run is over. */
  dispose?(): Promise<void>
}

/** State in memory; a restart restores the snapshot the node took as it stopped. */
export const memory: Persistence = {
  name: 'snapshot',
  keeps: 'everything',
  open: async (id, config) => new Gossip(id, config),
  reopen: async (node, config) => Gossip.restore(node.id, config, JSON.parse(JSON.stringify(node.snapshot()))),
  wipe: async () => undefined,
}

/**
 * The original API's store object: an object holding the resolved view
 * (and, under reserved keys, every other mapping and the node's record),
 * kept across restarts. `make` gives a node's store (a plain object by
 * default; a Proxy over your own database will do): it is called when a
 * node first starts and after a restart from nothing, and the same object is
 * handed to every other restart.
 */
export function storeObject(
  make: (id: string) => StateStore = () => ({}),
  name = 'store object',
): Persistence & { store(id: string): StateStore | undefined } {
  const stores = new Map<string, StateStore>()
  const storeOf = (id: string): StateStore => {
    let store = stores.get(id)
    if (store === undefined) stores.set(id, (store = make(id)))
    return store
  }
  return {
    name,
    keeps: 'everything',
    store: (id) => stores.get(id),
    open: async (id, config) => new Gossip(id, config, storeOf(id)),
    reopen: async (node, config) => new Gossip(node.id, config, storeOf(node.id)),
    wipe: async (id) => {
      stores.delete(id)
    },
  }
}

/** A link between two nodes: a stream at each end while it is up. */
export interface Link {
  readonly a: string
  readonly b: string
  sa: PeerStream | null
  sb: PeerStream | null
}

/** Options of {@link Cluster}. */
export interface ClusterOptions {
  /** The node ids. */
  ids: readonly string[]
  /** Each node's configuration. */
  config: (id: string) => Config
  /** Each node's clock skew in ms (its wall clock reads the cluster's time plus this). Default 0. */
  skew?: (id: string) => number
  /** Each node's persistence. Default {@link memory}. */
  persistence?: (id: string) => Persistence
  /** The pairs of nodes joined by a link. Default: every pair. */
  links?: readonly (readonly [string, string])[]
  /** Where the simulated clock starts, in µs. Default 1.7e15 (2023). */
  start?: number
}

/**
 * Nodes on one simulated clock, every pair joined by a link. Time moves
 * only when told (`advance`); nothing moves on a link until `exchange`.
 */
export class Cluster {
  /** The nodes by id (a restart replaces the object). */
  readonly nodes = new Map<string, Gossip>()
  readonly links: Link[] = []
  /** The simulated wall clock, µs. */
  now: number
  /** Updates (not digests) moved over every link so far. */
  updatesMoved = 0
  /** Every `'invalid'` report of a link's stream: [node, reason, code]. */
  readonly invalid: [string, string, InvalidCode][] = []
  private readonly options: ClusterOptions
  private readonly persistence = new Map<string, Persistence>()
  private readonly listeners: ((node: Gossip) => void)[] = []

  private constructor(options: ClusterOptions) {
    this.options = options
    this.now = options.start ?? 1.7e15
  }

  /** A cluster of `options.ids`, every pair linked, every link up. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(options)
    const realNow = Clock.now
    Clock.now = () => c.now
    c.restoreClock = () => {
      Clock.now = realNow
    }
    for (const id of options.ids) {
      const p = options.persistence?.(id) ?? memory
      c.persistence.set(id, p)
      c.nodes.set(id, await c.onClock(id, () => p.open(id, options.config(id))))
    }
    const ids = options.ids
    if (options.links !== undefined) {
      for (const [a, b] of options.links) if (a !== b && !c.links.some((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a))) c.links.push({ a, b, sa: null, sb: null })
    } else {
      for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) c.links.push({ a: ids[i], b: ids[j], sa: null, sb: null })
    }
    for (const l of c.links) c.up(l)
    return c
  }

  /** Put `Clock.now` back as it was before {@link start}. */
  restoreClock: () => void = () => undefined

  /** Call `fn` with every node now and every node a restart makes from now on. */
  onNode(fn: (node: Gossip) => void): void {
    this.listeners.push(fn)
    for (const n of this.nodes.values()) fn(n)
  }

  /** The node `id`. */
  node(id: string): Gossip {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  // Run `make` with Clock.now reading node `id`'s skewed clock (a node's
  // clock keeps the reading function it was made with).
  private async onClock<T>(id: string, make: () => Promise<T>): Promise<T> {
    const skew = (this.options.skew?.(id) ?? 0) * 1000
    const cluster = this
    const saved = Clock.now
    Clock.now = () => cluster.now + skew
    try {
      return await make()
    } finally {
      Clock.now = saved
    }
  }

  /** Move the simulated clock `ms` forward. */
  advance(ms: number): void {
    this.now += Math.round(ms * 1000)
  }

  /** Bring a link up with fresh streams (a new connection). */
  up(l: Link): void {
    if (l.sa !== null) return
    l.sa = this.node(l.a).createStream({ local_writes: false })
    l.sb = this.node(l.b).createStream({ local_writes: false })
    l.sa.on('invalid', (_o: unknown, reason: string, code: InvalidCode) => this.invalid.push([l.a, reason, code]))
    l.sb.on('invalid', (_o: unknown, reason: string, code: InvalidCode) => this.invalid.push([l.b, reason, code]))
  }

  /** Cut a link: its connection is gone, with whatever was in flight. */
  down(l: Link): void {
    l.sa?.destroy()
    l.sb?.destroy()
    l.sa = null
    l.sb = null
  }

  /** Cut every link between `group` and the rest. */
  partition(group: ReadonlySet<string>): void {
    for (const l of this.links) if (group.has(l.a) !== group.has(l.b)) this.down(l)
  }

  /** Every link up (with a new connection where it was down). */
  heal(): void {
    for (const l of this.links) this.up(l)
  }

  /** The link between `a` and `b`. */
  link(a: string, b: string): Link {
    const l = this.linkOrNull(a, b)
    if (l === null) throw new Error(`no link ${a}-${b}`)
    return l
  }

  /** The link between `a` and `b`, or null when the topology has none. */
  linkOrNull(a: string, b: string): Link | null {
    return this.links.find((x) => (x.a === a && x.b === b) || (x.a === b && x.b === a)) ?? null
  }

  /**
   * One exchange on the link between `from` and `to`, started by `from`:
   * its digest, the answer and the answer's answer. With `cut`, the link
   * dies after that many messages have crossed it (what was in flight is
   * lost). `how` is `'twice'` for `from` starting again once its first
   * digest has crossed (two questions in flight, the second crossing the
   * first's answer: a digest repeated), `'crossed'` for both ends starting
   * at once (their questions cross). Returns the messages moved; 0 when the
   * link is down or there is none.
   */
  async exchange(from: string, to: string, cut = Infinity, how: 'once' | 'twice' | 'crossed' = 'once'): Promise<number> {
    const l = this.linkOrNull(from, to)
    if (l === null || l.sa === null || l.sb === null) return 0
    const [sf, st] = l.a === from ? [l.sa, l.sb] : [l.sb, l.sa]
    sf.gossip()
    if (how === 'crossed') st.gossip()
    let again = how === 'twice'
    let moved = 0
    for (;;) {
      let n = 0
      for (const [src, dst] of [
        [sf, st],
        [st, sf],
      ] as const) {
        for (let m = src.read() as Message | null; m !== null; m = src.read() as Message | null) {
          if (moved >= cut) {
            this.down(l)
            return moved
          }
          dst.write(m)
          moved++
          n++
          if (!('digest' in m)) this.updatesMoved++
        }
        if (again && src === sf) {
          // The first question has crossed; its answer has not: ask again.
          again = false
          sf.gossip()
        }
      }
      const busy = sf.writableLength > 0 || st.writableLength > 0
      if (n === 0 && !busy) return moved
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /** Every live link exchanges once each way, in link order. Returns the messages moved. */
  async round(): Promise<number> {
    let moved = 0
    for (const l of this.links) {
      moved += await this.exchange(l.a, l.b)
      moved += await this.exchange(l.b, l.a)
    }
    return moved
  }

  /**
   * Restart node `id`: `'clean'` (stopped, then started from what its
   * persistence kept), `'crash'` (as if its process died), or `'nothing'`
   * (from no state at all). Its links come back up with new connections.
   */
  async restart(id: string, kind: 'clean' | 'crash' | 'nothing'): Promise<Gossip> {
    const old = this.node(id)
    const touching = this.links.filter((l) => l.a === id || l.b === id)
    const wasUp = touching.map((l) => l.sa !== null)
    for (const l of touching) this.down(l)
    const p = this.persistence.get(id) as Persistence
    const config = this.options.config(id)
    // A restart takes time: a process is never back within the same
    // millisecond (a node restarted from nothing starts its clock at the
    // wall clock, above what its past used unless that ran further ahead).
    this.advance(1)
    let node: Gossip
    if (kind === 'nothing') {
      await p.wipe(id)
      node = await this.onClock(id, () => p.open(id, config))
    } else {
      node = await this.onClock(id, () => p.reopen(old, config, kind === 'clean'))
    }
    old.destroy()
    this.nodes.set(id, node)
    touching.forEach((l, i) => {
      if (wasUp[i]) this.up(l)
    })
    for (const fn of this.listeners) fn(node)
    return node
  }

  /** What `persistence` a node runs with. */
  persistenceOf(id: string): Persistence {
    return this.persistence.get(id) as Persistence
  }

  /** Every stream of every live link: in sync with its peer since its last exchange? */
  unsynced(): string[] {
    const out: string[] = []
    for (const l of this.links) {
      if (l.sa === null || l.sb === null) continue
      if (!l.sa.synced) out.push(`${l.a}->${l.b}`)
      if (!l.sb.synced) out.push(`${l.b}->${l.a}`)
    }
    return out
  }
}

/**
 * A node's resolved view as plain, comparable data: key -> [value, source,
 * version]. Deleted keys are left out (a store object holds a key's
 * tombstone as its entry until it is collected).
 */
export function viewOf(g: Gossip): Record<string, [unknown, string, number]> {
  const out: Record<string, [unknown, string, number]> = {}
  for (const k of Object.keys(g.state).sort()) {
    const u = entryOf(g, k)
    if (u !== undefined) out[k] = [u.value, u.source_id, u.version]
  }
  return out
}

/** The entry of `key` in `g`'s view, undefined when absent or deleted. */
export function entryOf(g: Gossip, key: string): Update | undefined {
  const u = g.get(key)
  return u.version === -Infinity ? undefined : (u as Update)
}
