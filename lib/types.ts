/**
 * A value refused as late (docs/deletes.md, rule 5): `[source, version,
 * key]`. The key lets its writer find it whatever its history still
 * indexes; peers of earlier releases send `[source, version]`.
 */
export type LateReport = readonly [string, number] | readonly [string, number, string]

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
  /**
   * With `config.security`: the source's signature over key, value,
   * source_id and version, passed on unchanged by relays. Absent otherwise.
   */
  readonly signature?: string
  /**
   * A delete (a tombstone): `gossip.delete(key)` writes one, with value
   * null. It wins or loses through `resolve` like any write; while it is a
   * key's entry the key is absent from `state` and `get`.
   */
  readonly deleted?: true
  /**
   * A withdrawal: the source holds no value for the key any more (a delete
   * of another source beat its value). Value: the version of the value it
   * withdraws (null from an older release). It never competes in
   * `resolve`; see docs/deletes.md, R6.
   */
  readonly withdrawn?: true
  /**
   * A write issued again above its source's past (docs/deletes.md, R2):
   * the version it was first issued at, below `version`. Every node places
   * it there among other sources' mappings (`resolve` is shown that
   * version); in its source's log it stands at `version`.
   */
  readonly first?: number
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
  /** On a digest's first entry: the sender's protocol (see DigestDone.protocol). */
  readonly protocol?: number
}

/**
 * Ends a digest. A digest that starts an exchange is a question: the
 * receiver answers it with its own digest, marked `reply: true`, and the
 * deltas the asker lacks. A reply is answered with deltas only, so no
 * sequence of lost, repeated or crossing digests makes two streams answer
 * each other forever.
 */
export interface DigestDone {
  readonly digest: true
  readonly done: true
  /** The sender's protocol (see PROTOCOL in shape.ts); a peer of an older one is refused (docs/wire.md). */
  readonly protocol?: number
  /** Set on the digest that answers a question. */
  readonly reply?: true
  /** The sender's allowed rate, under flow control. */
  readonly rate?: number
  /**
   * A digest too long for one message is sent in parts: this one names the
   * sources with ids after `after` through `through` (string order; an end
   * left out is open). The receiver answers for those ids alone: named
   * sources above their version, unnamed ones in full. A digest without
   * them covers every id.
   */
  readonly after?: string
  readonly through?: string
  /**
   * The sender's horizon: the highest version of a delete it collected. It
   * refuses a value new to it below this unless something it holds of that
   * key beats it (see docs/deletes.md, rule 5).
   */
  readonly horizon?: number
  /**
   * Sources whose copy at the receiver is behind markers the sender
   * collected: `{source: [gc, named]}` (see {@link StaleNotice}). The
   * receiver refetches each (see docs/deletes.md, rule 6).
   */
  readonly stale?: Readonly<Record<string, StaleNotice>>
  /** Values the sender refused as late, `[source, version, key]` (see {@link LateReport}, docs/deletes.md, rule 5). */
  readonly late?: readonly LateReport[]
  /** Under `config.security`, with `stale` or `late`: the member whose key signs them. */
  readonly notice_by?: string
  /** Under `config.security`, with `stale` or `late`: their signature, with `notice_nonce`, by `notice_by`. */
  readonly notice_signature?: string
  /** Under `config.security`, with `stale` or `late`: the receiver's latest `nonce`, so that they are good for it only. */
  readonly notice_nonce?: string
  /** Under `config.security`: a fresh random value the notices to the sender must sign. */
  readonly nonce?: string
  /**
   * The sender cannot vouch for its copy of its own id (it started without
   * state, or from an older one, and is still fetching its past): its
   * digest is no proof of a fresh copy (see docs/deletes.md, rule 6).
   */
  readonly recovering?: true
  /**
   * The sender's own id, while its digest asks for its past: the receiver
   * sends it all it holds of that id above where the digest names it,
   * above a max a refused late value holds back too (see docs/deletes.md,
   * rule 5).
   */
  readonly past?: string
  /**
   * The sources the sender refetches (`true`: every source, when the list
   * does not fit): it leaves their suspects out of its answers, so an
   * answer is not whole, and serves no refetch of them.
   */
  readonly withheld?: true | readonly string[]
  /**
   * Sources whose current life began without state, each with the first
   * version of that life (its floor), or `[floor, held]` once that life
   * holds its past whole up to `held`: the sender's own, once it wrote a
   * marker, and those it learned (see docs/deletes.md, rule 6).
   */
  readonly lives?: Readonly<Record<string, number | readonly [number, number]>>
  /** How many updates the sender holds that the receiver's digest lacks (progress). */
  readonly behind?: number
  /** False: the sender's stream takes no updates (`writable: false`): answer it with a digest only. */
  readonly accepts?: false
  /** False: the sender's stream sends no updates (`readable: false`): it is in sync once it holds what the receiver does. */
  readonly sends?: false
  /** The sender's stream filter: answer it with what passes. */
  readonly filter?: Filter
  /**
   * Sources two live nodes write as (twins), each with the milliseconds it
   * stays so: the receiver offers their mappings to its peers meanwhile
   * (see docs/operations.md, "Twins").
   */
  readonly twins?: Readonly<Record<string, number>>
}

/**
 * A stale notice about one source: the sender collected that source's
 * markers up to `gc` (its digest names the source at or above it), and saw
 * the receiver name it at `named`, below `gc` (0 when passed on by a peer
 * that refetches): the receiver's copy may hold what those markers replaced.
 * `floor`, when the sender knows it: the first version of the source's
 * current life, begun without state, and `held`, how far that life holds
 * its past whole (absent: none of it); what the receiver holds of the
 * source between the two is past the life may never have seen, which only
 * the source judges (rule 6).
 */
export type StaleNotice = readonly [gc: number, named: number, floor?: number, held?: number]

/**
 * Which mappings a stream carries, both ways: keys starting with one of
 * `prefixes` (all keys when absent), of the sources in `sources` (all when
 * absent) and not in `exclude_sources`. Plain data, so that it travels on
 * the stream's end-of-digest markers and both ends apply it: the exchange
 * settles, and no digest claims what a filter kept out.
 */
export interface Filter {
  readonly prefixes?: readonly string[]
  readonly sources?: readonly string[]
  readonly exclude_sources?: readonly string[]
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
  /** The resolved view, `state[key]`, as `gossip.state`. */
  readonly state: Readonly<Record<string, Update>>
  /** The key's current entry in `state`, or `{version: -Infinity, value: null}`. */
  get(key: string): Update | Missing
  /** Every source's current mapping of the key, whatever resolve decided of them. */
  sources(key: string): Update[]
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
  /** Deltas per exchange, and the streams' highWaterMark. Default (and when falsy) 100. */
  mtu?: number
  /**
   * The most bytes a message may take on the wire (its NDJSON lines; the
   * binary format never takes more). Off by default; at least 16 KiB. A
   * digest and its end take at most half of it (a digest that does not
   * fit is sent in parts), its answer the rest; a single update over half
   * of it is refused at `set` with a TypeError. Works with `mtu`: both
   * bounds hold. Set it alike on every node, as `mtu`.
   */
  mtu_bytes?: number
  /**
   * How many updates the history indexes before it forgets the oldest.
   * Forgetting costs speed (a far-behind peer is answered by a scan of the
   * state), never convergence. Default (and when falsy) 1000; `Infinity`
   * never forgets.
   */
  max_history?: number
  /** Required: decides which update wins a key. See `base.resolution`. */
  resolve: Resolve | null
  /**
   * Total order over updates: `lww_vs_clock` and `strictly_order_values`
   * use it, it orders `history.memory`, and each answer sent to a peer
   * follows it as far as the protocol allows (one source's updates always
   * leave in increasing version order). Default `base.sort`.
   */
  sort?: Comparator
  /** `'depth'` (default) or `'breadth'`: the paper's two orderings. */
  order?: Order
  /** Source of randomness for tie-breaking, in [0, 1). Default `Math.random`. */
  random?: () => number
  /**
   * Signed updates, off by default. With it, every local write is signed
   * with `security.sign`, and an update from a peer is accepted only if
   * `security.verify` returns true (otherwise it is reported as
   * `'invalid'`, before it can move the clock or the source's max). See
   * `ed25519` for a ready implementation.
   */
  security?: Security
  /**
   * Flow control (paper section 4), off by default. `true` turns it on with
   * the defaults; an object sets {@link FlowControlOptions}. While on, local
   * writes (`set`, `{key, value}`) beyond the allowed rate wait in a FIFO
   * backlog, `set` returns false while its write waits, and the node's
   * allowed rate travels as `rate` on its end-of-digest marker.
   */
  flow_control?: boolean | FlowControlOptions
  /**
   * Whether the node's streams (its own, and those of `createStream()`
   * unless told otherwise) take `{key, value}` as local writes. Default:
   * true without `security`, false with it (a peer must never write as the
   * node).
   */
  local_writes?: boolean
  /**
   * How long, in ms of time during which the node hears from peers, a
   * delete is remembered before it is collected (the node then forgets it).
   * Longer than any partition the cluster is to ride out; see
   * docs/deletes.md. Default one hour.
   */
  tombstone_grace?: number
  /** A filter every stream of the node applies unless given its own (see {@link Filter}). */
  filter?: Filter
  /** @internal For tests: the most sources one digest names, 2 or more (DIGEST_PART, see digest.ts, when unset or larger). */
  digest_part?: number
}

/**
 * Options of `config.flow_control`. Rates are updates per time unit of
 * `now` (per second by default).
 */
export interface FlowControlOptions {
  /** Allowed rate at start. Default 1. */
  initial?: number
  /** Additive step after an exchange that fit in the mtu. Default 0.1. */
  increase?: number
  /** Multiplicative factor, in (0, 1), after an exchange that overflowed. Default 0.8. */
  decrease?: number
  /** Lowest allowed rate. Default 0.01. */
  min?: number
  /** Highest allowed rate. Default Infinity. */
  max?: number
  /** How many time units of unused allowance may be saved up. Default 1. */
  burst?: number
  /** The current time in the rate's unit. Default `Date.now() / 1000` (seconds). */
  now?: () => number
}

/**
 * A watcher of `state` (see `gossip.watch`): the key, its new entry
 * (undefined when it is gone) and where the change came from.
 */
export type WatchListener<V = unknown> = (key: string, entry: Update<V> | undefined, how: 'local' | 'remote' | 'delete') => void

/**
 * The persistence contract: what a durable store keeps of a node besides
 * its mappings, so that `Gossip.restore` continues it exactly (see
 * docs/deletes.md, "Restarts"). A store records every mapping the node
 * holds (`gossip.history` emits `'update'` `(update, resolved)` for each
 * one recorded and `'forget'` `(update)` for each one dropped), and what
 * `gossip.persisted()` returns whenever it changes; it hands both back as
 * a {@link Snapshot} (`held`, and the record's fields). What a store
 * provides is the interface `PersistentStore` (lib/persistence.ts), which
 * the SQLite `Store` and `IdbStore` implement.
 */
export interface Persisted {
  /** How far the node holds its own past (Snapshot.held): null when all of it. */
  readonly held: number | null
  /**
   * The node's record of deletes (Snapshot.collected, horizon, refetching,
   * maxes, and issued while its past is not settled) as JSON text; null
   * while there is none.
   */
  readonly record: string | null
}

/** Options of `gossip.createStream(options)`. */
export interface StreamOptions {
  /** False: this stream never sends updates to its peer (it only receives). Default true. */
  readable?: boolean
  /** False: this stream never takes updates from its peer (it only sends). Default true. */
  writable?: boolean
  /** Carry only what passes (see {@link Filter}). Default: `config.filter`, or everything. */
  filter?: Filter
  /**
   * Take `{key, value}` written into the stream as a local write of the
   * node (the original's shape routing). Default: `config.local_writes`,
   * which defaults to true without `config.security` and false with it. A
   * stream that carries a remote peer should say false: otherwise the peer
   * writes as this node (and, with signing on, gets its writes signed).
   */
  local_writes?: boolean
  /**
   * The peer's id, when the transport has authenticated it (the node
   * command does under `--keys`). Under `config.security`, stale notices
   * and late reports on this stream are then taken only when that peer
   * signed them, and only a stream with an authenticated peer serves a
   * refetch (what it leaves out of a source is dropped here: see
   * docs/deletes.md, rule 6).
   */
  peer?: string
}

/** Sign and verify hooks of `config.security`. */
export interface Security {
  /**
   * The signature of a local write (`update.signature` is not yet set).
   * Throwing refuses the write.
   */
  sign(update: Update): string
  /** True if `update` (with its `signature`) may be accepted. Must not throw. */
  verify(update: Update): boolean
}

/**
 * An object used as a node's key-value store (the third argument of
 * `new Gossip`): `store[key]` is the key's resolved entry. Any object will
 * do, including a Proxy whose traps call a database.
 */
export type StateStore = Record<string, Update>

/** A node's saved state, as `gossip.snapshot()` returns it; restore it with `Gossip.restore`. */
export interface Snapshot {
  /** The node's clock when the snapshot was taken. */
  readonly version: number
  /** Every source's current mapping of every key the node held (the paper's mu). */
  readonly updates: readonly Update[]
  /** Markers collected, per source: the highest version of each (see docs/deletes.md). */
  readonly collected?: Readonly<Record<string, number>>
  /** The highest version of a delete this node collected (see docs/deletes.md, rule 5). */
  readonly horizon?: number
  /**
   * Sources held without a gap only up to here, below mappings of theirs the
   * snapshot holds (a value refused as late, or a filtered stream, held their
   * max back). Default: the highest version of each source held.
   */
  readonly maxes?: Readonly<Record<string, number>>
  /** Sources being refetched (see docs/deletes.md, rule 6): `{source: gc}`; the refetch starts again. */
  readonly refetching?: Readonly<Record<string, number>>
  /**
   * Values of the node's past it withdrew once its past settled, after a
   * start without state (docs/deletes.md, R4): `{key: [value's version,
   * withdrawal's version]}`. A newer write of its past shown later is late.
   */
  readonly pastWithdrawn?: Readonly<Record<string, readonly [number, number]>>
  /**
   * Optional: versions up to here may have been used by this node without
   * being in `updates` (a durable store reserves versions ahead of use).
   * The restored clock starts above it, but the node still asks peers for
   * its own past above `version`, which is all it claims to hold.
   */
  readonly reserved?: number
  /**
   * Optional: how far, in version order, the node held its own id's past
   * when the snapshot was taken (below `version` while it was still fetching
   * a past incarnation's updates from peers). The restored node asks peers
   * for its own updates above it. Default: `version`.
   */
  readonly held?: number
  /**
   * Optional, with `held` or `floor`: the versions the node issued since it
   * started without its log whole, as runs `[from, to, from, to, ...]`. The
   * restored node still tells those writes from its past; with `held` (its
   * past not settled) it issues them again above a past that shows itself
   * higher, with `floor` alone only its stale test reads them (R9 in
   * docs/deletes.md).
   */
  readonly issued?: readonly number[]
  /**
   * Optional: the first version of the node's life that began without saved
   * state (a new node, or a restart from nothing). Its own log is its own,
   * whole, only from there: below it, a mapping of its id that a peer holds
   * and the node lacks is a past incarnation's, never one it replaced.
   * Default: none (whole from the start).
   */
  readonly floor?: number
}
