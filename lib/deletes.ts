/**
 * Deletes, as docs/deletes.md designs them: tombstones and withdrawals in
 * their sources' own logs, collection after the grace period, the horizon
 * below which a value new to the node is refused as late, and the refetch
 * of a source whose copy is behind markers a peer collected. Everything a
 * node does for deletes is here; `Gossip` calls in at the points the design
 * names (a mapping taken in, a peer's digest end heard, an update about to
 * be taken, our digest end sent).
 *
 * Only S changes S's log. The one thing a node removes on its own is a
 * marker it collected, which every node does alike; a refetch drops only
 * what a fresh copy of the source does not hold.
 */
import type { History, SourceLog } from './history'
import { covers, type IdRange } from './reconcile'
import { MAX_NOTICES, staleUpdate } from './shape'
import type { DigestDone, Security, Snapshot, StaleNotice, Update } from './types'

/** What the delete logic needs of its node. */
export interface DeletesHost {
  readonly id: string
  readonly history: History
  readonly security: Security | undefined
  /** `resolve` asked of the two alone: does `a` replace `b`? */
  beats(a: Update, b: Update): boolean
  /** Withdraw our own value of `key`: a local write of a withdrawal. */
  withdraw(key: string): void
  /** Write `value` to `key` again, at a new version: a local write. */
  rewrite(key: string, value: unknown): void
  /** Forget mapping `m` entirely; the key's entry is what `resolve` makes of the rest. */
  forget(m: Update): void
  /** The node's wall clock in µs. */
  wall(): number
  /** Report an event of the node (`'late'`, `'refetch'`, `'refetched'`). */
  emit(event: string, ...args: unknown[]): boolean
  /** The node's open streams. */
  streams(): Iterable<StreamLike>
}

/** What this module needs of a stream: its authenticated peer, if any, and its events. */
export interface StreamLike {
  readonly peer: string | undefined
  emit(event: string, ...args: unknown[]): boolean
}

/** What one stream knows for deletes; kept per stream, out of the stream. */
class Link {
  /** Stale notices owed to the peer: source -> [gc, max]. */
  stale: Map<string, StaleNotice> | null = null
  /** Values of the peer's answer we refused as late, to tell it: [source, version]. */
  late: [string, number][] | null = null
  /** In the answer being read: the lowest version refused per source (max stays below it). */
  refusing: Map<string, number> | null = null
  /** What the peer's last digest named, for the sources we refetch. */
  named: Map<string, number> | null = null
  /** Under signatures: our last two nonces sent to the peer, and its latest. */
  nonces: [string | undefined, string | undefined] = [undefined, undefined]
  peerNonce: string | undefined = undefined
  constructor(readonly peer: string | undefined) {}
}

/** A source being refetched: its copy here was behind markers a peer collected. */
interface Refetch {
  /** Take this source only from peers whose digest names it at or above this. */
  gc: number
  /**
   * Done once our max of it reaches this: the notifier's max, or the least
   * max a fresh peer named (a fresh copy that far is then ours).
   */
  target: number
  /** Mappings held when the refetch began that no fresh peer has sent again. */
  unconfirmed: Set<Update>
}

interface Queued {
  readonly u: Update
  readonly at: number
}

/**
 * Most bytes this module adds to a digest's end (its horizon, nonce, late
 * reports and stale notices): a digest bounded by `mtu_bytes` leaves this
 * much room; notices past it wait for the next end.
 */
export const EXTRA_BYTES = 2048

/** Most late reports of other sources passed on towards their writers. */
const MAX_FORWARD = 1024
/** Blocked markers are looked at again at most this often (a fraction of the grace), unless few. */
const RECHECK = 8

/** A marker: a tombstone or a withdrawal. */
export function isMarker(u: Update): boolean {
  return u.deleted === true || u.withdrawn === true
}

/** The delete logic of one node (see the module's comment and docs/deletes.md). */
export class Deletes {
  /** `config.tombstone_grace` in µs of active time. */
  readonly grace: number
  // Active time (µs): time during which the node hears from peers.
  private active = 0
  private lastHeard: number
  // Markers in the order taken in, with the active time they were taken at.
  private queue: Queued[] = []
  private head = 0
  // Markers past the grace that cannot go yet (a source's newest, or a
  // tombstone still beating a live value); looked at again later.
  private blocked: Queued[] = []
  private blockedAt = -Infinity
  private blockedDirty = false
  // Keys that may hold a tombstone (all that do, and some that did).
  private readonly tombKeys = new Set<string>()
  // gc(S): the highest version of S's markers collected here or at a peer that told us.
  private readonly gc = new Map<string, number>()
  /** The highest version of a tombstone this node collected (docs/deletes.md, rule 5). */
  horizon = -Infinity
  private readonly refetches = new Map<string, Refetch>()
  // Per source: the gc a refetch of it completed for (a notice at or below it is old news).
  private readonly refetchedFor = new Map<string, number>()
  private readonly links = new WeakMap<object, Link>()
  // Our own values peers refused as late, by version, until settled.
  private readonly lateOwn = new Map<number, Update>()
  // Late reports of other sources to pass on: "source\u0000version" -> the pair.
  private readonly forward = new Map<string, readonly [string, number]>()
  // Refusals already reported as 'invalid' (bounded), so a value offered
  // again at every exchange is reported once.
  private readonly reported = new Set<string>()
  // record(), until something in it changes.
  private recordText: string | null = null

  /**
   * @param graceMs - `config.tombstone_grace`.
   * @param now - the wall clock now, µs: active time counts from here.
   */
  constructor(
    private readonly host: DeletesHost,
    graceMs: number,
    now: number,
  ) {
    this.grace = graceMs * 1000
    this.lastHeard = now
  }

  private link(stream: StreamLike): Link {
    let l = this.links.get(stream)
    if (l === undefined) {
      l = new Link(stream.peer)
      this.links.set(stream, l)
    }
    return l
  }

  // ---- mappings taken in -------------------------------------------------

  /**
   * `u` was just recorded as its source's current mapping (by us when
   * `own`). Markers wait for collection; a tombstone makes us withdraw our
   * own value it beats (rule 2), as does a value of ours a held tombstone
   * beats.
   */
  took(u: Update, own: boolean): void {
    if (this.blocked.length > 0) this.blockedDirty = true
    if (u.deleted === true) {
      this.queue.push({ u, at: this.active })
      this.tombKeys.add(u.key)
      if (!own) {
        const mine = this.host.history.mapping(this.host.id, u.key)
        if (mine !== undefined && !isMarker(mine) && this.host.beats(u, mine)) this.host.withdraw(u.key)
      }
    } else if (u.withdrawn === true) {
      this.queue.push({ u, at: this.active })
    } else if (own && this.tombKeys.has(u.key)) {
      // Only a policy other than last-writer-wins lets a held tombstone beat a new write.
      for (const m of this.host.history.get(u.key)) {
        if (m.deleted === true && this.host.beats(m, u)) {
          this.host.withdraw(u.key)
          break
        }
      }
    }
  }

  // The node was restored with writes of its own (a snapshot, a store):
  // they may be older than deletes of its own peers collected.
  private restoredOwn = false

  /** The markers of a restored history wait for collection from now; our own values they beat are withdrawn. */
  restored(snapshot: Snapshot | undefined): void {
    this.restoredOwn = (this.host.history.sources.get(this.host.id)?.live ?? 0) > 0
    const history = this.host.history
    const markers: Update[] = []
    for (const u of history._mappings()) if (isMarker(u)) markers.push(u)
    markers.sort((a, b) => a.version - b.version)
    for (const u of markers) this.took(u, u.source_id === this.host.id)
    const collected = snapshot?.collected
    if (collected !== null && typeof collected === 'object') {
      for (const id of Object.keys(collected)) {
        const v = collected[id]
        if (typeof v === 'number' && Number.isSafeInteger(v)) this.raiseGc(id, v)
      }
    }
    const h = snapshot?.horizon
    if (typeof h === 'number' && Number.isSafeInteger(h) && h > this.horizon) this.horizon = h
    // A refetch under way starts again: what we hold of the source waits to
    // be confirmed (a restart must not make a stale copy fresh).
    const refetching = snapshot?.refetching
    if (refetching !== null && typeof refetching === 'object') {
      for (const id of Object.keys(refetching)) {
        const v = refetching[id]
        if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number') this.startRefetch(id, v[0], v[1])
      }
    }
    // A crash between taking a tombstone and writing the withdrawal it
    // called for leaves our value beaten: withdraw it now.
    for (const key of this.tombKeys) {
      const mine = history.mapping(this.host.id, key)
      if (mine === undefined || isMarker(mine)) continue
      for (const m of history.get(key)) {
        if (m.deleted === true && this.host.beats(m, mine)) {
          this.host.withdraw(key)
          break
        }
      }
    }
  }

  // ---- collection (rule 4) -----------------------------------------------

  /** A peer's digest end was heard: active time moves, by at most half the grace per gap. */
  heard(): void {
    const now = this.host.wall()
    const gap = now - this.lastHeard
    this.lastHeard = now
    if (gap > 0) this.active += Math.min(gap, this.grace / 2)
  }

  /** Forget the markers past the grace that may go. Runs as exchanges start and end. */
  collect(): void {
    const cut = this.active - this.grace
    const q = this.queue
    while (this.head < q.length && q[this.head].at <= cut) {
      const entry = q[this.head++]
      if (!this.tryCollect(entry.u)) this.blocked.push(entry)
    }
    if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head)
      this.head = 0
    }
    const blocked = this.blocked
    if (blocked.length === 0 || !this.blockedDirty) return
    // Looked at again when something changed, and at most every grace /
    // RECHECK of active time when many wait (a source gone for good keeps
    // its beaten values, and so the tombstones that beat them).
    if (blocked.length > 64 && this.active - this.blockedAt < this.grace / RECHECK) return
    this.blockedAt = this.active
    this.blockedDirty = false
    this.blocked = blocked.filter((e) => this.host.history.isCurrent(e.u) && !this.tryCollect(e.u))
  }

  // Collect `u` if it is still current and may go; true when it is gone.
  private tryCollect(u: Update): boolean {
    const history = this.host.history
    if (!history.isCurrent(u)) return true
    const log = history.sources.get(u.source_id) as SourceLog
    // A source's newest mapping stays: every max a digest names is then a
    // version some node can send.
    if (u.version >= log.max) return false
    if (u.deleted === true && this.beatsLive(u)) return false
    this.host.forget(u)
    this.raiseGc(u.source_id, u.version)
    if (u.deleted === true) {
      if (u.version > this.horizon) this.horizon = u.version
      if (!history.get(u.key).some((m) => m.deleted === true)) this.tombKeys.delete(u.key)
    }
    this.recordText = null
    return true
  }

  // Whether tombstone `t` beats a live value of its key held here.
  private beatsLive(t: Update): boolean {
    for (const m of this.host.history.get(t.key)) if (!isMarker(m) && this.host.beats(t, m)) return true
    return false
  }

  private raiseGc(id: string, version: number): void {
    if ((this.gc.get(id) ?? -Infinity) >= version) return
    this.gc.set(id, version)
    this.recordText = null
  }

  // ---- the view ------------------------------------------------------------

  /** `sources(key)`: the key's values no held tombstone beats (rule 3). */
  visible(key: string, mappings: Update[]): Update[] {
    const tombs = this.tombKeys.has(key) ? mappings.filter((m) => m.deleted === true) : []
    if (tombs.length === 0) {
      if (this.tombKeys.has(key) && this.host.history.get(key).every((m) => m.deleted !== true)) this.tombKeys.delete(key)
      return mappings.some(isMarker) ? mappings.filter((m) => !isMarker(m)) : mappings
    }
    return mappings.filter((m) => !isMarker(m) && !tombs.some((t) => this.host.beats(t, m)))
  }

  // ---- taking updates from a peer (rules 5 and 6) ---------------------------

  /**
   * Whether an update of `source` at `version` from `stream` must be left
   * alone (neither taken nor moving the source's max): the source is being
   * refetched and this peer's copy of it is not known to be fresh.
   */
  ignores(stream: object, source: string): boolean {
    if (this.refetches.size === 0) return false
    const r = this.refetches.get(source)
    if (r === undefined) return false
    const named = this.links.get(stream)?.named?.get(source)
    return named === undefined || named < r.gc
  }

  /**
   * Rule 5: whether `u`, a value from a peer new to this node (its source's
   * mapping of the key here is older or absent), is refused as late: at or
   * below the horizon, it may be what a collected delete beat, whatever
   * else it loses to (a newer write may yet be withdrawn). Refused values
   * are reported once as 'invalid' and told to the sender.
   */
  refuses(stream: StreamLike, u: Update): boolean {
    // At the horizon's own version too: a tombstone beats a value of its version from a lower source id.
    if (u.version > this.horizon || isMarker(u) || u.source_id === this.host.id) return false
    const l = this.link(stream)
    const refusing = (l.refusing ??= new Map())
    const was = refusing.get(u.source_id)
    if (was === undefined || u.version < was) refusing.set(u.source_id, u.version)
    ;(l.late ??= []).push([u.source_id, u.version])
    const tag = `${u.source_id}\u0000${u.version}`
    if (!this.reported.has(tag)) {
      if (this.reported.size >= 4096) this.reported.clear()
      this.reported.add(tag)
      stream.emit(
        'invalid',
        u,
        `late: version ${u.version} of ${u.source_id} is older than deletes this node collected (horizon ${this.horizon}); its writer is told (see docs/deletes.md)`,
        'late',
      )
    }
    return true
  }

  /** Whether an update of `source` at `version` from `stream` may move the source's max (no refused one below it in this answer). */
  mayAdvance(stream: object, source: string, version: number): boolean {
    const refusing = this.links.get(stream)?.refusing
    if (refusing === undefined || refusing === null) return true
    const v = refusing.get(source)
    return v === undefined || version < v
  }

  /** Leave the rest of `source` in this answer below its max (a throwing resolve or store left a gap). */
  holdBack(stream: StreamLike, source: string, version: number): void {
    const refusing = (this.link(stream).refusing ??= new Map())
    const was = refusing.get(source)
    if (was === undefined || version < was) refusing.set(source, version)
  }

  /**
   * A mapping of a refetched source was sent again (`previous` is what we
   * held of its key, at the same or a newer version, or was replaced by the
   * update just taken): it is confirmed. Then, once our max of the source
   * reached the notice's, what is still unconfirmed is dropped.
   */
  confirmed(source: string, previous: Update | undefined): void {
    const r = this.refetches.get(source)
    if (r === undefined) return
    if (previous !== undefined) r.unconfirmed.delete(previous)
    const log = this.host.history.sources.get(source)
    if (log !== undefined && log.max >= r.target) this.refetched(source, r, log.max)
  }

  // Done: we hold a fresh copy of the source up to `upTo`. What is still
  // unconfirmed at or below it was replaced where the copy came from (by a
  // collected marker, or a newer mapping we now hold); above it, it is
  // newer than that copy and stays.
  private refetched(source: string, r: Refetch, upTo: number): void {
    this.refetches.delete(source)
    this.recordText = null
    if ((this.refetchedFor.get(source) ?? -Infinity) < r.gc) this.refetchedFor.set(source, r.gc)
    const history = this.host.history
    let dropped = 0
    for (const u of r.unconfirmed) {
      if (u.version > upTo || !history.isCurrent(u)) continue
      this.host.forget(u)
      dropped++
    }
    this.host.emit('refetched', source, dropped)
  }

  /** Whether a refetch is under way (answers then leave out what is unconfirmed). */
  get refetching(): boolean {
    return this.refetches.size > 0
  }

  /** `out` without mappings of refetched sources that no fresh peer has sent again (they may be dead). */
  sendable(out: Update[]): Update[] {
    if (this.refetches.size === 0) return out
    return out.filter((u) => this.refetches.get(u.source_id)?.unconfirmed.has(u) !== true)
  }

  // ---- digest ends -----------------------------------------------------------

  /**
   * A peer's digest end (read into `done`), with the digest `heard` before
   * it over `range`: active time moves; its nonce, late reports and stale
   * notices are taken; the peer's copy of each source we collected markers
   * of is judged (rule 6), and notices owed for our next digest end to it.
   */
  onDone(
    stream: StreamLike,
    done: DoneFields,
    heard: ReadonlyMap<string, number>,
    range: IdRange,
    judge: boolean,
  ): void {
    this.heard()
    const l = this.link(stream)
    l.refusing = null
    if (done.nonce !== undefined) l.peerNonce = done.nonce
    if (done.late !== undefined) this.lateReports(done.late)
    if (done.stale !== undefined) {
      if (this.staleSigned(l, done)) this.notices(stream, done.stale)
      else stream.emit('invalid', { digest: true, done: true, stale: Object.fromEntries(done.stale) }, 'a stale notice not signed by a member with a key: ignored', 'stale_unsigned')
    }
    if (this.refetches.size > 0) {
      const named = (l.named ??= new Map())
      for (const [id, r] of this.refetches) {
        const v = heard.get(id)
        if (v !== undefined) {
          named.set(id, v)
          // A fresh peer: once we hold the source as far as it does, we are done.
          if (v >= r.gc && v < r.target) r.target = v
        } else if (covers(range, id)) named.delete(id)
      }
    }
    if (judge && this.gc.size > 0) this.judge(l, heard, range)
  }

  // Rule 6: a peer naming a source below our gc of it holds a stale copy.
  // (The notice names what the peer named: our answer may carry its max
  // past the gc before the notice reaches it.)
  private judge(l: Link, heard: ReadonlyMap<string, number>, range: IdRange): void {
    const sources = this.host.history.sources
    for (const [id, gc] of this.gc) {
      const named = heard.get(id)
      if (named === undefined || named >= gc) continue
      if (range.after !== undefined || range.through !== undefined) if (!covers(range, id)) continue
      // (Refetching it ourselves, our max may be below the gc: the peer's
      // refetch then ends at what a fresh peer names.)
      const max = Math.max(sources.get(id)?.max ?? -Infinity, gc)
      ;(l.stale ??= new Map()).set(id, [gc, max, named])
    }
  }

  // Under signatures, a stale notice is taken only when a member signed it
  // for our latest nonce on this stream (and by this stream's peer, when
  // the transport authenticated it).
  private staleSigned(l: Link, done: DoneFields): boolean {
    const security = this.host.security
    if (security === undefined) return true
    const { staleBy: by, staleSignature: signature, staleNonce: nonce, stale } = done
    if (by === undefined || signature === undefined || nonce === undefined || stale === undefined) return false
    if (l.peer !== undefined && by !== l.peer) return false
    if (nonce !== l.nonces[0] && nonce !== l.nonces[1]) return false
    try {
      return security.verify({ ...staleUpdate(by, stale, nonce), signature }) === true
    } catch {
      return false
    }
  }

  // Rule 6 at the receiving end: refetch each source our copy of was
  // behind when we named it (our max may have passed the gc since, by an
  // answer that could not bring what was collected), unless a refetch for
  // that gc or a later one already ran.
  private notices(stream: StreamLike, stale: ReadonlyMap<string, StaleNotice>): void {
    const history = this.host.history
    for (const [id, [gc, target]] of stale) {
      // Knowing this gc already, we collected up to it or refetched for it.
      const knew = this.gc.get(id) ?? -Infinity
      this.raiseGc(id, gc)
      if (id === this.host.id) {
        // Our own copy behind our own collected markers. After a restart from
        // nothing we hold only what peers give back, which is fresh; restored
        // from an older state, we cannot tell which of our writes we deleted
        // since, and nothing a peer says removes a write of ours: the
        // operator must choose.
        if (this.restoredOwn) {
          stream.emit(
            'invalid',
            { source_id: id, version: gc },
            `restored-stale: peers collected deletes of this node up to version ${gc}, beyond the state it was restored from; restart it from its newest state, or from nothing (peers hold its writes)`,
            'restored_stale',
          )
        }
        continue
      }
      if ((this.refetchedFor.get(id) ?? -Infinity) >= gc || knew >= gc) continue
      const r = this.refetches.get(id)
      if (r !== undefined && r.gc >= gc) {
        if (target > r.target) r.target = target
        continue
      }
      this.startRefetch(id, gc, target)
      // Our copy was stale, and we may have sent it on, carrying a peer's
      // max past the gc too: every peer hears of it (one that knew the gc
      // has nothing to do; one that did not refetches, and tells its own).
      for (const s of this.host.streams()) {
        if (s === stream) continue
        const l = this.link(s)
        ;(l.stale ??= new Map()).set(id, [gc, Math.max(target, gc), 0])
      }
    }
  }

  // Everything held of the source waits to be sent again by a fresh peer.
  private startRefetch(id: string, gc: number, target: number): void {
    const history = this.host.history
    const log = history.source(id)
    const unconfirmed = new Set<Update>()
    for (const u of history.news(id, -Infinity)) unconfirmed.add(u)
    this.refetches.set(id, { gc, target, unconfirmed })
    log.max = -Infinity
    this.recordText = null
    this.host.emit('refetch', id, gc, unconfirmed.size)
  }

  // Late reports: our own values go to 'late'; others' are passed on
  // towards their writers while we hold them.
  private lateReports(late: readonly (readonly [string, number])[]): void {
    const history = this.host.history
    const fresh: Update[] = []
    for (const pair of late) {
      const [id, version] = pair
      const u = history.at(id, version)
      if (u === undefined || isMarker(u) || !history.isCurrent(u)) continue
      if (id === this.host.id) {
        if (!this.lateOwn.has(version)) {
          this.lateOwn.set(version, u)
          fresh.push(u)
        }
      } else {
        const tag = `${id}\u0000${version}`
        if (this.forward.has(tag)) continue
        if (this.forward.size >= MAX_FORWARD) this.forward.delete(this.forward.keys().next().value as string)
        this.forward.set(tag, pair)
      }
    }
    if (fresh.length > 0) this.host.emit('late', fresh)
  }

  /** Whether our digest end to `stream` needs none of this module's fields. */
  quiet(stream: object): boolean {
    if (this.horizon !== -Infinity || this.forward.size > 0) return false
    const l = this.links.get(stream)
    return l === undefined || (l.stale === null && l.late === null)
  }

  /**
   * Add this module's fields to our digest end to `stream` (see
   * DigestDone), within EXTRA_BYTES: notices that do not fit wait.
   */
  extras(stream: StreamLike, done: { -readonly [K in keyof DigestDone]: DigestDone[K] }): void {
    const l = this.link(stream)
    // Fixed fields: nonce (16 hex) and horizon, about 60 bytes; a stale
    // signature (under 100) with its signer and nonce, 260 at most.
    let room = EXTRA_BYTES - 400
    if (this.host.security !== undefined) {
      const nonce = freshNonce()
      l.nonces[1] = l.nonces[0]
      l.nonces[0] = nonce
      done.nonce = nonce
    }
    if (this.horizon !== -Infinity) done.horizon = this.horizon
    const late: [string, number][] = []
    const fits = (pair: readonly [string, number]): boolean => {
      const bytes = JSON.stringify(pair).length + 1
      if (late.length >= MAX_NOTICES || bytes > room) return false
      room -= bytes
      return true
    }
    if (l.late !== null) {
      const rest: [string, number][] = []
      for (const p of l.late) if (fits(p)) late.push(p)
      else rest.push(p)
      l.late = rest.length === 0 ? null : rest
    }
    if (this.forward.size > 0) {
      const history = this.host.history
      for (const [tag, pair] of this.forward) {
        const u = history.at(pair[0], pair[1])
        // Settled (replaced) by its writer: nothing left to tell.
        if (u === undefined || !history.isCurrent(u)) this.forward.delete(tag)
        else if (fits(pair)) late.push([pair[0], pair[1]])
      }
    }
    if (late.length > 0) done.late = late
    const stale = l.stale
    if (stale === null) return
    const notices = new Map<string, StaleNotice>()
    for (const [id, v] of stale) {
      const bytes = JSON.stringify([id, v]).length + 1
      if (notices.size >= MAX_NOTICES || bytes > room) break
      room -= bytes
      notices.set(id, v)
      stale.delete(id)
    }
    if (stale.size === 0) l.stale = null
    if (notices.size === 0) return
    done.stale = Object.fromEntries(notices)
    const security = this.host.security
    if (security === undefined) return
    if (l.peerNonce === undefined) {
      delete done.stale
      return
    }
    try {
      done.stale_signature = security.sign(staleUpdate(this.host.id, notices, l.peerNonce))
      done.stale_by = this.host.id
      done.stale_nonce = l.peerNonce
    } catch {
      // A node that only verifies cannot sign: its notices would be refused.
      delete done.stale
    }
  }

  // ---- late writes of our own (rule 7) -----------------------------------------

  /** Our own values peers refused as late, not yet settled. */
  get late(): Update[] {
    const out: Update[] = []
    for (const [v, u] of this.lateOwn) {
      if (this.host.history.isCurrent(u)) out.push(u)
      else this.lateOwn.delete(v)
    }
    return out
  }

  /** Settle our late values: write each again (`'keep'`) or withdraw each (`'drop'`). Returns how many. */
  settle(choice: 'keep' | 'drop'): number {
    const late = this.late
    this.lateOwn.clear()
    for (const u of late) {
      if (choice === 'keep') this.host.rewrite(u.key, u.value)
      else this.host.withdraw(u.key)
    }
    return late.length
  }

  // ---- persistence ---------------------------------------------------------------

  /** What a store keeps besides the mappings: gc per source and the horizon, as JSON text (null: nothing yet). */
  record(): string | null {
    if (this.gc.size === 0 && this.horizon === -Infinity && this.refetches.size === 0) return null
    if (this.recordText === null) this.recordText = JSON.stringify(this.snapshotFields())
    return this.recordText
  }

  /** The snapshot's `collected` and `horizon`. */
  snapshotFields(): { collected: Record<string, number>; horizon?: number; refetching?: Record<string, [number, number]> } {
    const collected: Record<string, number> = {}
    for (const [id, v] of this.gc) collected[id] = v
    const out: { collected: Record<string, number>; horizon?: number; refetching?: Record<string, [number, number]> } = { collected }
    if (this.horizon !== -Infinity) out.horizon = this.horizon
    if (this.refetches.size > 0) {
      const refetching: Record<string, [number, number]> = {}
      for (const [id, r] of this.refetches) refetching[id] = [r.gc, r.target]
      out.refetching = refetching
    }
    return out
  }

  /** How many markers wait for collection (held, not yet collected), for stats and tests. */
  get pending(): number {
    let n = this.blocked.length
    for (let i = this.head; i < this.queue.length; i++) if (this.host.history.isCurrent(this.queue[i].u)) n++
    return n
  }

  /** The gc of `source` here (-Infinity: none). */
  gcOf(source: string): number {
    return this.gc.get(source) ?? -Infinity
  }
}

/** The fields of a peer's digest end this module reads (see shape.ts). */
export interface DoneFields {
  readonly nonce: string | undefined
  readonly late: readonly (readonly [string, number])[] | undefined
  readonly stale: ReadonlyMap<string, StaleNotice> | undefined
  readonly staleBy: string | undefined
  readonly staleSignature: string | undefined
  readonly staleNonce: string | undefined
}

// 64 random bits, in hex: a stale notice to a peer signs its latest.
function freshNonce(): string {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2))
  return words[0].toString(16).padStart(8, '0') + words[1].toString(16).padStart(8, '0')
}

