/**
 * The replicated state of one node: the paper's mu (every source's newest
 * mapping of each key, in `history`) and the view `resolve` makes of it
 * (per key, the mapping it accepted, kept in the history's slots or in a
 * store object). Local writes, a write taken back, a collected marker
 * forgotten and a peer's update recorded pass here; the parts it composes
 * take a peer's update in (intake.ts), offer gap fills (fills.ts), deliver
 * `'change'` (changes.ts), keep the view in a store object
 * (store-object.ts) and what a restart needs (restart.ts). It knows no
 * stream: what it needs of the peer an update came from is `Sender`.
 */
import { Changes, type ChangesHost } from './changes'
import { Clock } from './clock'
import { reportInvalid } from './codes'
import { Deletes } from './deletes'
import type { DeletesHost, StreamLike } from './markers'
import { History, Slot, SourceLog, mappingOf, resolvedOf } from './history'
import { Incarnation } from './incarnation'
import { Intake, type Sender } from './intake'
import type { Settings } from './config'
import { GapFills } from './fills'
import { isVersion, TWIN_OFFER_MS, type UpdateReading } from './shape'
import { ownUpdate } from './signatures'
import { Restart } from './restart'
import { entryOf, mappingKey, StoreObject } from './store-object'
import { memoryView, storeView } from './state'
import { lww_vs_current_vers } from './resolution'
import type { Comparator, Missing, Resolve, ResolutionContext, Security, Snapshot, StateStore, Update } from './types'

const MISSING: Missing = Object.freeze({ version: -Infinity, value: null })
// What a local write of a delete (or a withdrawal) carries through local().
export const TOMBSTONE = Object.freeze({ deleted: true })
export const WITHDRAWAL = Object.freeze({ withdrawn: true })

/** What the replica needs of its node (and its `'change'` events, see ChangesHost). */
export interface ReplicaHost extends ChangesHost {
  /** What `resolve` is given, and the `'change'` listeners are called on (the node: the original API passes the Gossip). */
  readonly context: ResolutionContext
  /**
   * The node's own `get` (answering from the replica, see Replica.get),
   * when the context is the node: while `context.get` is still it, decide()
   * runs lww_vs_current_vers itself.
   */
  readonly plainGet?: ResolutionContext['get']
  /** Report an event of the node (`'invalid'`, `'change'` listeners' errors, the delete logic's). */
  emit(event: string | symbol, ...args: unknown[]): boolean
  /** The node's open exchanges (the delete logic tells them of refetches). */
  peers(): Iterable<StreamLike>
}

/** One node's replicated state (see the module's comment). */
export class Replica {
  readonly history: History
  /** The resolved view as `state` shows it: the store object, or a read-only view over memory. */
  readonly view: StateStore
  /** `state`: the view, without the node's own keys of a store object. */
  readonly state: StateStore
  /** The delete logic (docs/deletes.md). */
  readonly deletes: Deletes
  /** The node's own id in this life: its clock, its past, its twins. */
  readonly incarnation: Incarnation
  /** Mappings a peer may lack though its digest passed them (see fills.ts). */
  readonly fills: GapFills
  /** The `'change'` events. */
  readonly changes: Changes
  /** The store object, when the view is kept in one (see store-object.ts). */
  readonly storeObject: StoreObject | null
  /** What a restart needs besides the mappings (see restart.ts). */
  readonly restart: Restart
  // A peer's update taken in (see intake.ts).
  private readonly intake: Intake
  private readonly resolve: Resolve
  // resolve is lww_vs_current_vers, and the host says what get answers as
  // the replica's own (see decide).
  private readonly lww: boolean
  private readonly sort: Comparator
  readonly security: Security | undefined
  readonly mtuBytes: number
  /** `config.digest_part`: the most sources one digest names, in tests (see digest.ts). */
  readonly digestPart: number | undefined
  // The log last written to: updates come in runs of one source.
  private lastLog: SourceLog | null = null

  /**
   * @param store - the store object, or null (the view then lives in the
   *   history's slots).
   * @throws TypeError when the store holds something that is not an update of its key.
   */
  constructor(
    readonly id: string,
    settings: Settings,
    private readonly store: StateStore | null,
    private readonly host: ReplicaHost,
  ) {
    this.resolve = settings.resolve
    this.lww = settings.resolve === lww_vs_current_vers && host.plainGet !== undefined
    this.security = settings.security
    this.mtuBytes = settings.mtuBytes
    this.digestPart = settings.digestPart
    this.sort = settings.sort
    this.changes = new Changes(id, host)
    this.restart = new Restart(this)
    this.history = new History(settings.maxHistory, { sort: settings.sort, resolved: store === null, checked: true })
    this.view = store ?? memoryView(this.history)
    this.state = store === null ? this.view : storeView(store)
    const now = Clock.now()
    this.deletes = new Deletes(this.deletesHost(), settings.grace, now)
    const kept = store === null ? null : new StoreObject(store, this)
    this.storeObject = kept
    const record = kept?.found
    if (kept !== null && kept.whole) {
      // A store object this package wrote whole (or a new one): every
      // mapping and the record, a restart as exact as from a snapshot.
      this.incarnation = new Incarnation(this, new Clock(undefined, now))
      this.fills = new GapFills(id, this.history, this.incarnation)
      if (record === undefined) this.incarnation.unknownPast()
      this.intake = new Intake(this)
      return
    }
    const restored = kept?.adopt(id)
    // A store object of each key's entry only (as an older release wrote
    // it): our own mappings that were not entries are gone, so we hold our
    // past with gaps (none of it for sure) and take it again from peers, as
    // after a restart from a snapshot still fetching its past. Our past
    // reaches our own newest entry at least.
    this.incarnation = new Incarnation(this, new Clock(restored, now, restored === undefined ? undefined : -1))
    this.fills = new GapFills(id, this.history, this.incarnation)
    if (restored === undefined) this.incarnation.unknownPast()
    else this.incarnation.fromEntries(restored)
    // Its markers, and what it collected; not its horizon: the mappings
    // below it that were not entries are gone, and peers hold them again.
    if (restored !== undefined || record !== undefined) this.deletes.restored(record === undefined ? undefined : { ...record, horizon: undefined } as Snapshot)
    this.intake = new Intake(this)
  }

  // What the delete logic may ask of this replica (see DeletesHost).
  private deletesHost(): DeletesHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const replica = this
    return {
      id: this.id,
      history: this.history,
      security: this.security,
      beats: (a, b) => this.decide(a, b),
      withdraw: (key, of) => this.local(key, WITHDRAWAL, of),
      mayWithdraw: () => replica.incarnation.mayWithdraw(),
      ownPast: (m) => replica.incarnation.pastMappings.has(m) || m.version < replica.incarnation.floor,
      rewrite: (u) => this.rewrite(u),
      forget: (m) => this.forget(m),
      wall: () => replica.incarnation.clock.wall(),
      accepts: (version) => replica.incarnation.clock.accepts(version),
      life: () => (replica.incarnation.floor === -Infinity ? undefined : [replica.incarnation.floor, replica.incarnation.clock.pastHeld]),
      selfUnsure: () => replica.incarnation.unsure,
      emit: (event, ...args) => this.host.emit(event, ...args),
      streams: () => this.host.peers(),
    }
  }

  /** Our past just settled (see Incarnation): withdrawals of our past values that waited for it are decided now. */
  settledPast(): void {
    this.deletes.withdrawBeaten()
  }

  /** The node's clock. */
  get clock(): Clock {
    return this.incarnation.clock
  }

  // ---- the view ------------------------------------------------------------

  /** The current mapping of `key` (a key as the node holds it), or `{version: -Infinity, value: null}`. */
  get(key: string): Update | Missing {
    const history = this.history
    // Inside resolve, the key was just looked up (see decide).
    if (key === history.memoKey) return history.memoEntry ?? MISSING
    const entry = this.store === null ? history.entry(key) : entryOf(this.store, key)
    return entry === undefined || entry.deleted === true ? MISSING : entry
  }

  /** Every source's current mapping of `key` that no held tombstone beats, in `config.sort` order. */
  sources(key: string): Update[] {
    return this.deletes.collection.visible(key, this.history.get(key))
  }

  // ---- writes ----------------------------------------------------------------

  /**
   * A local write: a value, or (TOMBSTONE, WITHDRAWAL) a marker; a
   * withdrawal names `of`, the version of the value it withdraws (R6); a
   * write issued again names `first`, the version first issued (R2).
   * Throws what resolve or the store throws.
   */
  local(key: string, value: unknown, of: number | null = null, first?: number): void {
    const version = this.clock.tick()
    // (Markers are objects: a value of another type is compared no further.)
    const marker = typeof value !== 'object' || value === null ? null : value === TOMBSTONE ? 'deleted' : value === WITHDRAWAL ? 'withdrawn' : null
    const update: Update =
      marker === null && this.security === undefined && first === undefined
        ? Object.freeze({ key, value, source_id: this.id, version })
        : ownUpdate(this.security, this.id, key, value, version, marker, of, first)
    const history = this.history
    const slot = history.slot(key)
    const previous = mappingOf(slot, this.id)
    const writes = history.writes
    if (this.put(update, this.entryFor(update, slot, previous), slot, previous, writes) && (marker !== null || !this.deletes.idle)) this.deletes.took(update, true)
    this.fills.took(update, false)
  }

  /**
   * {@link local} for a value (never a marker; `set`'s frozen copy): the
   * usual local write, apart so that its path fits TurboFan's inlining
   * budget (tick and decide inlined: a set 5.6% fewer instructions).
   */
  write(key: string, value: unknown): void {
    if (this.security !== undefined) return this.local(key, value)
    const update: Update = Object.freeze({ key, value, source_id: this.id, version: this.clock.tick() })
    const history = this.history
    const slot = history.slot(key)
    const previous = mappingOf(slot, this.id)
    // A new key (in memory): entryFor would only ask resolve.
    const entry = slot === undefined && this.store === null ? (this.decide(update, undefined) ? update : undefined) : this.entryFor(update, slot, previous)
    if (this.put(update, entry, slot, previous, history.writes, true, this.logOf(this.id)) && !this.deletes.idle) this.deletes.took(update, true)
    this.fills.took(update, false)
  }

  /**
   * A write of ours again, at a new version, through resolve like any write
   * (so every node decides on it alike); issued again above our past (R2),
   * it names `first`, the version first issued, whose place it keeps among
   * other sources' writes (a late write kept, rule 7, is a write made now:
   * none). A throwing resolve keeps the old one: it is still ours to send.
   */
  rewrite(u: Update, first?: number): void {
    const key = u.key
    // A marker goes again as a marker: its null is no value (attack found it).
    const value = u.deleted === true ? TOMBSTONE : u.withdrawn === true ? WITHDRAWAL : u.value
    try {
      // A withdrawal names the same value again (R6).
      this.local(key, value, u.withdrawn === true && isVersion(u.value) ? u.value : null, u.withdrawn === true ? undefined : first)
    } catch (err) {
      reportInvalid(this.host, { key, value: u.value }, `resolve threw: ${(err as Error)?.message}`, 'node_error')
      return
    }
    if (u.withdrawn === true) this.deletes.lateValues.rewrote(u, this.history.mapping(this.id, key))
  }

  /**
   * Take back `u`, a local write a durable store refused before it left
   * this node (a store's barrier holds our writes until they are durable),
   * as if it had never been made: `previous`, our mapping of the key
   * before it (if any), is current again, and the key's entry is what
   * resolve makes of the mappings then. Nothing when `u` is no longer
   * current (a later write of ours, taken back first, or a collection).
   */
  revert(u: Update, previous: Update | undefined): void {
    const history = this.history
    if (u.source_id !== this.id || !history.isCurrent(u)) return
    this.forget(u)
    if (previous === undefined || history.mapping(this.id, u.key) !== undefined) return
    // A copy: the original is retired in our log, where a second reference
    // to one object would be sent twice.
    const p: Update = Object.freeze({ ...previous })
    if (this.incarnation.pastMappings.has(previous)) this.incarnation.pastMappings.add(p)
    const slot = history.slot(u.key)
    // (Below our max: it does not move it.)
    if (this.put(p, this.entryFor(p, slot, undefined), slot, undefined, history.writes, false) && (p.deleted === true || p.withdrawn === true)) {
      // A marker is collected once its grace passes again.
      this.deletes.took(p, true)
    }
  }

  /** A peer's update (its fields read into `fields`) from `from`, taken in or refused (see Intake.take). */
  take(from: Sender, chunk: unknown, fields: UpdateReading): void {
    this.intake.take(from, chunk, fields)
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
  entryFor(update: Update, slot: Update | Slot | undefined, previous: Update | undefined): Update | undefined {
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

  /** `resolve` folded over a key's mappings in `sort` order: the entry it keeps, starting from none. */
  choose(mappings: Update[]): Update | undefined {
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
  put(
    update: Update,
    entry: Update | undefined,
    slot: Update | Slot | undefined,
    previous: Update | undefined,
    writes: number,
    advance = true,
    log: SourceLog = this.logOf(update.source_id),
  ): boolean {
    const history = this.history
    const key = update.key
    // resolve wrote something: look again.
    if (history.writes !== writes) {
      slot = history.slot(key)
      previous = mappingOf(slot, update.source_id)
      if (previous !== undefined && previous.version >= update.version) return false
    }
    const kept = this.storeObject
    const before = kept === null ? resolvedOf(slot) : kept.stored(update, previous, entry)
    history.put(update, slot, previous, log, entry, advance, update)
    if (!advance && update.version > log.max) this.restart.heldBack.add(log)
    if (kept !== null && kept.pending !== null) kept.seen(update)
    if (entry !== before && this.changes.watchers > 0) this.changes.changed(key, before, entry)
    return true
  }

  // Forget mapping `m` entirely; the key's entry is what resolve makes of
  // the rest.
  private forget(m: Update): void {
    const history = this.history
    const store = this.store
    const key = m.key
    const current = store === null ? history.entry(key) : entryOf(store, key)
    let entry = current
    if (current === m || (current !== undefined && current.source_id === m.source_id && current.version === m.version)) {
      entry = this.choose(history.get(key).filter((x) => x !== m))
      if (store !== null) {
        if (entry === undefined) delete store[key]
        else store[key] = entry
        if (this.storeObject?.whole === true && entry !== undefined) Reflect.deleteProperty(store, mappingKey(entry.source_id, key))
      }
    } else if (store !== null && this.storeObject?.whole === true) {
      Reflect.deleteProperty(store, mappingKey(m.source_id, key))
    }
    history.drop(m, entry)
    if (entry !== current && this.changes.watchers > 0) this.changes.changed(key, current, entry)
  }

  /**
   * `resolve`, with `current` (the key's entry) remembered for its `get`,
   * which then needs no second lookup (see History.memoKey).
   */
  decide(update: Update, current: Update | undefined): boolean {
    // A copy issued again (R2) is shown to resolve at the version first
    // issued: its place among other sources' mappings, at every node.
    if (update.first !== undefined || current?.first !== undefined) return this.decide(placed(update), current === undefined ? undefined : placed(current))
    // lww_vs_current_vers, whose get would answer with `current` (the memo,
    // which get gives as it is, a delete too): the same comparison, without
    // the calls. Not when the node's get was replaced (a subclass's).
    if (this.lww && this.host.context.get === this.host.plainGet) {
      if (current === undefined) return true
      if (update.version !== current.version) return update.version > current.version
      return update.source_id > current.source_id
    }
    const history = this.history
    history.memoKey = update.key
    history.memoEntry = current
    try {
      return this.resolve(this.host.context, update)
    } finally {
      history.memoKey = null
    }
  }

  /** The log of `source_id` (the last one asked for is kept: updates come in runs of one source). */
  logOf(source_id: string): SourceLog {
    let log = this.lastLog
    if (log === null || log.id !== source_id) {
      log = this.history.source(source_id)
      this.lastLog = log
    }
    return log
  }

  /** Another live node writes as `source` (see GapFills.twinned). */
  twinned(source: string, ms = TWIN_OFFER_MS): void {
    this.fills.twinned(source, ms)
  }

  /** Collect the markers past the grace that may go (docs/deletes.md, rule 4); a store object keeps the record. */
  collect(): void {
    this.deletes.collect()
    this.storeObject?.saveRecord()
  }
}

// `u` as resolve sees it: at its first version when it is a copy issued again (R2).
function placed(u: Update): Update {
  if (u.first === undefined) return u
  const { first, ...rest } = u
  return { ...rest, version: first }
}
