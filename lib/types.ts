/**
 * The four shapes of object a gossip stream reads and writes, and the
 * configuration a node is built from.
 *
 * @packageDocumentation
 */

/**
 * A delta in the paper's sense: source `source_id` mapped `key` to `value`
 * at `version`. Every update a node holds or sends has this shape.
 * Objects of this shape are shared between streams and nodes: never mutate
 * one.
 */
export interface Update<V = unknown> {
  readonly key: string
  readonly value: V
  readonly source_id: string
  readonly version: number
}

/** A local write, as written into the stream: `gossip.set(key, value)`. */
export interface LocalWrite<V = unknown> {
  readonly key: string
  readonly value: V
}

/**
 * One line of a digest: "I hold everything of `source_id` up to `version`".
 * `id` is accepted as an alias of `source_id` on input (the original wrote
 * that); output always uses `source_id`.
 */
export interface DigestEntry {
  readonly digest: true
  readonly source_id: string
  readonly version: number
}

/** Ends a digest. The receiver answers when it reads this. */
export interface DigestDone {
  readonly digest: true
  readonly done: true
}

/** Anything a gossip stream reads out. */
export type Message = Update | DigestEntry | DigestDone

/** What `get` returns for a key the node does not hold. */
export interface Missing {
  readonly version: number
  readonly value: null
}

/**
 * A total order over updates (same contract as `Array.prototype.sort`'s
 * comparator). Resolution policies that depend on it converge only if it is
 * a strict total order: no two distinct updates compare equal.
 */
export type Comparator = (a: Update, b: Update) => number

/**
 * What a resolution policy may look at: the node's current mapping of a key,
 * its identity, clock and configured order.
 */
export interface ResolutionContext {
  readonly id: string
  readonly version: number
  readonly sort: Comparator
  get(key: string): Update | Missing
}

/**
 * Decides whether `update` replaces the node's current mapping of
 * `update.key`. Must be deterministic and depend only on the update and the
 * current mapping, or replicas will not converge.
 */
export type Resolve = (gossip: ResolutionContext, update: Update) => boolean

/** Which sources go first when the deltas of an exchange exceed the mtu. */
export type Order = 'depth' | 'breadth'

/** Configuration of a {@link Gossip} node. */
export interface Config {
  /** Deltas per exchange, and the streams' highWaterMark. Default 100. */
  mtu?: number
  /**
   * How many updates the history indexes before it forgets the oldest.
   * Forgetting costs speed (a far-behind peer is answered by a scan of the
   * state), never convergence. Default 1000; `Infinity` never forgets.
   */
  max_history?: number
  /** Required: decides which update wins a key. See `base.resolution`. */
  resolve: Resolve | null
  /** Total order over updates used by `lww_vs_clock`. Default `base.sort`. */
  sort?: Comparator
  /** `'depth'` (default) or `'breadth'`: the paper's two orderings. */
  order?: Order
  /** Source of randomness for tie-breaking, in [0, 1). Default `Math.random`. */
  random?: () => number
}

/** A node's saved state, as `gossip.snapshot()` returns it. */
export interface Snapshot {
  /** The node's clock when the snapshot was taken. */
  readonly version: number
  /** Every mapping the node held. */
  readonly updates: readonly Update[]
}
