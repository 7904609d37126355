/**
 * A reference model of what a cluster was asked to do: every write, delete
 * and withdrawal each node issued, with its version, and every delete each
 * node took in. Checks a {@link Cluster} against it:
 * - always: the paper's invariant (no node's max of a source passes a
 *   mapping of that source it lacks), and, after healing, that every node
 *   holds the same `state` and `sources(key)`;
 * - when the policy declares the order it keeps the greatest of (last
 *   writer wins by version, then source id, for the shipped
 *   last-writer-wins policies): each key holds the greatest of every node's
 *   latest operation on it (absent exactly when a delete wins; a withdrawal
 *   is no say), and no node shows a value a delete it took beats (unless
 *   that delete's source replaced it since).
 */
import type { Gossip } from '../gossip'
import type { Comparator, Update } from '../types'
import { entryOf, viewOf, type Cluster } from './cluster'

/** One operation a node issued, as its own log recorded it. */
export interface Op {
  readonly kind: 'set' | 'delete' | 'withdraw'
  readonly node: string
  readonly key: string
  readonly value: unknown
  readonly version: number
  /** The version a write issued again (R2, R7) was first issued at: where every node ranks it. */
  readonly first?: number
  /** Lost with its node's state before any other node had it (a restart from nothing, or a bare store object's). */
  lost: boolean
}

/** Last writer wins: by version, then source id. True if `a` beats `b`. */
export function lwwBeats(a: { version: number; source_id?: string; node?: string }, b: { version: number; source_id?: string; node?: string }): boolean {
  if (a.version !== b.version) return a.version > b.version
  return (a.source_id ?? a.node ?? '') > (b.source_id ?? b.node ?? '')
}

/** The update an operation wrote. */
export function updateOf(o: Op): Update {
  const u: Update = { key: o.key, value: o.kind === 'set' ? o.value : null, source_id: o.node, version: o.version, ...(o.first === undefined ? {} : { first: o.first }) }
  return o.kind === 'delete' ? { ...u, deleted: true } : o.kind === 'withdraw' ? { ...u, withdrawn: true } : u
}

/** Options of {@link Model}. */
export interface ModelOptions {
  /**
   * The order the policy keeps the greatest of, over updates (tombstones
   * included, with value null and `deleted: true`): positive when the
   * first is greater. Without it the model checks agreement and the
   * invariant only. Default: last writer wins by (version, source id).
   */
  order?: Comparator | null
}

/** Last writer wins by (version, source id), as a comparator. */
export const lwwOrder: Comparator = (a, b) => (lwwBeats(a, b) ? 1 : lwwBeats(b, a) ? -1 : 0)

export class Model {
  /** Every operation, by node, version, kind, key and value. */
  readonly ops = new Map<string, Op>()
  // Per node: the tombstones it took in, by key.
  private readonly taken = new Map<string, Map<string, Update[]>>()
  // Per node: other sources' values it took in, by key (see justify).
  private readonly takenValues = new Map<string, Map<string, Update[]>>()
  private readonly watched = new WeakSet<Gossip>()
  /**
   * Set while the test settles late writes: the withdrawals made then (a
   * drop, or a keep of a value a newer write beats) need no tombstone
   * (docs/deletes.md, rule 7).
   */
  dropping = false
  // Withdrawals no delete the node took called for (see withdrawals()).
  private readonly unjustified: string[] = []
  // Withdrawals of a value of a node's past, decided before a peer showed
  // it a newer write of that past the delete did not beat: the node must
  // report that write late (docs/deletes.md, R4). Per node, key and the
  // write's version: the withdrawal's version and what it did.
  private readonly owed = new Map<string, { node: string; key: string; version: number; withdrawal: number; what: string }>()
  /** The order the policy declares, or null. */
  readonly order: Comparator | null

  constructor(
    private readonly cluster: Cluster,
    options: ModelOptions = {},
  ) {
    this.order = options.order === undefined ? lwwOrder : options.order
    cluster.onNode((g) => this.watch(g))
  }

  // Whether `a` beats `b` under the declared order, each at the version
  // every node ranks it at: `first` for a write issued again (R2, as
  // Replica.decide shows it to resolve).
  private beats(a: Update, b: Update): boolean {
    return this.order !== null && this.order(placed(a), placed(b)) > 0
  }

  // Per node that lost state in a restart: the highest version of its own it may have issued before.
  private readonly past = new Map<string, number>()

  // Per node that lost state in a restart, per other node: how far that
  // node's copy of it went while it was the log it lost (see covered).
  private readonly pastCopies = new Map<string, Map<string, number>>()

  // Per node: the sources it is refetching (its digest names them from scratch).
  private readonly refetching = new Map<string, Set<string>>()

  // Per source: the highest version of its markers any node collected.
  private readonly collected = new Map<string, number>()

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
    g.on('refetch', (source: string) => {
      let r = this.refetching.get(g.id)
      if (r === undefined) this.refetching.set(g.id, (r = new Set()))
      r.add(source)
    })
    g.on('refetched', (source: string) => this.refetching.get(g.id)?.delete(source))
    g.on('late', (ups: readonly Update[]) => {
      for (const u of ups) this.owed.delete(`${g.id}\u0000${u.key}\u0000${u.version}`)
    })
    g.history.on('forget', (u: Update) => {
      if (u.deleted !== true && u.withdrawn !== true) return
      if ((this.collected.get(u.source_id) ?? -Infinity) < u.version) this.collected.set(u.source_id, u.version)
    })
    g.history.on('update', (u: Update) => {
      if (u.source_id === g.id) {
        const kind = u.deleted === true ? 'delete' : u.withdrawn === true ? 'withdraw' : 'set'
        // A node restarted from nothing may use a version again: the
        // operation is what tells them apart; one seen again is not lost.
        const tag = `${g.id}@${u.version}@${kind}@${u.key}@${JSON.stringify(u.value)}`
        const had = this.ops.get(tag)
        // (One of its past come back was judged when it was issued.)
        if (kind === 'withdraw' && had === undefined && !this.dropping) this.justify(g.id, u)
        if (had === undefined) this.ops.set(tag, { kind, node: g.id, key: u.key, value: u.value, version: u.version, ...(u.first === undefined ? {} : { first: u.first }), lost: false })
        else had.lost = false
      }
      const at = `${u.source_id}\u0000${u.key}`
      let r = this.reach.get(at)
      if (r === undefined) this.reach.set(at, (r = new Map()))
      if ((r.get(g.id) ?? -Infinity) < u.version) r.set(g.id, u.version)
      const into = u.deleted === true ? this.taken : u.source_id !== g.id && u.withdrawn !== true ? this.takenValues : null
      if (into !== null) {
        let byKey = into.get(g.id)
        if (byKey === undefined) into.set(g.id, (byKey = new Map()))
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
  // A copy of a write the node issued again above its past (R2) yields
  // so too to another source's value it took that beats the write at the
  // version first issued (it lost to it anyway): the write first issued is
  // the earliest of the node's operations on the key, just before, that
  // set that very value (the model's values are unique).
  private justify(node: string, w: Update): void {
    let last: Op | undefined
    let first: Op | undefined
    for (const o of this.ops.values()) {
      if (o.node !== node || o.key !== w.key || o.lost || o.version === w.version) continue
      if (last === undefined || o.kind !== 'set' || last.kind !== 'set' || JSON.stringify(o.value) !== JSON.stringify(last.value)) first = o
      last = o
    }
    if (last === undefined || last.kind !== 'set' || this.order === null) return
    const op = updateOf(last)
    const tombs = this.taken.get(node)?.get(w.key) ?? []
    if (tombs.some((t) => this.beats(t, op))) return
    const atFirst = first === undefined ? op : { ...op, version: first.version }
    if ((this.takenValues.get(node)?.get(w.key) ?? []).some((t) => this.beats(t, atFirst))) return
    const what = `${node} withdrew ${w.key} at ${w.version}: its last write ${JSON.stringify(op.value)}@${op.version} is beaten by no delete it took`
    // A node that lost its log judges its past by the peers heard so far.
    if (last.version <= (this.past.get(node) ?? -Infinity)) {
      this.owed.set(`${node}\u0000${w.key}\u0000${last.version}`, { node, key: w.key, version: last.version, withdrawal: w.version, what })
      return
    }
    this.unjustified.push(`${node} withdrew ${w.key} at ${w.version}: its last write ${JSON.stringify(op.value)}@${op.version} is beaten by no delete it took`)
  }

  /** Withdrawals no delete the node took called for (each reported once). */
  withdrawals(): string[] {
    return this.unjustified.splice(0)
  }

  /**
   * After healing: withdrawals of a newer write of a node's past (see
   * owed) that the node never reported late, though no newer operation of
   * its replaced that write and it is not lost.
   */
  unreported(): string[] {
    const out: string[] = []
    for (const o of this.owed.values()) {
      let moot = false
      for (const op of this.ops.values()) {
        if (op.node !== o.node || op.key !== o.key) continue
        if ((op.version === o.version && op.lost) || (op.version > o.withdrawal && !op.lost)) moot = true
      }
      if (!moot) out.push(`${o.what}, and it never reported that write late`)
    }
    return out
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
    this.refetching.delete(id)
    const node = this.cluster.node(id)
    // Copies this node held of others' lost logs go with its state.
    for (const held of this.pastCopies.values()) held.delete(id)
    // How far each copy of its log went before the log was lost.
    let copies = this.pastCopies.get(id)
    if (copies === undefined) this.pastCopies.set(id, (copies = new Map()))
    for (const [other, g] of this.cluster.nodes) {
      const max = g.history.sources.get(id)?.max ?? -Infinity
      if (other !== id && max > (copies.get(other) ?? -Infinity)) copies.set(other, max)
    }
    // What it wrote so far is its past: peers give it back.
    let past = Math.max(this.past.get(id) ?? -Infinity, node.version)
    for (const g of this.cluster.nodes.values()) past = Math.max(past, g.history.sources.get(id)?.max ?? -Infinity)
    this.past.set(id, past)
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
    this.takenValues.delete(id)
  }

  // Whether a node other than `restarting` has a digest covering `op`.
  private covered(restarting: string, op: Op): boolean {
    // Of a node that lost its log since: only a copy of the log it lost
    // covers it (a copy of the log it rebuilt need not hold it).
    const copies = op.version <= (this.past.get(op.node) ?? -Infinity) ? this.pastCopies.get(op.node) : undefined
    for (const [id, g] of this.cluster.nodes) {
      if (id === restarting || id === op.node) continue
      const max = copies !== undefined ? (copies.get(id) ?? -Infinity) : (g.history.sources.get(op.node)?.max ?? -Infinity)
      if (max >= op.version) return true
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

  /** The winner of `key` under the declared order: the value it must hold, or undefined when absent (or no order is declared). */
  winner(key: string): Op | undefined {
    if (this.order === null) return undefined
    let best: Op | undefined
    for (const o of this.live(key)) if (best === undefined || this.beats(updateOf(o), updateOf(best))) best = o
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

  /** Nodes showing a value that a delete they took beats (a deleted value back); none when no order is declared. */
  resurrections(): string[] {
    const bad: string[] = []
    if (this.order === null) return bad
    for (const [id, byKey] of this.taken) {
      const g = this.cluster.nodes.get(id)
      if (g === undefined) continue
      for (const [key, tombs] of byKey) {
        const e = entryOf(g, key)
        if (e === undefined) continue
        // A delete its own source replaced since (with a newer write, or by
        // withdrawing that write) no longer speaks for it.
        const t = tombs.find((x) => this.beats(x, e) && !this.replaced(x))
        if (t !== undefined) bad.push(`${id} shows ${key}=${JSON.stringify(e.value)} by ${e.source_id}@${e.version}, which its delete by ${t.source_id}@${t.version} beats`)
      }
    }
    return bad
  }

  /**
   * The paper's invariant, for every ordered pair of nodes (p, q) and every
   * mapping q holds of its own: p holds it, or a newer one, or its version
   * is above p's max for q. The exception is the one docs/deletes.md (I1)
   * makes: a marker at or below a version of q's markers some node
   * collected (a copy is q's log "minus collected markers"); and a source
   * p is refetching, which p's digest names from scratch. Unless
   * `healed`, one more: a mapping from q's past before it restarted without
   * its state, which came back to q from a peer, may be missing where
   * what q wrote since carried its max (docs/deletes.md, Restarts: it is
   * offered on as a gap fill, and the gap closes as the cluster heals).
   */
  invariant(healed = false): string[] {
    const bad: string[] = []
    for (const p of this.cluster.nodes.values()) {
      for (const q of this.cluster.nodes.values()) {
        if (p === q) continue
        const max = p.history.sources.get(q.id)?.max ?? -Infinity
        if (max === -Infinity || this.refetching.get(p.id)?.has(q.id) === true) continue
        for (const u of q.history.mappings()) {
          if (u.source_id !== q.id || u.version > max) continue
          const mine = p.history.mapping(q.id, u.key)
          if (mine !== undefined && mine.version >= u.version) continue
          if ((u.deleted === true || u.withdrawn === true) && u.version <= (this.collected.get(q.id) ?? -Infinity)) continue
          if (!healed && u.version <= (this.past.get(q.id) ?? -Infinity)) continue
          bad.push(`${p.id} lacks ${show(u)}, though its digest names ${q.id} up to ${max}`)
        }
      }
    }
    return bad
  }

  /** After healing: every node holds the same view and sources, and each key holds its winner (when an order is declared). */
  disagreements(): string[] {
    const bad: string[] = []
    const nodes = [...this.cluster.nodes.values()]
    const first = nodes[0]
    const view = viewText(first)
    const keys = new Set(this.keys())
    for (const g of nodes) for (const k of Object.keys(viewOf(g))) keys.add(k)
    for (const g of nodes.slice(1)) {
      const v = viewText(g)
      if (v !== view) bad.push(`${g.id} holds ${v}; ${first.id} holds ${view}`)
    }
    for (const k of keys) {
      const s0 = sourcesOf(first, k)
      for (const g of nodes.slice(1)) {
        const s = sourcesOf(g, k)
        if (s !== s0) bad.push(`sources(${k}): ${g.id} has ${s}; ${first.id} has ${s0}`)
      }
      if (this.order === null) continue
      const w = this.winner(k)
      for (const g of nodes) {
        const e = entryOf(g, k)
        if (w === undefined && e !== undefined) bad.push(`${g.id} holds ${k}=${JSON.stringify(e.value)} by ${e.source_id}@${e.version}; the greatest write is a delete`)
        else if (w !== undefined && (e === undefined || e.source_id !== w.node || e.version !== w.version)) {
          bad.push(`${g.id} holds ${k}=${e === undefined ? 'nothing' : `${JSON.stringify(e.value)} by ${e.source_id}@${e.version}`}; the greatest write is ${k}=${JSON.stringify(w.value)} by ${w.node}@${w.version}`)
        }
      }
    }
    return bad
  }
}

// `u` at the version it is ranked at: `first` when issued again (R2).
function placed(u: Update): Update {
  if (u.first === undefined) return u
  const { first, ...rest } = u
  return { ...rest, version: first }
}

function show(u: Update): string {
  return `${u.deleted === true ? `the delete of ${u.key}` : u.withdrawn === true ? `the withdrawal of ${u.key}` : `${u.key}=${JSON.stringify(u.value)}`} by ${u.source_id}@${u.version}`
}

// A node's view, readable and comparable: `x=1 by n0@1700000000000001, ...`.
function viewText(g: Gossip): string {
  const parts = Object.entries(viewOf(g)).map(([k, [v, source, version]]) => `${k}=${JSON.stringify(v)} by ${source}@${version}`)
  return parts.length === 0 ? 'nothing' : parts.join(', ')
}

function sourcesOf(g: Gossip, key: string): string {
  const parts = g.sources(key).map((u) => `${JSON.stringify(u.value)} by ${u.source_id}@${u.version}`)
  return parts.length === 0 ? 'none' : parts.join(', ')
}
