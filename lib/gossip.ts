/**
 * A Scuttlebutt node as object-mode streams: `Gossip` holds the state and is
 * also the stream for its first peer; `createStream()` makes one more stream
 * per further peer. Each stream answers the digests written to it, to that
 * peer only, so one peer's digest never shapes what another receives, and a
 * peer that stops reading only fills its own buffer.
 *
 * The node composes the protocol's parts: its replicated state (replica.ts,
 * with the delete logic, deletes.ts, and its own id's lives,
 * incarnation.ts) and one exchange per peer (exchange.ts, with our digest,
 * digest.ts). A stream only carries objects to and from its exchange: it
 * hands the exchange each object its peer writes, with itself as the
 * outbox for what goes back, and bounds that outbox (see exchange.ts).
 */
import { Duplex } from 'readable-stream'
import { inputError, reportInvalid } from './codes'
import { checkStreamOptions, settingsOf, type Settings } from './config'
import type { Deletes } from './deletes'
import { Exchange, type ExchangeNode } from './exchange'
import { FlowControl } from './flow'
import type { History } from './history'
import type { Incarnation } from './incarnation'
import { Replica, TOMBSTONE } from './replica'
import { badName, keyOf } from './shape'
import { Refused, admitValue } from './value'
import { Watches } from './watches'
import { oversize } from './reconcile'
import type {
  Comparator,
  Config,
  Filter,
  Missing,
  Order,
  Persisted,
  ResolutionContext,
  Snapshot,
  StateStore,
  StreamOptions,
  Update,
  WatchListener,
} from './types'

/**
 * One peer's stream of a node: write what the peer sends into it, pipe what
 * it reads out to the peer. Events: `'invalid'` `(object, reason, code)`
 * for each object written to it that was refused (see `codes.ts`); `'sync'` once it holds what the
 * peer does.
 *
 * A duplex whose writable side takes every message in at once: what the
 * peer sends is never held back until the peer reads, so two streams piped
 * into each other cannot wait on each other. The readable side is bounded
 * by the protocol instead (see exchange.ts): what a message calls for is
 * owed while the buffer is at its high-water mark, and paid as it is read.
 */
export class PeerStream extends Duplex {
  /** @internal The exchange with this stream's peer (see exchange.ts). */
  exchange!: Exchange
  // The node, for streams createStream() made (the Gossip is its own).
  private readonly owner: Gossip | null
  // The peer ended its side: ours ends once nothing is owed to it.
  private ending = false
  // write() is taking a chunk itself; it corked the stream (held) for a
  // write that came meanwhile.
  private taking = false
  private held = false

  /** @internal Use `new Gossip(...)` or `gossip.createStream()`. */
  constructor(node: Gossip | null, mtu: number, options: StreamOptions = {}, nodeFilter?: Filter) {
    super({ objectMode: true, highWaterMark: mtu })
    this.owner = node
    if (node !== null) this.exchange = new Exchange(node, this, options, nodeFilter)
  }

  /** The node this stream belongs to. */
  get node(): Gossip {
    return this.owner as Gossip
  }

  /** False: this stream sends no updates to its peer (`readable: false`). */
  get sends(): boolean {
    return this.exchange.sends
  }

  /** False: this stream takes no updates from its peer (`writable: false`). */
  get takes(): boolean {
    return this.exchange.takes
  }

  /** The filter this stream applies both ways, if any (see {@link Filter}). */
  get streamFilter(): Filter | undefined {
    return this.exchange.streamFilter
  }

  /**
   * How far apart this stream's peer and its node were at the last
   * exchange: `them`, updates the node held that the peer lacked; `us`,
   * updates the peer held that the node lacked (as the peer said). Both 0
   * once they hold the same versions of every source.
   */
  get behind(): { readonly them: number; readonly us: number } {
    return this.exchange.behind
  }

  /** Since when this peer's answers have said the node lacks more than one exchange carries (ms since the epoch; -1 once one said less, -2 before any answer). */
  get lackingSince(): number {
    return this.exchange.lackingSince
  }

  /** One of this peer's answers said the node lacked less than one exchange carries. */
  get caughtUpOnce(): boolean {
    return this.exchange.caughtUpOnce
  }

  /** True while the last exchange found this peer and the node holding the same versions of every source. */
  get synced(): boolean {
    return this.exchange.synced
  }

  /** True once this stream has had an exchange (it counts for the node's `'synced'`). */
  get exchanged(): boolean {
    return this.exchange.exchanged
  }

  /** True once this stream's peer kept showing the node's id above its writes: a twin or a liar (its claims on the id are ignored). */
  get twin(): boolean {
    return this.exchange.twin
  }

  /** The peer's authenticated id, when the transport knows it (see {@link StreamOptions.peer}, {@link authenticate}). */
  get peer(): string | undefined {
    return this.exchange.peer
  }

  /**
   * The transport has authenticated this stream's peer as `id` (as
   * {@link StreamOptions.peer} says at creation): for a session that learns
   * it after the stream was made.
   * @throws Error when the stream was bound to another peer.
   */
  authenticate(id: string): void {
    this.exchange.authenticate(id)
  }

  /**
   * Whether `{key, value}` written into this stream is taken as a local
   * write of the node (see {@link StreamOptions.local_writes}).
   */
  get acceptsLocalWrites(): boolean {
    return this.exchange.acceptsLocalWrites
  }

  /**
   * Start an exchange with this stream's peer: queue our digest; the peer
   * answers with what we lack and its own digest, which we answer in turn.
   * Returns false, and queues nothing, while the peer has not read what was
   * queued before, or an answer to it waits (a stalled peer is not sent more).
   */
  gossip(): boolean {
    return this.exchange.ask(this)
  }

  /**
   * Object mode reserves null for end-of-stream and would throw on it; a
   * peer's null is bad input like any other, so it is reported instead.
   *
   * A write without a callback while nothing waits on the writable side is
   * taken at once, without the Writable machinery (its bookkeeping was
   * 8.5% of an in-process sync's instructions, measured). A write that comes while
   * one is being taken (the take pushed to a peer that wrote back) is held
   * by corking until that take returns, then taken in order, as the
   * machinery would.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override write(chunk: any, encoding?: any, callback?: any): boolean {
    if (chunk === null) {
      reportInvalid(this, chunk, 'not an update or a digest object', 'shape')
      const cb = typeof encoding === 'function' ? encoding : callback
      if (typeof cb === 'function') queueMicrotask(cb)
      return true
    }
    if (this.taking) {
      if (!this.held) {
        this.held = true
        this.cork()
      }
    } else if (encoding === undefined && callback === undefined && this.writableLength === 0 && this.writableCorked === 0 && !this.writableEnded && !this.destroyed && this.errored === null) {
      this.taking = true
      try {
        this.exchange.take(chunk, this)
      } finally {
        this.taking = false
        if (this.held) {
          this.held = false
          this.uncork()
        }
      }
      return true
    }
    return super.write(chunk, encoding, callback)
  }

  /** @internal */
  override _write(chunk: unknown, _encoding: unknown, callback: () => void): void {
    this.exchange.take(chunk, this)
    callback()
  }

  /** @internal The peer reads: what is owed to it goes out. */
  override _read(): void {
    this.exchange.pay(this)
    if (this.ending && !this.exchange.owes) this.push(null)
  }

  /** @internal The peer ended its side: so does ours (as a Transform's would), after what is owed. */
  override _final(callback: () => void): void {
    this.ending = true
    if (!this.exchange.owes) this.push(null)
    callback()
  }
}

/**
 * A Scuttlebutt node: the paper's mu (every source's newest mapping of each
 * key, in `history`), its resolved view (`state`: per key, the mapping
 * `resolve` accepted), its clock, and the stream of its first peer. Wire it
 * as `gossip.pipe(serializer).pipe(peer).pipe(deserializer).pipe(gossip)`.
 * `T` is the type of the values written (unchecked: a peer may send any
 * JSON value).
 *
 * @example
 * ```ts
 * const a = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
 * const b = new Gossip('b', { resolve: base.resolution.lww_vs_current_vers })
 * a.pipe(b).pipe(a)
 * a.set('color', 'blue')
 * b.gossip() // b asks, a answers: b.state.color.value === 'blue' soon after
 * ```
 */
export class Gossip<T = unknown> extends PeerStream implements ResolutionContext, ExchangeNode {
  /** This node's source id. */
  readonly id: string
  /** Deltas per exchange. */
  readonly mtu: number
  /** Most bytes of a message on the wire (`config.mtu_bytes`); Infinity when not set. */
  readonly mtuBytes: number
  /** The paper's ordering used when an answer exceeds the mtu. */
  readonly order: Order
  /** The order over updates: resolution policies use it, and it orders each answer sent. */
  readonly sort: Comparator
  /** Randomness for tie-breaking. */
  readonly random: () => number
  /** Flow control (`config.flow_control`): allowed rate and backlog; null when off. */
  readonly flow: FlowControl | null
  /** @internal The replicated state (see replica.ts). */
  readonly replica: Replica
  /** @internal Whether the node signs its writes. */
  readonly signed: boolean
  /** @internal Whether streams take `{key, value}` as local writes unless told otherwise. */
  readonly localWrites: boolean
  private readonly settings: Settings
  // The streams createStream() made and that are still open.
  private readonly streams = new Set<PeerStream>()
  // A set() returned false: 'drain' is owed.
  private drainOwed = false
  // The node's watches, once it has any (see watch).
  private watches: Watches | null = null

  /**
   * @param id - this node's source id, unique in the cluster.
   * @param config - `resolve` is required; the rest default to `base.config`
   *   (a falsy `mtu` or `max_history` too).
   * @param store - an object to keep the resolved view in, read and written
   *   as `store[key]` (a Proxy whose traps call a database will do). Entries
   *   it already holds are the node's state at start; the node also keeps
   *   its record of deletes in it, under {@link RECORD_KEY}. Default: the
   *   node's own, in memory. To restart from a `snapshot()`, use
   *   {@link Gossip.restore}.
   * @throws TypeError when `config.resolve` is missing, a setting is
   *   invalid, or the store holds something that is not an update of its key.
   */
  constructor(id: string, config: Config, store?: StateStore) {
    const settings = settingsOf(id, config)
    super(null, settings.mtu)
    if (store !== undefined && (store === null || typeof store !== 'object')) {
      throw new TypeError('store must be an object, read and written as store[key]')
    }
    this.settings = settings
    this.id = id
    this.mtu = settings.mtu
    this.mtuBytes = settings.mtuBytes
    this.sort = settings.sort
    this.order = settings.order
    this.random = settings.random
    this.signed = settings.security !== undefined
    this.localWrites = settings.localWrites
    this.exchange = new Exchange(this, this, { local_writes: config.local_writes }, settings.filter)
    this.replica = new Replica(id, settings, store ?? null, {
      context: this,
      plainGet: Gossip.prototype.get,
      emit: (event, ...args) => this.emit(event, ...args),
      rawListeners: (event) => this.rawListeners(event),
      peers: () => this.exchanges(),
    })
    this.replica.storeObject?.open()
    // 'change' listeners, counted as they come and go: put() asks per write.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'change') this.replica.changes.watchers++
    })
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'change') this.replica.changes.watchers--
    })
    const replica = this.replica
    this.flow =
      settings.flow === null
        ? null
        : new FlowControl(
            settings.flow,
            (key, value) => replica.local(key, value),
            (key, value, err) => reportInvalid(this, { key, value }, `resolve threw: ${(err as Error)?.message}`, 'node_error'),
          )
  }

  /**
   * A node restarted from `snapshot` (what `gossip.snapshot()` returned):
   * every mapping it held, its resolved view, and a clock that never goes
   * back.
   * @throws TypeError for a snapshot that holds something other than updates.
   */
  static restore<T = unknown>(id: string, config: Config, snapshot: Snapshot): Gossip<T> {
    const g = new Gossip<T>(id, config)
    g.replica.restart.restore(snapshot)
    return g
  }

  /** The node itself: the stream of its first peer. */
  override get node(): Gossip {
    return this as Gossip
  }

  /** Every source's newest mapping of each key (the paper's mu), indexed per source. */
  get history(): History {
    return this.replica.history
  }

  /** @internal The delete logic (docs/deletes.md): collection, the horizon, refetches, late writes. */
  get deletes(): Deletes {
    return this.replica.deletes
  }

  /** @internal This node's life: its clock, what it sent of its own (see incarnation.ts). */
  get incarnation(): Incarnation {
    return this.replica.incarnation
  }

  /** @internal Another live node writes as `source`: its writes are offered to peers again (see Replica.twinned). */
  twinned(source: string): void {
    this.replica.twinned(source)
  }

  /** @internal Take back our write `u`, never acknowledged: `previous` is current again (see Replica.revert). */
  revert(u: Update, previous: Update | undefined): void {
    this.replica.revert(u, previous)
  }

  /** The highest version this node has seen or issued (its Lamport clock). */
  get version(): number {
    return this.replica.clock.time
  }

  /**
   * The resolved view: `state[key]` is the key's `{key, value, source_id,
   * version}` that `resolve` accepted: a read-only object (enumerable,
   * JSON-serialisable, without inherited keys) over the node's memory, or
   * over the store object given to the constructor, without the keys the
   * node keeps there for itself (those starting with "\u0000"). Change it
   * with `set`.
   */
  get state(): Readonly<Record<string, Update<T>>> {
    return this.replica.state as Readonly<Record<string, Update<T>>>
  }

  /** The current mapping of `key` in `state`, or `{version: -Infinity, value: null}`. */
  get(key: string | number): Update<T> | Missing {
    return this.replica.get(keyOf(key) as string) as Update<T> | Missing
  }

  /**
   * Every source's current mapping of `key` (the paper's mu_p(r)(key) for
   * every r) that no delete the node holds beats, whatever `resolve`
   * decided of them, in `config.sort` order.
   */
  sources(key: string | number): Update<T>[] {
    return this.replica.sources(String(keyOf(key))) as Update<T>[]
  }

  /**
   * Write `key` locally, at a version above everything this node has seen.
   * The write goes through `config.resolve` like any other.
   * @returns false when the stream is at its high-water mark, or (under flow
   * control) the write waits in the backlog; a `'drain'` event follows.
   * @throws TypeError for a key that is not a non-empty, non-reserved string
   * or a finite number, an undefined value, or a value JSON cannot carry
   * (see `jsonProblem`), or a write over `config.mtu_bytes`; its `code`
   * (`key`, `value`, `too_big`) is the one an `'invalid'` report would carry.
   */
  set(key: string | number, value: T): boolean {
    const k = keyOf(key)
    const bad = badName('key', k)
    if (bad !== null) throw inputError('key', bad)
    if (value === undefined) throw inputError('value', 'value must not be undefined')
    // A frozen copy: the caller's object stays the caller's.
    const held = admitValue(value, true)
    if (held instanceof Refused) throw inputError('value', `value ${held.reason}`)
    const big = this.mtuBytes === Infinity ? null : oversize(this.mtuBytes, this.id, k as string, held, this.signed)
    if (big !== null) throw inputError('too_big', big)
    if (this.flow !== null) return this.room(this.flow.write(k as string, held))
    this.replica.write(k as string, held)
    return this.room(true)
  }

  /**
   * Delete `key`: a local write of a tombstone, at a version above
   * everything this node has seen, through `config.resolve` like any write.
   * While the tombstone is the key's entry the key is absent from `state`
   * and `get` answers as for a missing key; a later `set` brings it back.
   * Tombstones are collected after `config.tombstone_grace` (see
   * docs/guide.md, "Deletes").
   * @returns as `set` does.
   * @throws TypeError for a bad key (`code` `key`).
   */
  delete(key: string | number): boolean {
    const k = keyOf(key)
    const bad = badName('key', k)
    if (bad !== null) throw inputError('key', bad)
    this.replica.collect()
    return this.localWrite(k as string, TOMBSTONE)
  }

  /**
   * @internal A write a node refused as a twin handed over (docs/twins.md,
   * R6): written as this node's own, placed at `first`, the version its
   * writer gave it (docs/deletes.md R2), so it beats no write made after it
   * anywhere. The clock follows `first` first, so that `first` stays below
   * the version; one further ahead than it follows goes plain. Past flow
   * control: a handover is one bounded batch, answered once durable.
   * Checked as `set` checks (throws its errors).
   */
  handed(key: string, value: T | null, deleted: boolean, first: number): void {
    const bad = badName('key', key)
    if (bad !== null) throw inputError('key', bad)
    let held: unknown = null
    if (!deleted) {
      const v = admitValue(value, true)
      if (v instanceof Refused) throw inputError('value', `value ${v.reason}`)
      const big = this.mtuBytes === Infinity ? null : oversize(this.mtuBytes, this.id, key, v, this.signed)
      if (big !== null) throw inputError('too_big', big)
      held = v
    } else this.replica.collect()
    const clock = this.replica.clock
    if (clock.accepts(first)) clock.see(first)
    this.replica.local(key, deleted ? TOMBSTONE : held, null, first >= 0 && first <= clock.time ? first : undefined)
  }

  // A local write (or delete), through flow control if any: false once
  // the caller should wait for 'drain'.
  private localWrite(key: string, value: unknown): boolean {
    if (this.flow !== null) return this.room(this.flow.write(key, value))
    this.replica.local(key, value)
    return this.room(true)
  }

  // `made`: the write was made (not left waiting in the backlog). False
  // once the caller should wait for 'drain'.
  private room(made: boolean): boolean {
    if (made && this.readableLength < this.readableHighWaterMark) return true
    this.drainOwed = true
    return false
  }

  /** Another stream of this node, for one more peer. */
  createStream(options: StreamOptions = {}): PeerStream {
    checkStreamOptions(options)
    const stream = new PeerStream(this, this.mtu, options, this.settings.filter)
    this.streams.add(stream)
    stream.once('close', () => this.streams.delete(stream))
    return stream
  }

  /**
   * Call `listener(key, entry, how)` whenever the entry of `key` (or of any
   * key starting with `match.prefix`) in `state` changes: `entry` is the new
   * mapping (undefined when the key is gone) and `how` says whether it came
   * from this node (`'local'`), a peer (`'remote'`) or is a delete
   * (`'delete'`). Returns a function that stops watching. Every change is
   * also the node's `'change'` event with the same arguments.
   */
  watch(match: string | number | { prefix: string }, listener: WatchListener<T>): () => void {
    // Numeric keys, as set and delete take them.
    const m = typeof match === 'number' ? (keyOf(match) as string) : match
    const exact = typeof m === 'string'
    const text = exact ? m : m?.prefix
    if (typeof text !== 'string') throw new TypeError('watch: a key, or {prefix}')
    if (typeof listener !== 'function') throw new TypeError('watch: a listener function')
    // Indexed behind one 'change' listener: see watches.ts.
    const watches = (this.watches ??= new Watches((key, err) => reportInvalid(this, { key }, `a 'change' listener threw: ${(err as Error)?.message}`, 'node_error')))
    if (watches.size === 0) this.on('change', watches.listener)
    const stop = watches.add(text, exact, listener as WatchListener)
    return () => {
      if (stop() && watches.size === 0) this.off('change', watches.listener)
    }
  }

  /** The node's state, to pass to {@link Gossip.restore} after a restart. */
  snapshot(): Snapshot {
    return this.replica.restart.snapshot()
  }

  /**
   * This node's own writes that peers refused as late: made before deletes
   * those peers collected, by a node that heard from nobody for longer than
   * `tombstone_grace` (see docs/deletes.md, rule 7). Each is announced once
   * with the `'late'` event; {@link settleLate} decides what becomes of them.
   */
  get late(): Update<T>[] {
    return this.replica.deletes.lateValues.late as Update<T>[]
  }

  /**
   * Settle this node's late writes (see {@link late}): `'keep'` writes each
   * again at a new version (it then wins over the deletes it may have lost
   * to, and over every write older than now), unless a newer write of
   * another node held here beats it (then it lost anyway and is withdrawn);
   * `'drop'` withdraws each (other nodes' values it beat show again, even
   * where this node had deleted the key before writing it: docs/deletes.md,
   * rule 7). Returns how many.
   * @throws TypeError for another choice.
   */
  settleLate(choice: 'keep' | 'drop'): number {
    if (choice !== 'keep' && choice !== 'drop') throw new TypeError("settleLate: 'keep' or 'drop'")
    return this.replica.deletes.lateValues.settle(choice)
  }

  /**
   * What a durable store keeps of this node besides its mappings (the
   * persistence contract, see {@link Persisted}). Cheap: a store reads it
   * with each batch it writes.
   */
  persisted(): Persisted {
    return { held: this.replica.incarnation.snapshotHeld ?? null, record: this.replica.restart.record() }
  }

  /** @internal Collect the markers past the grace period that may go (see docs/deletes.md, rule 4). */
  _collect(): void {
    this.replica.collect()
  }

  /** @internal Every read, piped or not, passes here: the place to see room come back. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override read(size?: number): any {
    const chunk = super.read(size)
    if (this.drainOwed) this.drained()
    return chunk
  }

  // Emit the 'drain' a false set() promised, once there is room again.
  private drained(): void {
    if (this.readableLength >= this.readableHighWaterMark) return
    if (this.flow !== null && this.flow.backlog > 0) return
    this.drainOwed = false
    // A writer the writable side holds back gets that side's own 'drain';
    // otherwise ours, outside the read that made the room.
    queueMicrotask(() => {
      if (!this.writableNeedDrain) this.emit('drain')
    })
  }

  // ---- what the exchanges ask of the node (ExchangeNode) ----------------------

  /** @internal Admit what flow control lets through, before a digest names our own max. */
  pump(): void {
    if (this.flow === null) return
    this.flow.pump()
    if (this.drainOwed) this.drained()
  }

  /** @internal The exchanges of the node's open streams. */
  *exchanges(): IterableIterator<Exchange> {
    if (!this.destroyed) yield this.exchange
    for (const s of this.streams) if (!s.destroyed) yield s.exchange
  }

  /** @internal An exchange found its peer in sync: `'synced'` once every stream is. */
  peerSynced(): void {
    if (this.exchange.exchanged && !this.exchange.synced) return
    for (const s of this.streams) if (!s.synced && !s.destroyed) return
    this.emit('synced')
  }

  /** @internal A local write (`{key, value}`) that came through a stream. */
  writeLocal(ex: Exchange, chunk: unknown, key: string, value: unknown): void {
    const held = admitValue(value, true)
    if (held instanceof Refused) {
      reportInvalid(ex, chunk, `value ${held.reason}`, 'value')
      return
    }
    try {
      if (this.flow !== null) this.flow.write(key, held)
      else this.replica.local(key, held)
    } catch (err) {
      reportInvalid(ex, chunk, `resolve threw: ${(err as Error)?.message}`, 'node_error')
    }
  }
}
