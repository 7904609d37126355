/**
 * A reference model of what a cluster was asked to do: every write, delete
 * and withdrawal each node issued, with its version, and every delete each
 * node took in. Checks a {@link Cluster} against it: no node shows a value a
 * delete it took beats (unless that delete's source replaced it since);
 * after healing every node agrees, and each key holds the winner of every
 * node's latest operation on it (last writer wins by version, then source
 * id; absent exactly when a delete wins; a withdrawal is no say).
 */
import type { Gossip } from '../gossip'
import type { Update } from '../types'
import { entryOf, viewOf, type Cluster } from './cluster'

/** One operation a node issued, as its own log recorded it. */
export interface Op {
  readonly kind: 'set' | 'delete' | 'withdraw'
  readonly node: string
  readonly key: string
  readonly value: unknown
  readonly version: number
  /** Lost with its node's state before any other node had it (a restart from nothing, or a bare store object's). */
  lost: boolean
}

/** Last writer wins: by version, then source id. True if `a` beats `b`. */
export function lwwBeats(a: { version: number; source_id?: string; node?: string }, b: { version: number; source_id?: string; node?: string }): boolean {
  if (a.version !== b.version) return a.version > b.version
  return (a.source_id ?? a.node ?? '') > (b.source_id ?? b.node ?? '')
}

export class Model {
  /** Every operation, by node, version, kind, key and value. */
  readonly ops = new Map<string, Op>()
  // Per node: the tombstones it took in, by key.
  private readonly taken = new Map<string, Map<string, Update[]>>()
  private readonly watched = new WeakSet<Gossip>()
  /**
   * Set while the test settles late writes with `'drop'`: the withdrawals
   * made then need no tombstone (docs/deletes.md, rule 7).
   */
  dropping = false
  // Withdrawals no delete the node took called for (see withdrawals()).
  private readonly unjustified: string[] = []

  constructor(private readonly cluster: Cluster) {
    cluster.onNode((g) => this.watch(g))
  }

  // Per source and key: per node, the highest version of that source's
  // mapping of the key the node took (its own writes included). A node
  // that restarts losing state loses its entries here.
  private readonly reach = new Map<string, Map<string, number>>()

  // Every mapping a node records of its own is an operation it issued (its
  // own past coming back from peers after a restart is one it issued
  // before); every mapping it records reaches it; every tombstone it
  // records is one it took.
  private watch(g: Gossip): void {
    if (this.watched.has(g)) return
    this.watched.add(g)
    g.history.on('update', (u: Update) => {
      if (u.source_id === g.id) {
        const kind = u.deleted === true ? 'delete' : u.withdrawn === true ? 'withdraw' : 'set'
        if (kind === 'withdraw' && !this.dropping) this.justify(g.id, u)
        // A node restarted from nothing may use a version again: the
        // operation is what tells them apart; one seen again is not lost.
        const tag = `${g.id}@${u.version}@${kind}@${u.key}@${JSON.stringify(u.value)}`
        const had = this.ops.get(tag)
        if (had === undefined) this.ops.set(tag, { kind, node: g.id, key: u.key, value: u.value, version: u.version, lost: false })
        else had.lost = false
      }
      const at = `${u.source_id}\u0000${u.key}`
      let r = this.reach.get(at)
      if (r === undefined) this.reach.set(at, (r = new Map()))
      if ((r.get(g.id) ?? -Infinity) < u.version) r.set(g.id, u.version)
      if (u.deleted === true) {
        let byKey = this.taken.get(g.id)
        if (byKey === undefined) this.taken.set(g.id, (byKey = new Map()))
        const list = byKey.get(u.key)
        if (list === undefined) byKey.set(u.key, [u])
        else list.push(u)
      }
    })
  }

  // Rule 2: a node withdraws its value of a key only when a tombstone it
  // took beats the last operation it issued on the key (in the order
  // issued, which a restart keeps: its past comes back as the operations
  // it issued then). One that withdraws a newer write, one the delete did
  // not beat, loses it (attack round 3, finding D).
  private justify(node: string, w: Update): void {
    let last: Op | undefined
    for (const o of this.ops.values()) if (o.node === node && o.key === w.key && !o.lost && o.version !== w.version) last = o
    if (last === undefined || last.kind !== 'set') return
    const op = last
    const tombs = this.taken.get(node)?.get(w.key) ?? []
    if (tombs.some((t) => lwwBeats(t, { version: op.version, source_id: node }))) return
    this.unjustified.push(`${node} withdrew ${w.key} at ${w.version}: its last write ${JSON.stringify(op.value)}@${op.version} is beaten by no delete it took`)
  }

  /** Withdrawals no delete the node took called for (each reported once). */
  withdrawals(): string[] {
    return this.unjustified.splice(0)
  }

  /**
   * Before node `id` restarts keeping `keeps` ('everything', 'view' or
   * 'none'): it loses what it took, but (for a view) its own entries; then
   * every operation no node took (it, or a newer mapping of its node and
   * key) is lost. A node that forgets what it collected forgets the deletes
   * it took.
   */
  restarting(id: string, keeps: 'everything' | 'view' | 'none'): void {
    if (keeps === 'everything') return
    const node = this.cluster.node(id)
    for (const [at, r] of this.reach) {
      if (!r.has(id)) continue
      r.delete(id)
      if (keeps !== 'view') continue
      const [source, key] = at.split('\u0000')
      const entry = node.state[key] as Update | undefined
      if (source === id && entry !== undefined && entry.source_id === id) r.set(id, entry.version)
    }
    // A node's newest operation on a key also reached every node whose
    // digest covers it (it took it, or it was collected before it came).
    const newest = new Map<string, number>()
    for (const op of this.ops.values()) {
      const at = `${op.node}\u0000${op.key}`
      if ((newest.get(at) ?? -Infinity) < op.version) newest.set(at, op.version)
    }
    for (const op of this.ops.values()) {
      if (op.lost) continue
      const at = `${op.node}\u0000${op.key}`
      const r = this.reach.get(at)
      let best = -Infinity
      if (r !== undefined) for (const v of r.values()) if (v > best) best = v
      if (best >= op.version) continue
      if (newest.get(at) === op.version && this.covered(id, op)) continue
      op.lost = true
    }
    this.taken.delete(id)
  }

  // Whether a node other than `restarting` has a digest covering `op`.
  private covered(restarting: string, op: Op): boolean {
    for (const [id, g] of this.cluster.nodes) {
      if (id === restarting || id === op.node) continue
      if ((g.history.sources.get(op.node)?.max ?? -Infinity) >= op.version) return true
    }
    return false
  }

  /**
   * The operations on `key` that count: each node's latest one not lost (a
   * node's operation replaces its earlier ones, as its log does); a
   * withdrawal counts as no say at all.
   */
  live(key: string): Op[] {
    const latest = new Map<string, Op>()
    for (const o of this.ops.values()) {
      if (o.key !== key || o.lost) continue
      const had = latest.get(o.node)
      if (had === undefined || o.version > had.version) latest.set(o.node, o)
    }
    return [...latest.values()].filter((o) => o.kind !== 'withdraw')
  }

  /** The winner of `key`: the value it must hold, or undefined when absent. */
  winner(key: string): Op | undefined {
    let best: Op | undefined
    for (const o of this.live(key)) if (best === undefined || lwwBeats(o, best)) best = o
    return best?.kind === 'set' ? best : undefined
  }

  /** Every key any operation touched. */
  keys(): string[] {
    return [...new Set([...this.ops.values()].map((o) => o.key))].sort()
  }

  // Whether `u`'s node issued a later operation on its key (not lost).
  private replaced(u: Update): boolean {
    for (const o of this.ops.values()) if (o.node === u.source_id && o.key === u.key && o.version > u.version && !o.lost) return true
    return false
  }

  /** Nodes showing a value that a delete they took beats (a deleted value back). */
  resurrections(): string[] {
    const bad: string[] = []
    for (const [id, byKey] of this.taken) {
      const g = this.cluster.nodes.get(id)
      if (g === undefined) continue
      for (const [key, tombs] of byKey) {
        const e = entryOf(g, key)
        if (e === undefined) continue
        // A delete its own source replaced since (with a newer write, or by
        // withdrawing that write) no longer speaks for it.
        const t = tombs.find((x) => lwwBeats(x, e) && !this.replaced(x))
        if (t !== undefined) bad.push(`${id} shows ${key}=${JSON.stringify(e.value)}@${e.source_id}:${e.version}, deleted by ${t.source_id}:${t.version}`)
      }
    }
    return bad
  }

  /** After healing: every node holds the same view and sources, and each key holds its winner. */
  disagreements(): string[] {
    const bad: string[] = []
    const nodes = [...this.cluster.nodes.values()]
    const first = nodes[0]
    const view = JSON.stringify(viewOf(first))
    const keys = new Set(this.keys())
    for (const g of nodes) for (const k of Object.keys(viewOf(g))) keys.add(k)
    for (const g of nodes.slice(1)) {
      const v = JSON.stringify(viewOf(g))
      if (v !== view) bad.push(`${g.id} holds ${v}, ${first.id} ${view}`)
    }
    for (const k of keys) {
      const s0 = sourcesOf(first, k)
      for (const g of nodes.slice(1)) {
        const s = sourcesOf(g, k)
        if (s !== s0) bad.push(`sources(${k}): ${g.id} ${s}, ${first.id} ${s0}`)
      }
      const w = this.winner(k)
      for (const g of nodes) {
        const e = entryOf(g, k)
        if (w === undefined && e !== undefined) bad.push(`${g.id} holds ${k}=${JSON.stringify(e.value)}@${e.source_id}:${e.version}, the model has it absent`)
        else if (w !== undefined && (e === undefined || e.source_id !== w.node || e.version !== w.version)) {
          bad.push(`${g.id} holds ${k}=${e === undefined ? 'nothing' : `${JSON.stringify(e.value)}@${e.source_id}:${e.version}`}, the model ${JSON.stringify(w.value)}@${w.node}:${w.version}`)
        }
      }
    }
    return bad
  }
}

function sourcesOf(g: Gossip, key: string): string {
  return JSON.stringify(g.sources(key).map((u) => [u.source_id, u.version, u.value]))
}
