/**
 * A Scuttlebutt node as object-mode streams: `Gossip` holds the state and is
 * also the stream for its first peer; `createStream()` makes one more stream
 * per further peer. Each stream answers the digests written to it, to that
 * peer only, so one peer's digest never shapes what another receives, and a
 * peer that stops reading only fills its own buffer.
 */
import { Transform } from 'readable-stream'
import { defaults } from './base'
import { Clock } from './clock'
import { FlowControl, flowOptions, overflowed } from './flow'
import { Deletes, EXTRA_BYTES, isMarker, type DeletesHost } from './deletes'
import { History, Slot, SourceLog, mappingOf, resolvedOf } from './history'
import { both, compileFilter, type Passes } from './filter'
import { ALL, checkMtuBytes, covers, cutToBytes, deltas, DigestMeter, lacking, newsOf, ordered, oversize, type IdRange } from './reconcile'
import { badName, checkedUpdate, classify, keyOf, Kind, RECORD_KEY, type DoneReading, type UpdateReading } from './shape'
import { restore, snapshotOf } from './snapshot'
import { memoryView } from './state'
import { admitValue, admitted } from './value'
import type {
  Comparator,
  Config,
  DigestDone,
  Filter,
  Missing,
  Order,
  Resolve,
  ResolutionContext,
  Security,
  Snapshot,
  StateStore,
  StreamOptions,
  Update,
  WatchListener,
} from './types'

const MISSING: Missing = Object.freeze({ version: -Infinity, value: null })
/**
 * Most sources one digest names: more are sent in parts, one part per
 * exchange, so a digest fits a message and every source is named within
 * ceil(sources / DIGEST_PART) exchanges.
 */
export const DIGEST_PART = 1024
// Most digest entries taken from a peer before its end marker: four parts.
const MAX_HEARD = 4 * DIGEST_PART
// The part size in use: DIGEST_PART, smaller only in tests (see _digestPart).
let part = DIGEST_PART

/** @internal For tests: send digests in parts of `n` (the protocol's DIGEST_PART when undefined). */
export function _digestPart(n: number | undefined): void {
  part = n ?? DIGEST_PART
}
// What a local write of a delete (or a withdrawal) carries through local().
const TOMBSTONE = Object.freeze({ deleted: true })
const WITHDRAWAL = Object.freeze({ withdrawn: true })
// _behind() counts up to here.
const BEHIND_CAP = 1_000_000
const DONE: DigestDone = Object.freeze({ digest: true, done: true })
const REPLY: DigestDone = Object.freeze({ digest: true, done: true, reply: true })

/**
 * One peer's stream of a node: write what the peer sends into it, pipe what
 * it reads out to the peer. Events: `'invalid'` `(object, reason)` for each
 * object written to it that was refused.
 */
export class PeerStream extends Transform {
  /** The node this stream belongs to. */
  readonly node: Gossip
  // StreamOptions.local_writes, when given.
  private readonly localWrites: boolean | undefined
  // The digest the peer is sending us, until its end.
  private readonly heard = new Map<string, number>()
  // Our questions this peer has not answered yet.
  private asked = 0
  // Deltas received since our last digest: fewer than the mtu means the
  // peer's answer was complete.
  private received = 0
  // Where our outstanding question asked for our own past from (see Clock),
  // or null; and whether this peer has shown us all of ours yet.
  /** @internal */
  askFrom: number | null = null
  /** @internal This peer answered a question for our past completely. */
  verified = false
  /** @internal This peer has answered a question of ours whole (nothing it held that we lacked was left out). */
  answeredWhole = false
  /** @internal How far, in the node's list of gap fills, this peer has been looked at for them. */
  fillAt = 0
  /** @internal Gap fills this peer was behind on when looked at: offered once it passes them. */
  fillWait: Update[] | null = null
  /** @internal This peer has shown us every update of ours up to here. */
  ownSeen = -Infinity
  /**
   * @internal This peer named or sent a version of ours from a past
   * incarnation: we ask it (and only the peers that show one) for our
   * past, so a peer lying about us costs one answer of ours from itself,
   * not one from every peer.
   */
  pastShown = false
  /** @internal This peer kept showing our id above our writes: a twin or a liar (see Gossip.twinOn). */
  twin = false
  /** @internal The part of the ids our last digest to this peer covered (see IdRange). */
  part: IdRange = ALL
  /** False: this stream sends no updates to its peer (`readable: false`). */
  readonly sends: boolean
  /** False: this stream takes no updates from its peer (`writable: false`). */
  readonly takes: boolean
  /** The filter this stream applies both ways, if any (see {@link Filter}). */
  readonly streamFilter: Filter | undefined
  /** @internal The filter's test (null: everything passes). */
  readonly passes: Passes
  /**
   * How far apart this stream's peer and its node were at the last
   * exchange: `them`, updates the node held that the peer lacked; `us`,
   * updates the peer held that the node lacked (as the peer said). Both 0
   * once they hold the same versions of every source.
   */
  readonly behind = { them: 0, us: 0 }
  /** True while the last exchange found this peer and the node holding the same versions of every source. */
  synced = false
  /** @internal This stream has had an exchange (it counts for the node's 'synced'). */
  exchanged = false
  // The peer's authenticated id (see peer).
  private authenticatedPeer: string | undefined
  // The peer's end markers announce a filter: what it sends may have gaps.
  private peerFiltered = false
  /** @internal What our digests to this peer name: through our filter and the one it announced. */
  digestPasses: Passes = null
  // Until its first end marker says whether it filters: the maxes its
  // updates moved, with what they were, to be put back if it does.
  private movedMax: Map<SourceLog, number> | null = null
  private doneSeen = false
  /** @internal Whether updates from this peer may move a source's max (no filter at either end). */
  gapFree(): boolean {
    return this.passes === null && !this.peerFiltered
  }
  /** @internal An update from this peer is about to move `log.max`. */
  movingMax(log: SourceLog): void {
    if (this.doneSeen) return
    const moved = (this.movedMax ??= new Map())
    if (!moved.has(log)) moved.set(log, log.max)
  }
  // Digests in parts: whether every part of the current cycle matched ours.
  private cycleSame = true
  /** @internal The bytes of our last digest to this peer, its end included (with mtu_bytes). */
  digestBytes = 0

  /** @internal Use `new Gossip(...)` or `gossip.createStream()`. */
  constructor(node: Gossip | null, mtu: number, options: StreamOptions = {}, nodeFilter?: Filter) {
    super({ objectMode: true, highWaterMark: mtu })
    this.node = node ?? (this as unknown as Gossip)
    this.localWrites = options.local_writes
    this.sends = options.readable !== false
    this.takes = options.writable !== false
    this.streamFilter = options.filter ?? nodeFilter
    this.authenticatedPeer = options.peer
    this.passes = compileFilter(this.streamFilter)
    this.digestPasses = this.passes
  }

  /** The peer's authenticated id, when the transport knows it (see {@link StreamOptions.peer}, {@link authenticate}). */
  get peer(): string | undefined {
    return this.authenticatedPeer
  }

  /**
   * The transport has authenticated this stream's peer as `id` (as
   * {@link StreamOptions.peer} says at creation): for a session that learns
   * it after the stream was made.
   * @throws Error when the stream was bound to another peer.
   */
  authenticate(id: string): void {
    if (this.authenticatedPeer !== undefined && this.authenticatedPeer !== id) {
      throw new Error(`this stream's peer is ${this.authenticatedPeer}, not ${id}`)
    }
    this.authenticatedPeer = id
  }

  /**
   * Whether `{key, value}` written into this stream is taken as a local
   * write of the node (see {@link StreamOptions.local_writes}).
   */
  get acceptsLocalWrites(): boolean {
    return this.localWrites ?? this.node._localWrites
  }

  /**
   * Start an exchange with this stream's peer: queue our digest; the peer
   * answers with what we lack and its own digest, which we answer in turn.
   * Returns false, and queues nothing, while the peer has not read what was
   * queued before (a stalled peer is not sent more).
   */
  gossip(): boolean {
    if (this.readableLength >= this.readableHighWaterMark) return false
    this.asked++
    this.received = 0
    // Once the node has seen a sign of a past incarnation, each stream asks
    // its peer for the node's own updates until it has seen them all.
    this.node._collect()
    this.askFrom = this.node._digest(this, !this.verified && (this.pastShown || this.node._hasPast()))
    this.push(this.node._done(this, false))
    return true
  }

  /**
   * Object mode reserves null for end-of-stream and would throw on it; a
   * peer's null is bad input like any other, so it is reported instead.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override write(chunk: any, encoding?: any, callback?: any): boolean {
    if (chunk === null) {
      this.emit('invalid', chunk, 'not an update or a digest object')
      const cb = typeof encoding === 'function' ? encoding : callback
      if (typeof cb === 'function') queueMicrotask(cb)
      return true
    }
    return super.write(chunk, encoding, callback)
  }

  /** @internal */
  override _transform(chunk: unknown, _encoding: unknown, callback: () => void): void {
    const r = classify(chunk)
    switch (r.kind) {
      case Kind.Update:
        this.received++
        if (!this.takes) this.emit('invalid', chunk, 'this stream takes no updates (writable: false)')
        // What our filter keeps out was announced to the peer: drop it.
        else if (this.passes === null || this.passes(r.source_id, r.key)) this.node._receive(this, chunk, r)
        break
      case Kind.Local:
        // A peer must never write as this node (it would sign the write),
        // nor through a stream that takes nothing from it.
        if (!this.takes) this.emit('invalid', chunk, 'this stream takes no updates (writable: false)')
        else if (this.acceptsLocalWrites) this.node._writeLocal(this, chunk, r.key, r.value)
        else this.emit('invalid', chunk, 'local writes ({key, value}) are not accepted on this stream')
        break
      case Kind.Digest:
        this.hear(chunk, r.source_id, r.version)
        break
      case Kind.Done:
        this.answer(r)
        break
      default:
        this.emit('invalid', chunk, r.reason)
    }
    callback()
  }

  private hear(chunk: unknown, source_id: string, version: number): void {
    if (!this.node._accepts(version)) {
      this.emit('invalid', chunk, aheadReason(version))
      return
    }
    const heard = this.heard
    // An honest digest names at most DIGEST_PART sources (a longer one is
    // sent in parts): more is a flood.
    if (!heard.has(source_id) && heard.size >= MAX_HEARD) {
      this.emit('invalid', chunk, `digest names more than ${MAX_HEARD} sources`)
      return
    }
    heard.set(source_id, version)
    if (source_id === this.node.id) this.node._heardSelf(this, version)
  }

  private answer(fields: DoneReading): void {
    const node = this.node
    const heard = this.heard
    const range: IdRange = fields.after === undefined && fields.through === undefined ? ALL : { after: fields.after, through: fields.through }
    const peerRate = fields.rate
    const peerHas = fields.behind ?? 0
    const peerTakes = !fields.refuses
    const peerSends = !fields.silent
    const passes = fields.filter === undefined ? this.passes : both(this.passes, compileFilter(fields.filter))
    const filtered = fields.filter !== undefined
    // A filter at the peer's end only: its updates before this marker moved
    // maxes past what it kept out; they go back (a lower max only asks more).
    if (filtered && !this.peerFiltered) {
      this.peerFiltered = true
      this.digestPasses = passes
    }
    if (!this.doneSeen) {
      this.doneSeen = true
      if (this.peerFiltered && this.movedMax !== null) for (const [log, max] of this.movedMax) if (log.max > max) log.max = max
      this.movedMax = null
    }
    // Only a digest marked as a reply is not answered with ours: a counter of
    // our questions alone would go wrong once a digest is lost or repeated.
    const isAnswer = fields.reply
    // Deletes: nonces, late reports, stale notices, and whether this peer's
    // copy of a source is behind markers we collected (docs/deletes.md).
    node.deletes.onDone(this, fields, heard, range, this.gapFree())
    // A peer that withholds suspects (docs/deletes.md, rule 6) does not answer whole.
    if (isAnswer && this.asked > 0) {
      this.asked--
      if (this.received >= peerHas && !fields.withheld) this.answeredWhole = true
      // Asked for our past: complete if the answer was not cut, or if the
      // peer has now shown us everything of ours it holds.
      const named = heard.get(node.id)
      if (
        this.askFrom !== null &&
        !fields.withheld &&
        ((this.received < node.mtu && node.mtuBytes === Infinity) || (named !== undefined && named <= this.ownSeen))
      ) {
        this.verified = true
        if (named !== undefined) node._answeredSelf(named)
        node._pastAnswered()
      }
    }
    const them = node._behind(heard, range, passes)
    this.settled(heard, range, them, peerHas, this.sends && peerTakes, this.takes && peerSends)
    // Push-pull: a question is answered with our digest, the deltas the
    // peer lacks, and the digest's end, which also ends the answer. The
    // digest goes first so that the peer learns how far we hold its own id
    // before it reads the deltas (see Clock on restarts).
    if (!isAnswer) node._digest(this, false)
    // Mappings that filled a gap here go first to a peer that passed them
    // (see Gossip._fills); the deltas it lacks fill the rest of the mtu.
    const fills = this.sends && peerTakes ? node._fillsFor(this, heard, passes) : null
    const room = fills === null ? node.mtu : node.mtu - fills.length
    let chosen =
      this.sends && peerTakes ? node.deletes.sendable(ordered(deltas(node.history, heard, room, node.order, node.random, range, passes, null), node.sort)) : []
    if (fills !== null) chosen = chosen.length === 0 ? fills : fills.concat(chosen)
    // mtu_bytes: the answer gets what the digest left of the message.
    const out = node.mtuBytes === Infinity ? chosen : cutToBytes(chosen, node.mtuBytes - (isAnswer ? 0 : this.digestBytes))
    // Flow control: this exchange overflowed if our answer or theirs was cut.
    const flow = node.flow
    if (flow !== null) {
      const cut = (isAnswer && this.received >= node.mtu) || out !== chosen || overflowed(node.history, heard, node.mtu, out.length, range)
      flow.exchanged(cut, peerRate)
    }
    const id = node.id
    for (let i = 0; i < out.length; i++) {
      const u = out[i]
      if (u.source_id === id) node._sent(u.version)
      this.push(u)
    }
    if (!isAnswer) this.push(node._done(this, true))
    heard.clear()
    node._collect()
    node._viewCheck()
  }

  // 'sync' once a digest (or a whole cycle of parts) shows the peer holding
  // the same versions of every source as the node.
  // On a one-way stream only the way updates flow counts: the receiving end
  // is in sync once it holds what the sender does, and the other way round.
  private settled(heard: ReadonlyMap<string, number>, range: IdRange, all: number, peerHas: number, out: boolean, inn: boolean): void {
    const them = out ? all : 0
    const us = inn ? peerHas : 0
    this.behind.them = them
    this.behind.us = us
    this.exchanged = true
    const node = this.node
    if (range.after === undefined) this.cycleSame = true
    this.cycleSame = this.cycleSame && them === 0 && us === 0 && node._sameDigest(this, heard, range, out, inn)
    if (range.through !== undefined) return
    const was = this.synced
    this.synced = this.cycleSame
    if (this.synced && !was) {
      this.emit('sync', { them, us })
      node._streamSynced()
    }
  }
}

/**
 * A Scuttlebutt node: the paper's mu (every source's newest mapping of each
 * key, in `history`), its resolved view (`state`: per key, the mapping
 * `resolve` accepted), its clock, and the stream of its first peer. Wire it
 * as `gossip.pipe(serializer).pipe(peer).pipe(deserializer).pipe(gossip)`.
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
export class Gossip extends PeerStream implements ResolutionContext {
  /** This node's source id. */
  readonly id: string
  /** Every source's newest mapping of each key (the paper's mu), indexed per source. */
  readonly history: History
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
  private readonly resolve: Resolve
  // The highest version of our own id pushed to any peer: peers (and their
  // peers) can know no version of ours above it from this incarnation.
  private sentOwn = -Infinity
  private clock: Clock
  // config.security; undefined when updates are not signed.
  private readonly security: Security | undefined
  // The store object given to the constructor, or null: the resolved view
  // then lives in the history's slots, and `view` shows it as an object.
  private readonly store: StateStore | null
  private readonly view: StateStore
  // The log last written to: updates come in runs of one source.
  private lastLog: SourceLog | null = null
  // A set() returned false: 'drain' is owed.
  private drainOwed = false
  // Restored from a snapshot taken while the node was still fetching its past.
  private restoredRecovering = false
  // Every peer we exchange with answered our question for our past: we send
  // our own updates again though what we hold of our past may have a gap
  // no peer can fill (see _pastAnswered).
  private pastSettled = false
  // Whether we know how far we hold our own past. A node started without
  // state does not: its id may have written before (a restart from
  // nothing), so it asks each peer once, and its snapshots claim nothing
  // of its past until every peer it exchanges with has answered.
  private pastKnown = true
  // Mappings of our id that a past incarnation wrote (received, not issued).
  private readonly pastMappings = new WeakSet<Update>()
  // config.filter: every stream's unless given its own.
  private readonly nodeFilter: Filter | undefined
  // The streams createStream() made and that are still open.
  private readonly streams = new Set<PeerStream>()
  // How many 'change' listeners there are (watch adds one each).
  private watchers = 0
  /** @internal The delete logic (docs/deletes.md): collection, the horizon, refetches, late writes. */
  readonly deletes: Deletes
  // Mappings taken below their source's max here: they filled a gap (our own
  // past come back after a restart, a copy refetched), so peers that
  // passed them may lack them too. Each is offered once to every peer whose
  // digest names its source at or above it; fillBase counts those dropped
  // from the front.
  private fills: Update[] = []
  private fillBase = 0
  // A store object's entries of other sources at start that no peer has sent
  // again yet (see adopt).
  private viewPending: Map<string, Update> | null = null
  // Sources whose max was held back below mappings of theirs we hold (a
  // value refused in the same answer, a filtered stream): a restart must
  // not take their highest mapping for their max (see Snapshot.maxes).
  private readonly heldBack = new Set<SourceLog>()

  // config.local_writes, or its default.
  private readonly localDefault: boolean
  // The record last written to the store object (see saveRecord).
  private recordSaved: string | null = null

  /**
   * @param id - this node's source id, unique in the cluster.
   * @param config - `resolve` is required; the rest default to `base.config`
   *   (a falsy `mtu` or `max_history` too).
   * @param store - an object to keep the resolved view in, read and written
   *   as `store[key]` (a Proxy whose traps call a database will do). Entries
   *   it already holds are the node's state at start. Default: the node's
   *   own, in memory. To restart from a `snapshot()`, use {@link Gossip.restore}.
   * @throws TypeError when `config.resolve` is missing, a setting is
   *   invalid, or the store holds something that is not an update of its key.
   */
  constructor(id: string, config: Config, store?: StateStore) {
    const mtu = checkConfig(id, config)
    super(null, mtu, { local_writes: config.local_writes }, config.filter)
    this.id = id
    this.mtu = mtu
    this.mtuBytes = checkMtuBytes(config.mtu_bytes)
    this.resolve = config.resolve as Resolve
    this.sort = config.sort ?? defaults.sort
    this.order = config.order ?? defaults.order
    this.random = config.random ?? Math.random
    this.security = config.security
    this.localDefault = config.local_writes ?? config.security === undefined
    this.nodeFilter = config.filter
    if (store !== undefined && (store === null || typeof store !== 'object')) {
      throw new TypeError('store must be an object, read and written as store[key]')
    }
    this.store = store ?? null
    // 'change' listeners, counted as they come and go: put() asks per write.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'change') this.watchers++
    })
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'change') this.watchers--
    })
    this.history = new History(config.max_history || defaults.max_history, { sort: this.sort, resolved: store === undefined, checked: true })
    this.view = store ?? memoryView(this.history)
    const now = Clock.now()
    this.deletes = new Deletes(this.host(), checkGrace(config.tombstone_grace), now)
    const restored = store === undefined ? undefined : this.adopt(store)
    const record = store === undefined ? undefined : recordOf(store)
    // A store object holds only the entry of each key: our own mappings
    // that were not entries are gone, so we hold our past with gaps (none of
    // it for sure) and take it again from peers, as after a restart from a
    // snapshot still fetching its past. Our past reaches our own newest
    // entry at least.
    this.clock = new Clock(restored, now, restored === undefined ? undefined : -1)
    if (restored === undefined) {
      this.pastKnown = false
      this.restoredRecovering = true
    } else {
      this.clock.pastHeard = this.history.sources.get(id)?.max ?? -Infinity
      this.sentOwn = restored
      this.restoredRecovering = this.clock.recovering
    }
    if (record !== undefined) this.recordSaved = (store as Record<string, unknown>)[RECORD_KEY] as string
    if (restored !== undefined || record !== undefined) this.deletes.restored(record)
    const flow = flowOptions(config.flow_control)
    this.flow =
      flow === null
        ? null
        : new FlowControl(
            flow,
            (key, value) => this.local(key, value),
            (key, value, err) => this.emit('invalid', { key, value }, `resolve threw: ${(err as Error)?.message}`),
          )
  }

  /**
   * A node restarted from `snapshot` (what `gossip.snapshot()` returned):
   * every mapping it held, its resolved view, and a clock that never goes
   * back.
   * @throws TypeError for a snapshot that holds something other than updates.
   */
  static restore(id: string, config: Config, snapshot: Snapshot): Gossip {
    const g = new Gossip(id, config)
    const restored = restore(g.history, snapshot, (mappings) => g.choose(mappings))
    g.clock = new Clock(restored, Math.max(Clock.now(), reservedOf(snapshot)), heldOf(snapshot))
    // What a saved state holds, an earlier run may have sent.
    g.sentOwn = restored
    g.restoredRecovering = g.clock.recovering
    g.pastKnown = true
    g.holdBack(snapshot.maxes)
    g.deletes.restored(snapshot)
    return g
  }

  // Snapshot.maxes: put back the maxes held back when the snapshot was taken.
  private holdBack(maxes: unknown): void {
    if (maxes === null || typeof maxes !== 'object') return
    for (const id of Object.keys(maxes)) {
      const v = (maxes as Record<string, unknown>)[id]
      const log = this.history.sources.get(id)
      if (log === undefined || typeof v !== 'number' || !(v < log.max)) continue
      log.max = v < 0 ? -Infinity : v
      this.heldBack.add(log)
    }
  }

  // What the delete logic may ask of this node (see DeletesHost).
  private host(): DeletesHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const node = this
    return {
      id: this.id,
      history: this.history,
      security: this.security,
      beats: (a, b) => this.decide(a, b),
      withdraw: (key) => this.local(key, WITHDRAWAL),
      rewrite: (key, value) => this.rewrite(key, value),
      forget: (m) => this.forget(m),
      wall: () => node.clock.wall(),
      accepts: (version) => node.clock.accepts(version),
      // A node that has seen signs of a past incarnation and not fetched it
      // all (a node that names itself nowhere claims nothing of its id).
      selfUnsure: () =>
        ((!node.pastKnown && node.clock.pastSeen) || (node.clock.recovering && !node.pastSettled)) &&
        (node.history.sources.get(node.id)?.max ?? -Infinity) !== -Infinity,
      emit: (event, ...args) => this.emit(event, ...args),
      streams: () => [this as PeerStream, ...this.streams].filter((s) => !s.destroyed),
    }
  }

  /** The highest version this node has seen or issued (its Lamport clock). */
  get version(): number {
    return this.clock.time
  }

  /**
   * The resolved view: `state[key]` is the key's `{key, value, source_id,
   * version}` that `resolve` accepted. The store object given to the
   * constructor, or else a read-only object (enumerable, JSON-serialisable,
   * without inherited keys) over the node's memory. Change it with `set`.
   */
  get state(): Readonly<Record<string, Update>> {
    return this.view as Readonly<Record<string, Update>>
  }

  /** The current mapping of `key` in `state`, or `{version: -Infinity, value: null}`. */
  get(key: string | number): Update | Missing {
    const k = keyOf(key) as string
    const history = this.history
    // Inside resolve, the key was just looked up (see History._memoKey).
    if (k === history._memoKey) return history._memoEntry ?? MISSING
    const entry = this.store === null ? history._resolved(k) : entryOf(this.store, k)
    return entry === undefined || entry.deleted === true ? MISSING : entry
  }

  /**
   * Every source's current mapping of `key` (the paper's mu_p(r)(key) for
   * every r), whatever `resolve` decided of them, in `config.sort` order.
   */
  sources(key: string | number): Update[] {
    const k = String(keyOf(key))
    return this.deletes.visible(k, this.history.get(k))
  }

  /**
   * Write `key` locally, at a version above everything this node has seen.
   * The write goes through `config.resolve` like any other.
   * @returns false when the stream is at its high-water mark, or (under flow
   * control) the write waits in the backlog; a `'drain'` event follows.
   * @throws TypeError for a key that is not a non-empty, non-reserved string
   * or a finite number, an undefined value, or a value JSON cannot carry
   * (see `jsonProblem`).
   */
  set(key: string | number, value: unknown): boolean {
    const k = keyOf(key)
    const bad = badName('key', k)
    if (bad !== null) throw new TypeError(bad)
    if (value === undefined) throw new TypeError('value must not be undefined')
    // A frozen copy: the caller's object stays the caller's.
    const problem = admitValue(value, true)
    if (problem !== null) throw new TypeError(`value ${problem}`)
    const held = admitted.value
    const big = oversize(this.mtuBytes, this.id, k as string, held, this.security !== undefined)
    if (big !== null) throw new TypeError(big)
    return this.localWrite(k as string, held)
  }

  // A local write (or delete), through flow control if any: false once
  // the caller should wait for 'drain'.
  private localWrite(key: string, value: unknown): boolean {
    let made = true
    if (this.flow !== null) made = this.flow.write(key, value)
    else this.local(key, value)
    if (made && this.readableLength < this.readableHighWaterMark) return true
    this.drainOwed = true
    return false
  }

  /** Another stream of this node, for one more peer. */
  createStream(options: StreamOptions = {}): PeerStream {
    checkStreamOptions(options)
    const stream = new PeerStream(this, this.mtu, options, this.nodeFilter)
    this.streams.add(stream)
    stream.once('close', () => this.streams.delete(stream))
    return stream
  }

  /**
   * Delete `key`: a local write of a tombstone, at a version above
   * everything this node has seen, through `config.resolve` like any write.
   * While the tombstone is the key's entry the key is absent from `state`
   * and `get` answers as for a missing key; a later `set` brings it back.
   * Tombstones are collected after `config.tombstone_grace` (see docs/guide.md,
   * "Deletes").
   * @returns as `set` does.
   * @throws TypeError for a bad key.
   */
  delete(key: string | number): boolean {
    const k = keyOf(key)
    const bad = badName('key', k)
    if (bad !== null) throw new TypeError(bad)
    this._collect()
    return this.localWrite(k as string, TOMBSTONE)
  }

  /**
   * Call `listener(key, entry, how)` whenever the entry of `key` (or of any
   * key starting with `match.prefix`) in `state` changes: `entry` is the new
   * mapping (undefined when the key is gone) and `how` says whether it came
   * from this node (`'local'`), a peer (`'remote'`) or is a delete
   * (`'delete'`). Returns a function that stops watching. Every change is
   * also the node's `'change'` event with the same arguments.
   */
  watch(match: string | number | { prefix: string }, listener: WatchListener): () => void {
    // Numeric keys, as set and delete take them.
    const m = typeof match === 'number' ? (keyOf(match) as string) : match
    const exact = typeof m === 'string'
    const text = exact ? m : m?.prefix
    if (typeof text !== 'string') throw new TypeError('watch: a key, or {prefix}')
    if (typeof listener !== 'function') throw new TypeError('watch: a listener function')
    const fn: WatchListener = (key, entry, how) => {
      if (exact ? key === text : key.startsWith(text)) listener(key, entry, how)
    }
    this.on('change', fn)
    return () => {
      this.off('change', fn)
    }
  }

  /** The node's state, to pass to {@link Gossip.restore} after a restart. */
  snapshot(): Snapshot {
    const clock = this.clock
    const snap = snapshotOf(this.history, clock.time, !this.pastKnown ? -1 : clock.recovering ? clock.heldThrough : undefined)
    const maxes = this.maxes()
    const withMaxes = maxes === null ? snap : { ...snap, maxes }
    return this.deletes.record() === null ? withMaxes : { ...withMaxes, ...this.deletes.snapshotFields() }
  }

  // Snapshot.maxes: the sources still held back, with their max.
  private maxes(): Record<string, number> | null {
    let out: Record<string, number> | null = null
    for (const log of this.heldBack) {
      let top = -Infinity
      for (const u of this.history.news(log.id, log.max)) if (u.version > top) top = u.version
      if (top <= log.max) this.heldBack.delete(log)
      // (-1 for none: a snapshot is JSON.)
      else (out ??= {})[log.id] = log.max === -Infinity ? -1 : log.max
    }
    return out
  }

  /**
   * This node's own writes that peers refused as late: made before deletes
   * those peers collected, by a node that heard from nobody for longer than
   * `tombstone_grace` (see docs/deletes.md, rule 7). Each is announced once
   * with the `'late'` event; {@link settleLate} decides what becomes of them.
   */
  get late(): Update[] {
    return this.deletes.late
  }

  /**
   * Settle this node's late writes (see {@link late}): `'keep'` writes each
   * again at a new version (it then wins over the deletes it may have lost
   * to, as a newer write would), `'drop'` withdraws each. Returns how many.
   * @throws TypeError for another choice.
   */
  settleLate(choice: 'keep' | 'drop'): number {
    if (choice !== 'keep' && choice !== 'drop') throw new TypeError("settleLate: 'keep' or 'drop'")
    return this.deletes.settle(choice)
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

  // The entries a store object holds at start: validated; our own are our
  // history (what we wrote); others' stay in the view, and peers send every
  // source's mappings again (our digest does not claim them). The store
  // holds only each key's entry, not its source's log: an entry of another
  // source that no peer sends again by the time every peer we exchange
  // with has answered us whole was replaced (or is held by no one) and
  // goes (see _viewCheck). Returns the clock they imply, or undefined for
  // an empty store.
  private adopt(store: StateStore): number | undefined {
    let clock: number | undefined
    for (const key of Object.keys(store)) {
      if (key === RECORD_KEY) continue
      const u = checkedUpdate(store[key], `store entry "${key}"`)
      if (u.key !== key) throw new TypeError(`store entry "${key}" is an update of another key, "${u.key}"`)
      if (clock === undefined || u.version > clock) clock = u.version
      if (u.source_id === this.id) this.history.record(u)
      else (this.viewPending ??= new Map()).set(key, u)
    }
    return clock
  }

  /**
   * @internal After a peer's answer: once every peer we exchange with has
   * answered us whole, the store's entries of other sources that none sent
   * again go, the key's entry being what resolve makes of what we hold.
   */
  _viewCheck(): void {
    const pending = this.viewPending
    if (pending === null) return
    const live = [...this.streams, this as PeerStream].filter((s) => s.exchanged && !s.destroyed)
    if (live.length === 0 || !live.every((s) => s.answeredWhole)) return
    this.viewPending = null
    const store = this.store as StateStore
    for (const [key, u] of pending) {
      const e = entryOf(store, key)
      if (e === undefined || e.source_id !== u.source_id || e.version !== u.version) continue
      const entry = this.choose(this.history.get(key))
      if (entry === undefined) delete store[key]
      else store[key] = entry
      if (this.watchers > 0) this.changed(key, e, entry)
    }
  }

  // A local write: a value, or (TOMBSTONE, WITHDRAWAL) a marker.
  private local(key: string, value: unknown): void {
    const version = this.clock.tick()
    const marker = value === TOMBSTONE ? 'deleted' : value === WITHDRAWAL ? 'withdrawn' : null
    const update: Update = Object.freeze(
      this.security !== undefined
        ? this.signed(key, marker === null ? value : null, version, marker)
        : marker === 'deleted'
          ? { key, value: null, source_id: this.id, version, deleted: true as const }
          : marker === 'withdrawn'
            ? { key, value: null, source_id: this.id, version, withdrawn: true as const }
            : { key, value, source_id: this.id, version },
    )
    const history = this.history
    const slot = history._slot(key)
    const previous = mappingOf(slot, this.id)
    const writes = history._writes
    if (this.put(update, this.entryFor(update, slot, previous), slot, previous, writes)) this.deletes.took(update, true)
  }

  /**
   * The key's resolved entry once `update` replaces `previous` (its
   * source's older mapping in `slot`, if any). `resolve` is asked whether
   * `update` replaces the current entry; when it does not, and the current
   * entry is its own source's older mapping (which no node is to hold any
   * more), `resolve` is folded over the key's current mappings in `sort`
   * order instead. The view is thereby what `resolve` makes of every
   * source's current mapping, and converges with them. Throws what resolve
   * throws.
   */
  private entryFor(update: Update, slot: Update | Slot | undefined, previous: Update | undefined): Update | undefined {
    const current = this.store === null ? resolvedOf(slot) : entryOf(this.store, update.key)
    // Our entry already is this update (a store's, at start).
    if (current !== undefined && current.version === update.version && current.source_id === update.source_id) {
      return current
    }
    // A withdrawal takes no part in resolve: the entry stays, unless it was
    // what the withdrawal replaces.
    if (update.withdrawn !== true && this.decide(update, current)) return update
    if (current === undefined || current.source_id !== update.source_id) return current
    const others: Update[] = []
    if (slot instanceof Slot) {
      for (const m of slot.mappings.values()) if (m !== previous) others.push(m)
    } else if (slot !== undefined && slot !== previous) {
      others.push(slot)
    }
    if (update.withdrawn !== true) others.push(update)
    return this.choose(others)
  }

  // `resolve` folded over a key's mappings in `sort` order: the entry it
  // keeps, starting from none.
  private choose(mappings: Update[]): Update | undefined {
    if (mappings.length > 1) mappings.sort(this.sort)
    let entry: Update | undefined
    for (const m of mappings) if (m.withdrawn !== true && this.decide(m, entry)) entry = m
    return entry
  }

  /**
   * Record `update` in place of `previous` (found in `slot` before resolve
   * ran at history write `writes`), and the key's new resolved entry (in the
   * store object, if any). False when a newer mapping of its source came
   * first (resolve wrote one).
   */
  private put(
    update: Update,
    entry: Update | undefined,
    slot: Update | Slot | undefined,
    previous: Update | undefined,
    writes: number,
    advance = true,
  ): boolean {
    const history = this.history
    const key = update.key
    // resolve wrote something: look again.
    if (history._writes !== writes) {
      slot = history._slot(key)
      previous = mappingOf(slot, update.source_id)
      if (previous !== undefined && previous.version >= update.version) return false
    }
    const log = this.logOf(update.source_id)
    const store = this.store
    const before = store === null ? resolvedOf(slot) : entryOf(store, key)
    if (store !== null && entry !== before) {
      if (entry === undefined) delete store[key]
      else store[key] = entry
    }
    history._put(update, slot, previous, log, entry, advance)
    if (!advance && update.version > log.max) this.heldBack.add(log)
    if (this.viewPending !== null) {
      const p = this.viewPending.get(key)
      if (p !== undefined && p.source_id === update.source_id && update.version >= p.version) this.viewPending.delete(key)
    }
    if (entry !== before && this.watchers > 0) this.changed(key, before, entry)
    return true
  }

  // A key absent before and after (a delete replaced, or collected) did not
  // change. A listener that throws is reported, not thrown: it must not
  // stop an exchange, a reset or a collection half-way.
  private changed(key: string, before: Update | undefined, entry: Update | undefined): void {
    const gone = entry === undefined || entry.deleted === true
    if (gone && (before === undefined || before.deleted === true)) return
    const how = gone ? 'delete' : entry.source_id === this.id ? 'local' : 'remote'
    const now = gone ? undefined : entry
    // Each listener on its own: one that throws must not starve the others.
    for (const fn of this.rawListeners('change') as WatchListener[]) {
      try {
        fn.call(this, key, now, how)
      } catch (err) {
        this.emit('invalid', { key }, `a 'change' listener threw: ${(err as Error)?.message}`)
      }
    }
  }

  /** @internal Collect the markers past the grace period that may go (see docs/deletes.md, rule 4). */
  _collect(): void {
    this.deletes.collect()
    if (this.store !== null) this.saveRecord(this.store)
  }

  // A store object keeps the node's record of deletes under RECORD_KEY
  // (a restart from it must not forget what was collected).
  private saveRecord(store: StateStore): void {
    const text = this._deletesRecord()
    if (text === this.recordSaved) return
    try {
      if (text === null) delete store[RECORD_KEY]
      else (store as Record<string, unknown>)[RECORD_KEY] = text
      this.recordSaved = text
    } catch {
      // A store that fails is told again at the next exchange; its writes say why.
    }
  }

  // Forget mapping `m` entirely; the key's entry is what resolve makes of
  // the rest.
  private forget(m: Update): void {
    const history = this.history
    const store = this.store
    const key = m.key
    const current = store === null ? history._resolved(key) : entryOf(store, key)
    let entry = current
    if (current === m || (current !== undefined && current.source_id === m.source_id && current.version === m.version)) {
      entry = this.choose(history.get(key).filter((x) => x !== m))
      if (store !== null) {
        if (entry === undefined) delete store[key]
        else store[key] = entry
      }
    }
    history._drop(m, entry)
    if (entry !== current && this.watchers > 0) this.changed(key, current, entry)
  }

  /** @internal What the node keeps of deletes besides its mappings, as JSON text for a store (null: nothing). */
  _deletesRecord(): string | null {
    const deletes = this.deletes.record()
    const maxes = this.heldBack.size === 0 ? null : this.maxes()
    if (maxes === null) return deletes
    return JSON.stringify({ ...(deletes === null ? {} : (JSON.parse(deletes) as object)), maxes })
  }

  /** @internal How many updates this node holds that a peer's digest lacks (an upper bound, counted to a cap). */
  _behind(heard: ReadonlyMap<string, number>, range: IdRange, passes: Passes): number {
    let n = 0
    for (const [log, from] of lacking(this.history, heard, range, passes)) {
      n += passes === null ? this.history.waiting(log.id, from) : newsOf(this.history, log, from, BEHIND_CAP, passes).length
      if (n >= BEHIND_CAP) return BEHIND_CAP
    }
    return n
  }

  /** @internal True if a peer's digest names exactly the versions this node holds, over `range`. */
  _sameDigest(stream: PeerStream, heard: ReadonlyMap<string, number>, range: IdRange, out = true, inn = true): boolean {
    const sources = this.history.sources
    for (const log of sources.values()) {
      if (range !== ALL && !covers(range, log.id)) continue
      const max = this.maxFor(stream, log)
      const theirs = heard.get(log.id) ?? -Infinity
      // out: the peer holds all we do; inn: we hold all it does.
      if ((out && theirs < max) || (inn && max < theirs)) return false
    }
    if (inn) for (const id of heard.keys()) if (!sources.has(id) && (range === ALL || covers(range, id))) return false
    return true
  }

  /** @internal A stream found its peer in sync: the node's 'synced' once all are. */
  _streamSynced(): void {
    if (this.exchanged && !this.synced) return
    for (const s of this.streams) if (!s.synced && !s.destroyed) return
    this.emit('synced')
  }

  // `resolve`, with `current` (the key's entry) remembered for its `get`.
  private decide(update: Update, current: Update | undefined): boolean {
    const history = this.history
    history._memoKey = update.key
    history._memoEntry = current
    try {
      return this.resolve(this, update)
    } finally {
      history._memoKey = null
    }
  }

  private logOf(source_id: string): SourceLog {
    let log = this.lastLog
    if (log === null || log.id !== source_id) {
      log = this.history.source(source_id)
      this.lastLog = log
    }
    return log
  }

  // A write of ours, signed (config.security); `sign` sees an empty signature.
  private signed(key: string, value: unknown, version: number, marker: 'deleted' | 'withdrawn' | null): Update {
    const update: { key: string; value: unknown; source_id: string; version: number; signature: string; deleted?: true; withdrawn?: true } =
      marker === 'deleted'
        ? { key, value, source_id: this.id, version, signature: '', deleted: true }
        : marker === 'withdrawn'
          ? { key, value, source_id: this.id, version, signature: '', withdrawn: true }
          : { key, value, source_id: this.id, version, signature: '' }
    update.signature = (this.security as Security).sign(update)
    return update
  }

  // The signature of a peer's update if `verify` accepts it, else undefined.
  private checkSignature(
    chunk: unknown,
    key: string,
    value: unknown,
    source_id: string,
    version: number,
    marker: 'deleted' | 'withdrawn' | null,
  ): string | undefined {
    try {
      const signature: unknown = (chunk as { signature?: unknown }).signature
      if (typeof signature !== 'string') return undefined
      const update: Update =
        marker === 'deleted'
          ? { key, value, source_id, version, signature, deleted: true }
          : marker === 'withdrawn'
            ? { key, value, source_id, version, signature, withdrawn: true }
            : { key, value, source_id, version, signature }
      return (this.security as Security).verify(update) === true ? signature : undefined
    } catch {
      return undefined
    }
  }

  /** @internal A local write that arrived through a stream. */
  _writeLocal(stream: PeerStream, chunk: unknown, key: string, value: unknown): void {
    const problem = admitValue(value, true)
    if (problem !== null) {
      stream.emit('invalid', chunk, `value ${problem}`)
      return
    }
    const held = admitted.value
    try {
      if (this.flow !== null) this.flow.write(key, held)
      else this.local(key, held)
    } catch (err) {
      stream.emit('invalid', chunk, `resolve threw: ${(err as Error)?.message}`)
    }
  }

  /** @internal A delta from a peer; its fields are in `fields`. */
  _receive(stream: PeerStream, chunk: unknown, fields: UpdateReading): void {
    const key = fields.key
    const source_id = fields.source_id
    const version = fields.version
    const deleted = fields.deleted
    const withdrawn = fields.withdrawn
    const marker = deleted || withdrawn
    const history = this.history
    if (!this.clock.accepts(version)) {
      stream.emit('invalid', chunk, aheadReason(version))
      return
    }
    // The limits every path shares; the value is frozen where it is. A
    // marker's value is null, whatever came with it.
    const problem = marker ? null : admitValue(fields.value, false)
    if (problem !== null) {
      stream.emit('invalid', chunk, `value ${problem}`)
      return
    }
    const value = marker ? null : admitted.value
    // What this node could never send on (mtu_bytes) it does not take
    // either: the same limit as at set.
    if (this.mtuBytes !== Infinity && !marker) {
      const big = oversize(this.mtuBytes, source_id, key, value, this.security !== undefined)
      if (big !== null) {
        stream.emit('invalid', chunk, big)
        return
      }
    }
    // Signed updates: check before anything, so a forgery moves nothing.
    let signature: string | undefined
    if (this.security !== undefined) {
      signature = this.checkSignature(chunk, key, value, source_id, version, deleted ? 'deleted' : withdrawn ? 'withdrawn' : null)
      if (signature === undefined) {
        stream.emit('invalid', chunk, `signature of ${source_id} missing or invalid`)
        return
      }
    }
    let past = false
    if (source_id === this.id) {
      past = this.isPast(key, value, version)
      if (past) this.pastOf(stream, version)
      // A twin's writes are not ours to keep or relay.
      if (stream.twin) return
      // An answer to a question for our past comes in version order from
      // where we asked, which joins what we held and what this peer showed.
      // (Once we sent our own updates again, a peer's copy of us may have
      // our own gap: it proves nothing of what we hold.)
      const from = stream.askFrom
      if (from !== null && version > stream.ownSeen) {
        stream.ownSeen = version
        // (Our own writes of this incarnation coming back are no past.)
        if (from <= this.clock.pastHeld && !this.pastSettled && version < this.clock.start) this.clock.held(version)
      }
    } else {
      this.clock.see(version)
    }

    const deletes = this.deletes
    const slot = history._slot(key)
    const previous = mappingOf(slot, source_id)
    // A write of ours from this incarnation that we do not hold as it is:
    // we replaced it since (and may have collected what replaced it). A
    // stale copy at a peer does not bring it back.
    if (source_id === this.id && !past && (previous === undefined || previous.version < version)) return
    // What may move the source's max: not through a filter (what it brings
    // may have gaps below), nor past a value refused in this answer.
    const advance = stream.gapFree() && deletes.mayAdvance(stream, source_id, version)
    // The source's mapping of the key is here already, or a newer one.
    if (previous !== undefined && previous.version >= version) {
      // Keep the source's max moving: we hold it this far.
      const log = this.logOf(source_id)
      if (advance && version > log.max) {
        stream.movingMax(log)
        log.max = version
      }
      deletes.received(stream, source_id, version, previous.version === version ? previous : undefined, false)
      return
    }
    const update: Update = Object.freeze(
      signature === undefined
        ? deleted
          ? { key, value, source_id, version, deleted: true as const }
          : withdrawn
            ? { key, value, source_id, version, withdrawn: true as const }
            : { key, value, source_id, version }
        : deleted
          ? { key, value, source_id, version, signature, deleted: true as const }
          : withdrawn
            ? { key, value, source_id, version, signature, withdrawn: true as const }
            : { key, value, source_id, version, signature },
    )
    // Older than a delete we collected: it may be what that delete beat.
    // Refused, and its writer told (rule 5).
    if (deletes.refuses(stream, update, past)) return
    // A throwing resolve or store leaves the update unrecorded (and our
    // digest not claiming it), to be asked for again.
    let stage = 'resolve'
    try {
      const writes = history._writes
      const entry = this.entryFor(update, slot, previous)
      stage = 'the store'
      const log = this.logOf(source_id)
      const below = version < log.max
      if (advance) stream.movingMax(log)
      if (this.put(update, entry, slot, previous, writes, advance)) {
        if (past) this.pastMappings.add(update)
        if (below) this.filled(update)
        deletes.took(update, false)
        deletes.received(stream, source_id, version, update, true)
      }
    } catch (err) {
      if (history.mapping(source_id, key) === update) stage = "an 'update' listener"
      // Unrecorded: the rest of this source in this answer stays below its
      // max, so that the next exchange brings it again.
      else deletes.holdBack(stream, source_id, version)
      stream.emit('invalid', chunk, `${stage} threw: ${(err as Error)?.message}`)
      return
    }
  }

  // `u` filled a gap here: offer it on (see fills), keeping the list bounded.
  private filled(u: Update): void {
    const fills = this.fills
    fills.push(u)
    if (fills.length > 4096) {
      const drop = fills.length - 2048
      fills.splice(0, drop)
      this.fillBase += drop
    }
  }

  /** @internal A peer's digest names our own id. */
  _heardSelf(stream: PeerStream, version: number): void {
    if (stream.twin) return
    if (version > this.sentOwn || this.clock.isPast(version)) this.pastOf(stream, version)
  }

  // `stream` showed us our own id at `version`, which we did not issue: a
  // past incarnation's, to be issued again above; past Clock.TWIN_LIMIT
  // such raises, a twin or a liar on that stream (see twinOn).
  private pastOf(stream: PeerStream, version: number): void {
    stream.pastShown = true
    const clock = this.clock
    if (version > clock.pastHeard) this.pastSettled = false
    const raises = clock.raises
    const upTo = clock.foreign(version)
    if (clock.raises > raises && clock.twin && !stream.twin) this.twinOn(stream, version)
    this.reissue(upTo)
  }

  // A stream that keeps showing our "past" above our writes carries a twin
  // (another live node with our id) or a liar, or relays one: what it says
  // of our id is ignored from now on, once reported. The stream stays open:
  // an honest peer relaying a liar's forgery must still get our writes,
  // which the clock (following the forgery) now issues above it.
  private twinOn(stream: PeerStream, version: number): void {
    stream.twin = true
    const message =
      `another live node writes as "${this.id}" (or a peer keeps claiming it does): ` +
      `its versions passed ours ${Clock.TWIN_LIMIT} times; give each node its own id`
    stream.emit('invalid', { source_id: this.id, version }, message)
  }

  /** @internal Whether streams take local writes unless told otherwise. */
  get _localWrites(): boolean {
    return this.localDefault
  }

  /** @internal True if a version from a peer is believable (see Clock.accepts). */
  _accepts(version: number): boolean {
    return this.clock.accepts(version)
  }

  /**
   * @internal A peer answered our question for our past completely. Once
   * every peer we exchange with has, we hold all of our past there is to
   * fetch from them, and send our own updates again. (One that shows more
   * later makes us fetch again; what we sent meanwhile with a gap is mended
   * by gap fills, see `fills`.)
   */
  _pastAnswered(): void {
    if (this.pastKnown && (!this.clock.recovering || this.pastSettled)) return
    const live = [...this.streams, this as PeerStream].filter((s) => s.exchanged && !s.destroyed)
    // We send our own updates again; we still ask each further peer for
    // our past from where we hold it without a gap.
    if (live.length === 0 || !live.every((s) => s.verified)) return
    if (this.clock.recovering) this.pastSettled = true
    this.pastKnown = true
  }

  /**
   * @internal The mappings that filled a gap here (see `fills`) that
   * `stream`'s peer has passed (its digest names their source at or above
   * them) without being offered them: at most an mtu, each offered once per
   * stream. A peer behind one is offered it once it passes it (it may pass
   * it through a copy with the gap). Null when there are none.
   */
  _fillsFor(stream: PeerStream, heard: ReadonlyMap<string, number>, passes: Passes): Update[] | null {
    const fills = this.fills
    const end = this.fillBase + fills.length
    if (stream.fillAt >= end && stream.fillWait === null) return null
    const waiting = stream.fillWait ?? []
    for (let i = Math.max(stream.fillAt - this.fillBase, 0); i < fills.length; i++) waiting.push(fills[i])
    stream.fillAt = end
    const out: Update[] = []
    const still: Update[] = []
    for (const u of waiting) {
      if (!this.history.isCurrent(u) || (passes !== null && !passes(u.source_id, u.key))) continue
      if ((heard.get(u.source_id) ?? -Infinity) < u.version || out.length >= this.mtu) still.push(u)
      else out.push(u)
    }
    // Bounded: the oldest go first (a peer that never passes them needs none).
    if (still.length > 4096) still.splice(0, still.length - 4096)
    stream.fillWait = still.length === 0 ? null : still
    return out.length === 0 ? null : out
  }

  /** @internal True if the node was restored still missing part of its own past (see Snapshot.held). */
  _hasPast(): boolean {
    return this.restoredRecovering
  }

  /** @internal We pushed our own update at `version` to a peer. */
  _sent(version: number): void {
    if (version > this.sentOwn) this.sentOwn = version
  }

  // An update of our own id is from our past unless we sent that version
  // and it is what we wrote then.
  private isPast(key: string, value: unknown, version: number): boolean {
    // Peers know only the versions of ours we sent: anything above is past.
    if (version > this.sentOwn || this.clock.isPast(version)) return true
    const mine = this.history.at(this.id, version)
    return mine !== undefined && (mine.key !== key || !sameValue(mine.value, value))
  }

  /** @internal A peer completely answered our digest and holds us up to `version`. */
  _answeredSelf(version: number): void {
    if (!this.pastSettled) this.clock.answered(version)
  }

  /**
   * @internal Push our digest's entries (not its end) to `stream`; `askAll`
   * asks for everything of ours the peer holds beyond the past we hold.
   * Returns where it asks for our past from, or null if it does not.
   */
  _digest(stream: PeerStream, askAll: boolean): number | null {
    // Admit what the allowed rate lets through before naming our own max.
    if (this.flow !== null) {
      this.flow.pump()
      if (this.drainOwed) this.drained()
    }
    const id = this.id
    const history = this.history
    const sources = history.sources
    // The end's room for the delete logic's fields counts against the message too.
    const extra = this.mtuBytes === Infinity || this.deletes.quiet(stream) ? 0 : EXTRA_BYTES
    const meter = this.mtuBytes === Infinity ? null : new DigestMeter(this.mtuBytes, id, this.flow !== null, extra)
    if (sources.size < part && (meter === null || meter.whole(sources.values(), id))) {
      for (const log of sources.values()) {
        if (log.id === id) continue
        const max = this.maxFor(stream, log)
        if (max !== -Infinity) stream.push({ digest: true, source_id: log.id, version: max })
      }
      stream.part = ALL
    } else {
      // In parts: the ids after where the last part to this peer ended.
      const ids = history._sortedIds()
      const after = stream.part.through
      let i = after === undefined ? 0 : upperBound(ids, after)
      if (i >= ids.length) i = 0
      const first = i
      let named = 0
      meter?.start(first === 0 ? undefined : ids[first - 1])
      for (; i < ids.length && named < part - 1; i++) {
        if (ids[i] === id) continue
        const max = this.maxFor(stream, sources.get(ids[i]) as SourceLog)
        if (meter !== null && !meter.add(ids[i], max)) break
        if (max !== -Infinity) stream.push({ digest: true, source_id: ids[i], version: max })
        named++
      }
      stream.part = { after: first === 0 ? undefined : ids[first - 1], through: i >= ids.length ? undefined : ids[i - 1] }
    }
    stream.digestBytes = meter === null ? 0 : meter.bytes + extra
    // Asking for our past names us where our knowledge of it, and of what
    // this peer already showed us, stops.
    const ownLog = sources.get(id)
    const own = ownLog === undefined ? -Infinity : this.maxFor(stream, ownLog)
    // A peer that answered a question for our past completely holds no
    // more of it than we do: to it we name ourselves as far as we hold.
    const askPast = askAll || (this.clock.recovering && !stream.verified && (stream.pastShown || this.restoredRecovering))
    // Each peer is asked for all it holds of our past, from where it has
    // shown us so far: what we hold "without a gap" was judged from other
    // peers' copies, and one of ours we sent meanwhile may hold a gap (gap
    // fills mend those once we have what was missing, see `fills`).
    const mine = askPast ? stream.ownSeen : own
    if (mine >= 0) stream.push({ digest: true, source_id: id, version: mine })
    return askPast ? mine : null
  }

  // What our digest to `stream` names for `log`'s source: its max, or,
  // through a filter, the newest mapping we hold that passes it.
  private maxFor(stream: PeerStream, log: SourceLog): number {
    const passes = stream.digestPasses
    if (passes === null) return this.deletes.naming(stream, log.id, log.max) ?? log.max
    let max = -Infinity
    for (const u of this.history.news(log.id, -Infinity)) if (u.version > max && passes(u.source_id, u.key)) max = u.version
    return max
  }

  /**
   * @internal The end of our digest to `stream`, a question's or a reply's:
   * with our allowed rate under flow control, the part of the ids it
   * covered when sent in parts, how many updates the peer lacks, whether the
   * stream takes updates and its filter, and a reset when the peer is
   * behind deletes we collected.
   */
  _done(stream: PeerStream, reply: boolean): DigestDone {
    const part = stream.part
    const behind = reply ? stream.behind.them : 0
    if (
      this.flow === null &&
      part === ALL &&
      behind === 0 &&
      stream.takes &&
      stream.sends &&
      this.security === undefined &&
      stream.streamFilter === undefined &&
      this.deletes.quiet(stream)
    ) {
      return reply ? REPLY : DONE
    }
    const done: { -readonly [K in keyof DigestDone]: DigestDone[K] } = { digest: true, done: true }
    if (reply) done.reply = true
    if (this.flow !== null) done.rate = this.flow.allowed
    if (part.after !== undefined) done.after = part.after
    if (part.through !== undefined) done.through = part.through
    if (behind > 0) done.behind = behind
    if (!stream.takes) done.accepts = false
    if (!stream.sends) done.sends = false
    if (stream.streamFilter !== undefined) done.filter = stream.streamFilter
    this.deletes.extras(stream, done)
    return done
  }

  // Issue again, above the clock, every write of this incarnation at or
  // below `upTo`: peers that hold our past up to there would ignore them.
  private reissue(upTo: number): void {
    if (upTo === -Infinity) return
    const start = this.clock.start
    const clock = this.clock
    for (const u of this.history.news(this.id, start - 1)) {
      if (u.version > upTo) break
      // Only this incarnation's own writes: a past's mapping we hold keeps
      // its version, so a newer write of the past still wins over it.
      if (clock.issued(u.version) && !this.pastMappings.has(u)) this.rewrite(u.key, u.value)
    }
  }

  // A write of ours again, at a new version, through resolve like any write
  // (so every node decides on it alike). A throwing resolve keeps the old
  // one: it is still ours to send.
  private rewrite(key: string, value: unknown): void {
    try {
      this.local(key, value)
    } catch (err) {
      this.emit('invalid', { key, value }, `resolve threw: ${(err as Error)?.message}`)
    }
  }
}

// The index of the first id above `id`.
function upperBound(ids: readonly string[], id: string): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ids[mid] <= id) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * @internal Whether an `'invalid'` reason is a version refused for running
 * too far ahead of this node's clock: the update is refused, but the peer
 * may only relay what a node with a wrong clock wrote.
 */
export function isAheadRefusal(reason: string): boolean {
  return reason.startsWith('version ') && reason.includes(" h ahead of this node's clock")
}

function aheadReason(version: number): string {
  const ahead = (version - Clock.now()) / 3.6e9
  return `version ${version} is ${ahead.toFixed(1)} h ahead of this node's clock (the limit is ${Clock.AHEAD / 3.6e9} h): a clock is wrong, or a peer is hostile`
}

// A store's entry for `key` if it is an update-like object (a plain store
// answers inherited names such as "toString" with functions).
function entryOf(store: StateStore, key: string): Update | undefined {
  const u = store[key]
  return typeof u === 'object' && u !== null ? u : undefined
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  try {
    return JSON.stringify(a) === JSON.stringify(b)
  } catch {
    return false
  }
}

function checkStreamOptions(options: StreamOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('stream options must be an object')
  if (options.local_writes !== undefined && typeof options.local_writes !== 'boolean') {
    throw new TypeError('local_writes must be a boolean')
  }
}

function checkConfig(id: string, config: Config): number {
  const bad = badName('id', id)
  if (bad !== null) throw new TypeError(bad)
  if (config === null || typeof config !== 'object') throw new TypeError('config must be an object')
  if (typeof config.resolve !== 'function') {
    throw new TypeError(
      'config.resolve is required: there is no safe default. Choose one of ' +
        'base.resolution (lww_vs_current_vers, lww_vs_clock, strictly_order_values) ' +
        'or write your own; see docs/guide.md, "Choosing resolve".',
    )
  }
  // Falsy mtu and max_history take the defaults, as in the original.
  const mtu = config.mtu || defaults.mtu
  if (!Number.isSafeInteger(mtu) || mtu < 1) throw new TypeError('config.mtu must be a positive integer')
  const max = config.max_history || defaults.max_history
  if (!(max === Infinity || (Number.isSafeInteger(max) && max >= 1))) {
    throw new TypeError('config.max_history must be a positive integer or Infinity')
  }
  if (config.sort !== undefined && typeof config.sort !== 'function') {
    throw new TypeError('config.sort must be a comparator function')
  }
  if (config.order !== undefined && config.order !== 'depth' && config.order !== 'breadth') {
    throw new TypeError("config.order must be 'depth' or 'breadth'")
  }
  if (config.random !== undefined && typeof config.random !== 'function') {
    throw new TypeError('config.random must be a function')
  }
  if (config.local_writes !== undefined && typeof config.local_writes !== 'boolean') {
    throw new TypeError('config.local_writes must be a boolean')
  }
  const security = config.security
  if (
    security !== undefined &&
    (security === null ||
      typeof security !== 'object' ||
      typeof security.sign !== 'function' ||
      typeof security.verify !== 'function')
  ) {
    throw new TypeError('config.security must be an object with sign(update) and verify(update) functions')
  }
  return mtu
}

// The record of deletes a store object keeps (see saveRecord), if any: a
// damaged one is left out (it only guards against stale peers).
function recordOf(store: StateStore): Snapshot | undefined {
  const text: unknown = (store as Record<string, unknown>)[RECORD_KEY]
  if (typeof text !== 'string') return undefined
  try {
    const r: unknown = JSON.parse(text)
    return r !== null && typeof r === 'object' ? (r as Snapshot) : undefined
  } catch {
    return undefined
  }
}

// How far a snapshot held its own past (see Snapshot.held), if it says.
function heldOf(state: Snapshot): number | undefined {
  const h = state?.held
  return typeof h === 'number' && Number.isSafeInteger(h) ? h : undefined
}

// Versions a snapshot says were reserved (see Snapshot.reserved), if any.
function reservedOf(state: Snapshot): number {
  const r = state?.reserved
  return typeof r === 'number' && Number.isSafeInteger(r) ? r : -Infinity
}

// config.tombstone_grace, checked: ms, default one hour.
function checkGrace(grace: unknown): number {
  if (grace === undefined) return 3_600_000
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) throw new TypeError('config.tombstone_grace must be a number of milliseconds, 0 or more')
  return grace
}
