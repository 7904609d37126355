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
import { History } from './history'
import { deltas } from './reconcile'
import { badName, classify, fields, Kind } from './shape'
import type {
  Comparator,
  Config,
  DigestDone,
  Missing,
  Order,
  Resolve,
  ResolutionContext,
  Snapshot,
  Update,
} from './types'

const MISSING: Missing = Object.freeze({ version: -Infinity, value: null })
const DONE: DigestDone = Object.freeze({ digest: true, done: true })

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
  // Our digests this peer has not answered yet: a digest arriving while one
  // is outstanding is its answer, and is not answered with another.
  private asked = 0
  // Deltas received since our last digest: fewer than the mtu means the
  // peer's answer was complete.
  private received = 0

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
    this.node._digest(this)
    return true
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
        this.answer()
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

  private answer(): void {
    const node = this.node
    const heard = this.heard
    const isAnswer = this.asked > 0
    if (isAnswer) {
      this.asked--
      const mine = heard.get(node.id)
      if (mine !== undefined && this.received < node.mtu) node._answeredSelf(mine)
    }
    const out = deltas(node.history, heard, node.mtu, node.order, node.random)
    for (let i = 0; i < out.length; i++) this.push(out[i])
    // Push-pull: a question is answered with deltas and our own digest, whose
    // end also marks the end of our answer.
    if (!isAnswer) node._digest(this)
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
  private readonly resolve: Resolve
  private readonly clock: Clock

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
    this.history = new History(config.max_history ?? defaults.max_history)
    let restored: number | undefined
    if (state !== undefined) restored = restore(this.history, state)
    this.clock = new Clock(restored, Date.now() * 1000)
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
    return this.history.state.get(key) ?? MISSING
  }

  /**
   * Write `key` locally, at a version above everything this node has seen.
   * The write goes through `config.resolve` like any other.
   * @returns true: local writes never wait (backpressure applies to peers).
   * @throws TypeError for a key that is not a non-empty, non-reserved string
   * or an undefined value.
   */
  set(key: string, value: unknown): boolean {
    const bad = badName('key', key)
    if (bad !== null) throw new TypeError(bad)
    if (value === undefined) throw new TypeError('value must not be undefined')
    this.local(key, value)
    return true
  }

  /** Another stream of this node, for one more peer. */
  createStream(): PeerStream {
    return new PeerStream(this, this.mtu)
  }

  /** The node's state, to pass as `state` to a new Gossip after a restart. */
  snapshot(): Snapshot {
    return { version: this.clock.time, updates: Array.from(this.history.state.values()) }
  }

  private local(key: string, value: unknown): void {
    const update: Update = { key, value, source_id: this.id, version: this.clock.tick() }
    if (this.resolve(this, update)) this.history.record(update)
  }

  /** @internal A local write that arrived through a stream. */
  _writeLocal(stream: PeerStream, chunk: unknown, key: string, value: unknown): void {
    try {
      this.local(key, value)
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
    let past = false
    if (source_id === this.id) {
      past = this.clock.isPast(version) || version > this.clock.time
      this.reissue(this.clock.heard(version))
      if (past) this.clock.held(version)
    } else if (version > this.clock.time) {
      this.clock.time = version
    }
    const log = history.source(source_id)
    if (version > log.max) log.max = version

    const current = history.state.get(key)
    if (current !== undefined && current.version === version && current.source_id === source_id) return
    const update: Update = { key, value, source_id, version }
    let wins: boolean
    try {
      wins = this.resolve(this, update)
    } catch (err) {
      stream.emit('invalid', chunk, `resolve threw: ${(err as Error)?.message}`)
      return
    }
    if (!wins) return
    history.record(update)
    // Our past, at a version this incarnation may also have used: issue it
    // again, above the ambiguity, so that no peer mistakes it for ours.
    if (past && version >= this.clock.start) this.rewrite(update)
  }

  /** @internal A peer's digest names our own id. */
  _heardSelf(version: number): void {
    this.reissue(this.clock.heard(version))
  }

  /** @internal A peer completely answered our digest and holds us up to `version`. */
  _answeredSelf(version: number): void {
    this.clock.answered(version)
  }

  /** @internal Push our digest to `stream`. */
  _digest(stream: PeerStream): void {
    const id = this.id
    let own = -Infinity
    for (const log of this.history.sources.values()) {
      if (log.id === id) {
        own = log.max
        continue
      }
      if (log.max !== -Infinity) stream.push({ digest: true, source_id: log.id, version: log.max })
    }
    const mine = this.clock.digestVersion(own)
    if (mine !== undefined) stream.push({ digest: true, source_id: id, version: mine })
    stream.push(DONE)
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
    this.history.record({ key: u.key, value: u.value, source_id: this.id, version: this.clock.tick() })
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
  return mtu
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
    if (current === undefined || version > current.version) history.write(key, value, source_id, version)
    if (version > clock) clock = version
  }
  return clock
}
