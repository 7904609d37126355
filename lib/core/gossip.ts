/**
 * A Scuttlebutt node as object-mode streams: `Gossip` holds the state and is
 * also the stream for its first peer; `createStream()` makes one more stream
 * per further peer. Each stream answers the digests written to it, to that
 * peer only, so one peer's digest never shapes what another receives, and a
 * peer that stops reading only fills its own buffer.
 */
import { Transform } from 'readable-stream'
import { config as defaults } from './base'
import { Clock } from './clock'
import { FlowControl, flowOptions, overflowed, rateOf } from './flow'
import { History, SourceLog } from './history'
import { deltas } from './reconcile'
import { badName, classify, fields, Kind } from './shape'
import { jsonProblem } from './value'
import type {
  Comparator,
  Config,
  DigestDone,
  Missing,
  Order,
  Resolve,
  ResolutionContext,
  Security,
  Snapshot,
  Update,
} from './types'

const MISSING: Missing = Object.freeze({ version: -Infinity, value: null })
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
  private verified = false
  /** @internal This peer has shown us every update of ours up to here. */
  ownSeen = -Infinity

  /** @internal Use `new Gossip(...)` or `gossip.createStream()`. */
  constructor(node: Gossip | null, mtu: number) {
    super({ objectMode: true, highWaterMark: mtu })
    this.node = node ?? (this as unknown as Gossip)
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
    this.askFrom = this.node._digest(this, !this.verified && this.node._hasPast())
    this.push(this.node._done(false))
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
    const kind = classify(chunk)
    switch (kind) {
      case Kind.Update:
        this.received++
        this.node._receive(this, chunk)
        break
      case Kind.Local:
        this.node._writeLocal(this, chunk, fields.key, fields.value)
        break
      case Kind.Digest:
        this.hear(chunk, fields.source_id, fields.version)
        break
      case Kind.Done:
        this.answer(chunk)
        break
      default:
        this.emit('invalid', chunk, fields.reason)
    }
    callback()
  }

  private hear(chunk: unknown, source_id: string, version: number): void {
    const heard = this.heard
    if (!heard.has(source_id) && heard.size >= Math.max(1024, 4 * this.node.history.sources.size)) {
      this.emit('invalid', chunk, 'digest names too many sources')
      return
    }
    heard.set(source_id, version)
    if (source_id === this.node.id) this.node._heardSelf(version)
  }

  private answer(done: unknown): void {
    const node = this.node
    const heard = this.heard
    // Only a digest marked as a reply is not answered with ours: a counter of
    // our questions alone would go wrong once a digest is lost or repeated.
    const isAnswer = (done as DigestDone).reply === true
    if (isAnswer && this.asked > 0) {
      this.asked--
      // Asked for our past: complete if the answer was not cut, or if the
      // peer has now shown us everything of ours it holds.
      const named = heard.get(node.id)
      if (this.askFrom !== null && (this.received < node.mtu || (named !== undefined && named <= this.ownSeen))) {
        this.verified = true
        if (named !== undefined) node._answeredSelf(named)
      }
    }
    // Push-pull: a question is answered with our digest, the deltas the
    // peer lacks, and the digest's end, which also ends the answer. The
    // digest goes first so that the peer learns how far we hold its own id
    // before it reads the deltas (see Clock on restarts).
    if (!isAnswer) node._digest(this, false)
    const out = deltas(node.history, heard, node.mtu, node.order, node.random)
    // Flow control: this exchange overflowed if our answer or theirs was cut.
    const flow = node.flow
    if (flow !== null) {
      const cut = (isAnswer && this.received >= node.mtu) || overflowed(node.history, heard, node.mtu, out.length)
      flow.exchanged(cut, rateOf(done))
    }
    const id = node.id
    for (let i = 0; i < out.length; i++) {
      const u = out[i]
      if (u.source_id === id) node._sent(u.version)
      this.push(u)
    }
    if (!isAnswer) this.push(node._done(true))
    heard.clear()
  }
}

/**
 * A Scuttlebutt node: its state, history and clock, and the stream of its
 * first peer. Wire it as
 * `gossip.pipe(serializer).pipe(peer).pipe(deserializer).pipe(gossip)`.
 *
 * @example
 * ```ts
 * const a = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
 * const b = new Gossip('b', { resolve: base.resolution.lww_vs_current_vers })
 * a.pipe(b).pipe(a)
 * a.set('color', 'blue')
 * b.gossip() // b asks, a answers: b.get('color').value === 'blue' soon after
 * ```
 */
export class Gossip extends PeerStream implements ResolutionContext {
  /** This node's source id. */
  readonly id: string
  /** The mappings this node holds, indexed per source. */
  readonly history: History
  /** Deltas per exchange. */
  readonly mtu: number
  /** The paper's ordering used when an answer exceeds the mtu. */
  readonly order: Order
  /** The order over updates given to resolution policies. */
  readonly sort: Comparator
  /** Randomness for tie-breaking. */
  readonly random: () => number
  /** Flow control (`config.flow_control`): allowed rate and backlog; null when off. */
  readonly flow: FlowControl | null
  private readonly resolve: Resolve
  // The highest version of our own id pushed to any peer: peers (and their
  // peers) can know no version of ours above it from this incarnation.
  private sentOwn = -Infinity
  private readonly clock: Clock
  // config.security; undefined when updates are not signed.
  private readonly security: Security | undefined
  // The log last written to: updates come in runs of one source.
  private lastLog: SourceLog | null = null
  // Whether the last decide()'s resolve left the state alone.
  private memoHeld = false

  /**
   * @param id - this node's source id, unique in the cluster.
   * @param config - `resolve` is required; the rest default to `base.config`.
   * @param state - a saved `snapshot()` to start from.
   * @throws TypeError when `config.resolve` is missing or a setting is invalid.
   */
  constructor(id: string, config: Config, state?: Snapshot) {
    const mtu = checkConfig(id, config)
    super(null, mtu)
    this.id = id
    this.mtu = mtu
    this.resolve = config.resolve as Resolve
    this.sort = config.sort ?? defaults.sort
    this.order = config.order ?? defaults.order
    this.random = config.random ?? Math.random
    this.security = config.security
    this.history = new History(config.max_history ?? defaults.max_history)
    let restored: number | undefined
    if (state !== undefined) restored = restore(this.history, state)
    this.clock = new Clock(restored, Math.max(Clock.now(), reservedOf(state)), heldOf(state))
    // What a saved state holds, an earlier run may have sent.
    if (restored !== undefined) this.sentOwn = restored
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

  /** The highest version this node has seen or issued (its Lamport clock). */
  get version(): number {
    return this.clock.time
  }

  /** Every key's current mapping. Read-only: change it with `set`. */
  get state(): ReadonlyMap<string, Update> {
    return this.history.state
  }

  /** The current mapping of `key`, or `{version: -Infinity, value: null}`. */
  get(key: string): Update | Missing {
    const history = this.history
    // Inside resolve, the key was just looked up (see History._memoKey).
    if (key === history._memoKey) return history._memoEntry ?? MISSING
    return history.state.get(key) ?? MISSING
  }

  /**
   * Write `key` locally, at a version above everything this node has seen.
   * The write goes through `config.resolve` like any other.
   * @returns true when the write was made; false only under flow control,
   * while the write waits in the backlog for the allowed rate.
   * @throws TypeError for a key that is not a non-empty, non-reserved string,
   * an undefined value, or a value JSON cannot carry (see `jsonProblem`).
   */
  set(key: string, value: unknown): boolean {
    const bad = badName('key', key)
    if (bad !== null) throw new TypeError(bad)
    if (value === undefined) throw new TypeError('value must not be undefined')
    const problem = jsonProblem(value)
    if (problem !== null) throw new TypeError(`value ${problem}`)
    if (this.flow !== null) return this.flow.write(key, value)
    this.local(key, value)
    return true
  }

  /** Another stream of this node, for one more peer. */
  createStream(): PeerStream {
    return new PeerStream(this, this.mtu)
  }

  /** The node's state, to pass as `state` to a new Gossip after a restart. */
  snapshot(): Snapshot {
    const clock = this.clock
    const updates = Array.from(this.history.state.values())
    // Still fetching our past: say so, or the restored node would not ask.
    if (clock.recovering) return { version: clock.time, updates, held: clock.heldThrough }
    return { version: clock.time, updates }
  }

  private local(key: string, value: unknown): void {
    const version = this.clock.tick()
    const update: Update =
      this.security === undefined ? { key, value, source_id: this.id, version } : this.signed(key, value, version)
    const history = this.history
    const current = history.state.get(key)
    if (this.decide(update, current)) history._put(update, this.fresh(key, current), this.logOf(this.id))
  }

  // `resolve`, with `current` (the key's entry) remembered for its `get`.
  private decide(update: Update, current: Update | undefined): boolean {
    const history = this.history
    history._memoKey = update.key
    history._memoEntry = current
    try {
      return this.resolve(this, update)
    } finally {
      // Still set unless resolve wrote something: see fresh().
      this.memoHeld = history._memoKey !== null
      history._memoKey = null
    }
  }

  // The key's entry after decide(): `current`, unless resolve wrote.
  private fresh(key: string, current: Update | undefined): Update | undefined {
    return this.memoHeld ? current : this.history.state.get(key)
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
  private signed(key: string, value: unknown, version: number): Update {
    const update = { key, value, source_id: this.id, version, signature: '' }
    update.signature = (this.security as Security).sign(update)
    return update
  }

  // The signature of a peer's update if `verify` accepts it, else undefined.
  private checkSignature(chunk: unknown, key: string, value: unknown, source_id: string, version: number): string | undefined {
    try {
      const signature: unknown = (chunk as { signature?: unknown }).signature
      if (typeof signature !== 'string') return undefined
      return (this.security as Security).verify({ key, value, source_id, version, signature }) === true
        ? signature
        : undefined
    } catch {
      return undefined
    }
  }

  /** @internal A local write that arrived through a stream. */
  _writeLocal(stream: PeerStream, chunk: unknown, key: string, value: unknown): void {
    const problem = jsonProblem(value)
    if (problem !== null) {
      stream.emit('invalid', chunk, `value ${problem}`)
      return
    }
    try {
      if (this.flow !== null) this.flow.write(key, value)
      else this.local(key, value)
    } catch (err) {
      stream.emit('invalid', chunk, `resolve threw: ${(err as Error)?.message}`)
    }
  }

  /** @internal A delta from a peer; its fields are in `fields`. */
  _receive(stream: PeerStream, chunk: unknown): void {
    const key = fields.key
    const value = fields.value
    const source_id = fields.source_id
    const version = fields.version
    const history = this.history
    // Signed updates: check before anything, so a forgery moves nothing.
    let signature: string | undefined
    if (this.security !== undefined) {
      signature = this.checkSignature(chunk, key, value, source_id, version)
      if (signature === undefined) {
        stream.emit('invalid', chunk, `signature of ${source_id} missing or invalid`)
        return
      }
    }
    let past = false
    if (source_id === this.id) {
      past = this.isPast(key, value, version)
      if (past) this.reissue(this.clock.foreign(version))
      // An answer to a question for our past comes in version order from
      // where we asked, which joins what we held and what this peer showed.
      const from = stream.askFrom
      if (from !== null && version > stream.ownSeen) {
        stream.ownSeen = version
        if (from <= this.clock.pastHeld) this.clock.held(version)
      }
    } else {
      this.clock.see(version)
    }
    const log = this.logOf(source_id)
    if (version > log.max) log.max = version

    const current = history.state.get(key)
    if (current !== undefined && current.version === version && current.source_id === source_id) return
    const update: Update =
      signature === undefined ? { key, value, source_id, version } : { key, value, source_id, version, signature }
    let wins: boolean
    try {
      wins = this.decide(update, current)
    } catch (err) {
      stream.emit('invalid', chunk, `resolve threw: ${(err as Error)?.message}`)
      return
    }
    if (!wins) return
    history._put(update, this.fresh(key, current), log)
    // Our past, at a version this incarnation may also have used: issue it
    // again, above the ambiguity, so that no peer mistakes it for ours.
    if (past && version >= this.clock.start) this.rewrite(update)
  }

  /** @internal A peer's digest names our own id. */
  _heardSelf(version: number): void {
    if (version > this.sentOwn || this.clock.isPast(version)) this.reissue(this.clock.foreign(version))
  }

  /** @internal True once the node has seen any sign of a past incarnation. */
  _hasPast(): boolean {
    return this.clock.pastSeen
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
    this.clock.answered(version)
  }

  /**
   * @internal Push our digest's entries (not its end) to `stream`; `askAll`
   * asks for everything of ours the peer holds beyond the past we hold.
   * Returns where it asks for our past from, or null if it does not.
   */
  _digest(stream: PeerStream, askAll: boolean): number | null {
    // Admit what the allowed rate lets through before naming our own max.
    if (this.flow !== null) this.flow.pump()
    const id = this.id
    let own = -Infinity
    for (const log of this.history.sources.values()) {
      if (log.id === id) {
        own = log.max
        continue
      }
      if (log.max !== -Infinity) stream.push({ digest: true, source_id: log.id, version: log.max })
    }
    // Asking for our past names us where our knowledge of it, and of what
    // this peer already showed us, stops.
    const askPast = askAll || this.clock.recovering
    const mine = askPast ? Math.max(this.clock.pastHeld, stream.ownSeen) : own
    if (mine >= 0) stream.push({ digest: true, source_id: id, version: mine })
    return askPast ? mine : null
  }

  /** @internal The end of our digest, a question's or a reply's (with our allowed rate under flow control). */
  _done(reply: boolean): DigestDone {
    if (this.flow !== null) return this.flow.done(reply)
    return reply ? REPLY : DONE
  }

  // Issue again, above the clock, every write of this incarnation at or
  // below `upTo`: peers that hold our past up to there would ignore them.
  private reissue(upTo: number): void {
    if (upTo === -Infinity) return
    const start = this.clock.start
    for (const u of this.history.news(this.id, start - 1)) {
      if (u.version > upTo) break
      this.rewrite(u)
    }
  }

  private rewrite(u: Update): void {
    const version = this.clock.tick()
    this.history.record(
      this.security === undefined
        ? { key: u.key, value: u.value, source_id: this.id, version }
        : this.signed(u.key, u.value, version),
    )
  }
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

function checkConfig(id: string, config: Config): number {
  const bad = badName('id', id)
  if (bad !== null) throw new TypeError(bad)
  if (config === null || typeof config !== 'object') throw new TypeError('config must be an object')
  if (typeof config.resolve !== 'function') {
    throw new TypeError(
      'config.resolve is required: there is no safe default. Choose one of ' +
        'base.resolution (lww_vs_current_vers, lww_vs_clock, strictly_order_values) ' +
        'or write your own; see the README, "Choosing resolve".',
    )
  }
  const mtu = config.mtu ?? defaults.mtu
  if (!Number.isSafeInteger(mtu) || mtu < 1) throw new TypeError('config.mtu must be a positive integer')
  const max = config.max_history ?? defaults.max_history
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

// How far a snapshot held its own past (see Snapshot.held), if it says.
function heldOf(state: Snapshot | undefined): number | undefined {
  const h = state?.held
  return typeof h === 'number' && Number.isSafeInteger(h) ? h : undefined
}

// Versions a snapshot says were reserved (see Snapshot.reserved), if any.
function reservedOf(state: Snapshot | undefined): number {
  const r = state?.reserved
  return typeof r === 'number' && Number.isSafeInteger(r) ? r : -Infinity
}

// Load a snapshot into an empty history; returns its clock.
function restore(history: History, state: Snapshot): number {
  if (state === null || typeof state !== 'object' || !Array.isArray(state.updates)) {
    throw new TypeError('state must be a snapshot: {version, updates}')
  }
  let clock = typeof state.version === 'number' && Number.isSafeInteger(state.version) ? state.version : 0
  for (const u of state.updates) {
    if (classify(u) !== Kind.Update) throw new TypeError(`state holds an invalid update: ${fields.reason}`)
    const { key, value, source_id, version } = fields
    const current = history.state.get(key)
    // Keep a signature, so that relaying the restored update stays verifiable.
    const signature = (u as Update).signature
    if (current === undefined || version > current.version) {
      history.record(
        typeof signature === 'string'
          ? { key, value, source_id, version, signature }
          : { key, value, source_id, version },
      )
    }
    if (version > clock) clock = version
  }
  return clock
}
