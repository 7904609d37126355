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
import { reportInvalid } from './codes'
import type { History, SourceLog } from './history'
import { covers, type IdRange } from './reconcile'
import { MAX_NOTICES, noticeUpdate } from './shape'
import type { DigestDone, LateReport, Security, Snapshot, StaleNotice, Update } from './types'

/** What the delete logic needs of its node. */
export interface DeletesHost {
  readonly id: string
  readonly history: History
  readonly security: Security | undefined
  /** `resolve` asked of the two alone: does `a` replace `b`? */
  beats(a: Update, b: Update): boolean
  /** Withdraw our own value of `key`, of version `of` (R6): a local write of a withdrawal. */
  withdraw(key: string, of: number): void
  /**
   * Whether our own value `m` may be withdrawn now: one of a past
   * incarnation's waits until our past is settled (see Incarnation.mayWithdraw).
   */
  mayWithdraw(m: Update): boolean
  /** Whether our own value `m` is of a past incarnation's (this life started without its log and did not write it). */
  ownPast(m: Update): boolean
  /** Write `u` (a value or a marker) again, at a new version: a local write. */
  rewrite(u: Update): void
  /** Forget mapping `m` entirely; the key's entry is what `resolve` makes of the rest. */
  forget(m: Update): void
  /** The node's wall clock in µs. */
  wall(): number
  /** Whether a version from a peer is believable (see Clock.accepts). */
  accepts(version: number): boolean
  /**
   * Whether the node cannot vouch for its copy of its own id: started
   * without state, or restored, and still fetching its past from peers.
   */
  selfUnsure(): boolean
  /** Report an event of the node (`'late'`, `'refetch'`, `'refetched'`, `'refetchAbandoned'`). */
  emit(event: string, ...args: unknown[]): boolean
  /** The node's open streams. */
  streams(): Iterable<StreamLike>
}

/** What this module needs of a stream: its authenticated peer, if any, and its events. */
export interface StreamLike {
  readonly peer: string | undefined
  /** Our questions on this stream not answered yet (their answers come in order). */
  readonly questions: number
  /** What our latest digest to the peer named our own id at (-Infinity: not at all). */
  readonly ownNamed: number
  emit(event: string, ...args: unknown[]): boolean
}

/** What one stream knows for deletes; kept per stream, out of the stream. */
class Link {
  /** Stale notices owed to the peer: source -> [gc, named]. */
  stale: Map<string, StaleNotice> | null = null
  /** Notices told to the peer: source -> [gc, active time]. */
  told: Map<string, [number, number]> | null = null
  /** Values of the peer's answer we refused as late, to tell it: "source\u0000version" -> the pair. */
  late: Map<string, LateReport> | null = null
  /** In the answer being read: the lowest version refused per source (max stays below it). */
  refusing: Map<string, number> | null = null
  /**
   * Refetches this peer serves as a fresh copy: per source, the refetch
   * and the highest version of it the peer has sent us since (our digest
   * to it names the source there, so it sends the source whole).
   */
  pass: Map<string, { r: Refetch; at: number; target: number; skip: number }> | null = null
  /** Under signatures: our last two nonces sent to the peer, and its latest. */
  nonces: [string | undefined, string | undefined] = [undefined, undefined]
  peerNonce: string | undefined = undefined
}

/** A source being refetched: its copy here may hold what markers a peer collected replaced. */
interface Refetch {
  /** The peer's gc of the source: what we hold of it below this is suspect. */
  gc: number
  /** Suspects: mappings held below `gc` that no fresh copy has sent again (kept out of answers). */
  suspects: Set<Update>
  /**
   * The highest version of the source held below `gc` during the refetch:
   * what our digest names it at to peers that do not serve it (a version
   * the source issued: one it never issued, such as gc - 1, would look to
   * the source like a past incarnation of its own, attack round 3, E).
   */
  below: number
  /** Active time the refetch began or last moved: a grace without either abandons it. */
  since: number
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

/** Most late reports of other sources passed on towards their writers, and most owed to one peer. */
const MAX_FORWARD = 1024
/** Blocked markers are looked at again at most this often (a fraction of the grace), unless few. */
const RECHECK = 8

/** Whether withdrawal `w` names a version below `u`'s, itself below `w` (R6: holders of `u` refuse `w`). */
function unnamed(u: Update, w: Update): boolean {
  return typeof w.value === 'number' && w.value < u.version && u.version < w.version
}

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
  // Values of our past we withdrew once it settled (R4): key -> [the
  // value's version, the withdrawal's]. A newer write of our past that a
  // peer shows us later was written after the value R4 judged: the
  // withdrawal decided without it, so it is ours to settle (rule 7).
  private readonly pastWithdrawn = new Map<string, [number, number]>()
  // Late reports of other sources to pass on: "source\u0000version" -> the pair.
  private readonly forward = new Map<string, LateReport>()
  // Under config.security without a private key: notices cannot be signed.
  private cannotSign = false
  // Links whose answer being read holds refusals (a link dropped mid-answer
  // keeps its count: mayAdvance then only looks it up).
  private refusals = 0
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
      l = new Link()
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
  /**
   * True when `took` has nothing to do for a value (no marker): no blocked
   * marker to look at again, no key that may hold a tombstone. (Per update:
   * the caller asks this first.)
   */
  get idle(): boolean {
    return this.blocked.length === 0 && this.tombKeys.size === 0
  }

  took(u: Update, own: boolean): void {
    if (this.blocked.length > 0) this.blockedDirty = true
    if (u.deleted === true) {
      this.queue.push({ u, at: this.active })
      this.tombKeys.add(u.key)
      if (!own) {
        const mine = this.host.history.mapping(this.host.id, u.key)
        if (mine !== undefined && !isMarker(mine) && this.host.beats(u, mine) && this.host.mayWithdraw(mine)) this.withdrawOwn(mine)
      }
    } else if (u.withdrawn === true) {
      this.queue.push({ u, at: this.active })
    } else if ((own || u.source_id === this.host.id) && this.tombKeys.has(u.key) && this.host.mayWithdraw(u)) {
      // A value of ours a held tombstone beats: a new write (only a policy
      // other than last-writer-wins allows it), or one of our past come back
      // after a restart from nothing (once that past is settled).
      for (const m of this.host.history.get(u.key)) {
        if (m.deleted === true && this.host.beats(m, u)) {
          this.withdrawOwn(u)
          break
        }
      }
    }
  }

  // Rule 2: withdraw `mine`, our value a held tombstone beats. One of our
  // past is remembered (R4): a newer write of our past shown later is late.
  private withdrawOwn(mine: Update): void {
    const history = this.host.history
    this.host.withdraw(mine.key, mine.version)
    const w = history.mapping(this.host.id, mine.key)
    if (w !== undefined && w.withdrawn === true && this.host.ownPast(mine)) {
      this.pastWithdrawn.set(mine.key, [mine.version, w.version])
      this.recordText = null
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
    const refetching: unknown = snapshot?.refetching
    if (refetching !== null && typeof refetching === 'object') {
      for (const id of Object.keys(refetching)) {
        const v: unknown = (refetching as Record<string, unknown>)[id]
        // ([gc, target] from before the target went.)
        const gc = Array.isArray(v) ? v[0] : v
        if (typeof gc === 'number' && Number.isSafeInteger(gc)) this.startRefetch(id, gc)
      }
    }
    const pw: unknown = snapshot?.pastWithdrawn
    if (pw !== null && typeof pw === 'object') {
      for (const key of Object.keys(pw)) {
        const v: unknown = (pw as Record<string, unknown>)[key]
        if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) {
          this.pastWithdrawn.set(key, [v[0] as number, v[1] as number])
        }
      }
    }
    // A crash between taking a tombstone and writing the withdrawal it
    // called for leaves our value beaten: withdraw it now.
    this.withdrawBeaten()
  }

  /**
   * Rule 2 over every key: withdraw each value of ours a held tombstone
   * beats (at a restart, and once our past is settled: withdrawals of our
   * past values wait for that).
   */
  withdrawBeaten(): void {
    const history = this.host.history
    for (const key of [...this.tombKeys]) {
      const mine = history.mapping(this.host.id, key)
      if (mine === undefined || isMarker(mine) || !this.host.mayWithdraw(mine)) continue
      for (const m of history.get(key)) {
        if (m.deleted === true && this.host.beats(m, mine)) {
          this.withdrawOwn(mine)
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
    if (this.refetches.size > 0) this.abandon()
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

  // ---- taking updates from a peer (rules 5 and 6)

  /**
   * Rule 5: whether `u`, a value from a peer new to this node (its source's
   * mapping of the key here is older or absent), is refused as late: at or
   * below the horizon, it may be what a collected delete beat, whatever
   * else it loses to (a newer write may yet be withdrawn). Refused values
   * are reported once as 'invalid' and told to the sender.
   */
  refuses(stream: StreamLike, u: Update, past: boolean): boolean {
    if (isMarker(u)) return false
    if (u.source_id === this.host.id) return past && this.refusesOwn(stream, u)
    // At the horizon's own version too: a tombstone beats a value of its version from a lower source id.
    if (u.version > this.horizon) return false
    const l = this.link(stream)
    const refusing = this.refusing(l)
    const was = refusing.get(u.source_id)
    if (was === undefined || u.version < was) refusing.set(u.source_id, u.version)
    // Owed once per value, however often the peer offers it; bounded.
    const tag = `${u.source_id}\u0000${u.version}`
    const late = (l.late ??= new Map())
    if (!late.has(tag) && late.size < MAX_FORWARD) late.set(tag, [u.source_id, u.version, u.key])
    if (!this.reported.has(tag)) {
      if (this.reported.size >= 4096) this.reported.clear()
      this.reported.add(tag)
      reportInvalid(
        stream,
        u,
        `late: version ${u.version} of ${u.source_id} is older than deletes this node collected (horizon ${this.horizon}); its writer is told (see docs/deletes.md)`,
        'late',
      )
    }
    return true
  }

  /**
   * R6: withdrawal `w` names a value of its source older than `held`, the
   * source's value of the key here: its source decided it without `held`.
   * Refused like a late value (the source's max stays below it, so it is
   * offered again) and reported once; `held` stays until its source, shown
   * it as its past (R1, R4), keeps or drops it (rule 7).
   */
  refusesWithdrawal(stream: StreamLike, w: Update, held: Update): void {
    this.holdBack(stream, w.source_id, w.version)
    const tag = `${w.source_id}\u0000${w.version}`
    if (this.reported.has(tag)) return
    if (this.reported.size >= 4096) this.reported.clear()
    this.reported.add(tag)
    reportInvalid(
      stream,
      w,
      `late: the withdrawal ${w.version} of ${w.source_id} names version ${String(w.value)} of ${JSON.stringify(w.key)}, older than its value ${held.version} held here: it is not taken until its source settles that value (see docs/deletes.md, R6)`,
      'late',
    )
  }

  // Our own past come back from a peer after a restart that lost our log
  // (a bare store object keeps only entries): at or below a marker of ours
  // we collected, or the horizon, it may be what one of them replaced, and
  // nothing here can tell. It is refused like a late value, and ours to
  // settle (rule 7).
  private refusesOwn(stream: StreamLike, u: Update): boolean {
    if (u.version > this.horizon && u.version > this.gcOf(this.host.id)) return false
    if (!this.lateOwn.has(u.version)) {
      this.lateOwn.set(u.version, u)
      reportInvalid(
        stream,
        u,
        `late: version ${u.version} of this node's own past is older than deletes it collected; it is not taken back until settled (see docs/deletes.md, rule 7)`,
        'late',
      )
      this.host.emit('late', [u])
    }
    return true
  }

  // The answer being read from `l` holds refused values: their sources' maxes stay below them.
  private refusing(l: Link): Map<string, number> {
    if (l.refusing === null) {
      l.refusing = new Map()
      this.refusals++
    }
    return l.refusing
  }

  /** Whether an update of `source` at `version` from `stream` may move the source's max (no refused one below it in this answer). */
  mayAdvance(stream: object, source: string, version: number): boolean {
    // (Per update: most of the time no answer is being refused at all.)
    if (this.refusals === 0) return true
    const refusing = this.links.get(stream)?.refusing
    if (refusing === undefined || refusing === null) return true
    const v = refusing.get(source)
    return v === undefined || version < v
  }

  /** Leave the rest of `source` in this answer below its max (a throwing resolve or store left a gap). */
  holdBack(stream: StreamLike, source: string, version: number): void {
    const refusing = this.refusing(this.link(stream))
    const was = refusing.get(source)
    if (was === undefined || version < was) refusing.set(source, version)
  }

  /**
   * An update of `source` at `version` came from `stream`; `held` is our
   * mapping at that version now (the update, if `taken`, or the same one
   * held before), if any. While `source` is refetched: from a fresh peer
   * serving it, it confirms what we hold; from any other, a mapping taken
   * below the gc is suspect too.
   */
  received(stream: object, source: string, version: number, held: Update | undefined, taken: boolean): void {
    if (this.refetches.size === 0) return
    const r = this.refetches.get(source)
    if (r === undefined) return
    const l = this.links.get(stream)
    const p = l?.pass?.get(source)
    if (p !== undefined && p.r === r && p.skip === 0) {
      if (version > p.at) p.at = version
      if (held !== undefined) r.suspects.delete(held)
      r.since = this.active
      // Sent as far as its digest named it: done, without waiting for its
      // next digest on this stream (which may never come; attack found it).
      if (p.at >= p.target) {
        l?.pass?.delete(source)
        this.refetched(source, r)
      }
    } else if (held !== undefined && taken && version < r.gc) {
      r.suspects.add(held)
    }
    if (held !== undefined && version < r.gc && version > r.below) r.below = version
  }

  /**
   * What our digest to `stream` names for `source` while we refetch it:
   * from where the fresh peer serving it has sent it so far (so that it
   * sends the source whole), and to every other peer below the gc (our copy
   * proves nothing fresh). Undefined when `source` is not refetched.
   */
  naming(stream: object, source: string, max: number): number | undefined {
    if (this.refetches.size === 0) return undefined
    const r = this.refetches.get(source)
    if (r === undefined) return undefined
    const p = this.links.get(stream)?.pass?.get(source)
    if (p !== undefined && p.r === r) return p.at
    return Math.min(max, r.below)
  }

  /** Whether a refetch is under way (our answers then leave suspects out). */
  get refetching(): boolean {
    return this.refetches.size > 0
  }

  /**
   * `out` (each source in version order) without the suspects of refetched
   * sources (they may be dead), nor anything of such a source after one:
   * a peer's max of it must not pass what we left out (I1).
   */
  sendable(out: Update[]): Update[] {
    if (this.refetches.size === 0) return out
    const cut = new Set<string>()
    const kept: Update[] = []
    for (const u of out) {
      const r = this.refetches.get(u.source_id)
      if (r !== undefined && (cut.has(u.source_id) || r.suspects.has(u))) {
        cut.add(u.source_id)
        continue
      }
      kept.push(u)
    }
    return kept
  }

  // ---- digest ends -----------------------------------------------------------

  /**
   * A peer's digest end (read into `done`), with the digest `heard` before
   * it over `range`: active time moves; its nonce, late reports and stale
   * notices are taken; refetches find their fresh copies here and end; the
   * peer's copy of each source we collected markers of is judged (rule 6),
   * and notices owed for our next digest end to it. `judge`: the stream
   * has no filter, so its digest names whole copies.
   */
  onDone(stream: StreamLike, done: DoneFields, heard: ReadonlyMap<string, number>, range: IdRange, judge: boolean): void {
    this.heard()
    const l = this.link(stream)
    if (l.refusing !== null) {
      l.refusing = null
      this.refusals--
    }
    if (done.nonce !== undefined) l.peerNonce = done.nonce
    if (done.stale !== undefined || done.late !== undefined) {
      if (!this.signed(stream, l, done)) {
        const notice: Record<string, unknown> = { digest: true, done: true }
        if (done.stale !== undefined) notice.stale = Object.fromEntries(done.stale)
        if (done.late !== undefined) notice.late = done.late
        reportInvalid(stream, notice, 'stale notices and late reports not signed by a member with a key: ignored', 'notice_unsigned')
      } else {
        if (done.late !== undefined) this.lateReports(done.late)
        if (done.stale !== undefined) this.notices(stream, done.stale, heard, judge ? range : null)
      }
    }
    if (this.refetches.size > 0) this.serve(stream, l, done, heard, judge)
    if (judge && this.gc.size > 0) this.judge(l, heard, range)
  }

  // Refetches: a peer whose digest names the source at or above the gc,
  // that vouches for its copies (neither fetching its own past nor
  // withholding suspects of its own) and, under signatures, whose stream
  // the transport authenticated, serves it: our digest to it names the
  // source from scratch, and once it has sent the source as far as it
  // names it, what it did not send again of our suspects goes.
  private serve(stream: StreamLike, l: Link, done: DoneFields, heard: ReadonlyMap<string, number>, judge: boolean): void {
    const vouches = judge && !done.recovering && !done.withheld && (this.host.security === undefined || stream.peer !== undefined)
    for (const [id, r] of this.refetches) {
      const p = l.pass?.get(id)
      const serving = p !== undefined && p.r === r
      if (!vouches) {
        if (serving) l.pass?.delete(id)
        continue
      }
      const v = heard.get(id)
      if (v === undefined || v < r.gc) continue
      if (!serving) {
        // Answers to questions we asked before (naming the source below
        // the gc, not from scratch) are still to come: they serve nothing.
        const skip = stream.questions - (done.reply ? 1 : 0)
        ;(l.pass ??= new Map()).set(id, { r, at: -Infinity, target: v, skip })
        r.since = this.active
      } else if (p.skip > 0) {
        if (done.reply) p.skip--
      } else if (p.at < v) {
        p.target = v
      } else {
        l.pass?.delete(id)
        this.refetched(id, r)
      }
    }
  }

  // Done: a fresh copy was sent whole. Our suspects it did not send again
  // were replaced where it comes from, by markers since collected: they go
  // as a collection would take them (a tombstone beating a live value here
  // waits for rule 4; a tombstone gone raises the horizon).
  private refetched(id: string, r: Refetch): void {
    this.refetches.delete(id)
    this.recordText = null
    if ((this.refetchedFor.get(id) ?? -Infinity) < r.gc) this.refetchedFor.set(id, r.gc)
    const history = this.host.history
    let dropped = 0
    for (const u of r.suspects) {
      if (!history.isCurrent(u)) continue
      if (u.deleted === true && this.beatsLive(u)) continue
      this.host.forget(u)
      dropped++
      if (u.deleted === true) {
        if (u.version > this.horizon) this.horizon = u.version
        if (!history.get(u.key).some((m) => m.deleted === true)) this.tombKeys.delete(u.key)
      }
    }
    this.raiseGc(id, r.gc)
    this.host.emit('refetched', id, dropped)
  }

  // A refetch no fresh copy served for a grace of active time: none may be
  // left (the collector restarted from nothing, or is gone). Its suspects
  // are kept and sent again, and the node says so; a collector that meets
  // it later tells it again.
  private abandon(): void {
    for (const [id, r] of this.refetches) {
      if (this.active - r.since <= this.grace) continue
      this.refetches.delete(id)
      this.recordText = null
      this.host.emit('refetchAbandoned', id, r.gc, r.suspects.size)
    }
  }

  // Rule 6: a peer naming a source below our gc of it holds a stale copy.
  // (The notice names what the peer named: our answer may carry its max
  // past the gc before the notice reaches it.)
  // A peer naming none of the source is told too: what we send it of the
  // source lacks the collected markers, and it must know the gc to judge
  // the copies it passes that on to. Each peer is told once per gc (again
  // after a grace, if it still names the source below it).
  private judge(l: Link, heard: ReadonlyMap<string, number>, range: IdRange): void {
    const parted = range.after !== undefined || range.through !== undefined
    for (const [id, gc] of this.gc) {
      const named = heard.get(id)
      if (named !== undefined && named >= gc) continue
      if (parted && !covers(range, id)) continue
      const told = l.told?.get(id)
      if (told !== undefined && told[0] >= gc && this.active - told[1] <= this.grace) continue
      ;(l.told ??= new Map()).set(id, [gc, this.active])
      ;(l.stale ??= new Map()).set(id, [gc, named ?? 0])
    }
  }

  /**
   * The sources this stream's peer is about to be told it holds stale
   * copies of (it named them below our gc): none of them goes to it in the
   * answer that tells it, nor in one that cannot (`answer`: an answer to an
   * answer has no digest end; then not even a source it named none of). Its max of them must not pass the gc before it
   * knows, or a notice lost with the connection leaves the stale copy
   * behind a max nobody questions (attack found it).
   */
  telling(stream: StreamLike, heard: ReadonlyMap<string, number>, answer: boolean): ReadonlySet<string> | null {
    let out: Set<string> | null = null
    // A node that cannot sign notices (under config.security, without a
    // private key) never tells: to it, a peer naming a source below the gc
    // waits for a node that can (attack found a keyless relay passing a
    // stale copy's max past the gc).
    if (this.cannotSign) {
      for (const [id, gc] of this.gc) {
        const named = heard.get(id)
        if (named !== undefined && named < gc) (out ??= new Set()).add(id)
      }
    }
    // A source we refetch goes to no peer naming it below the gc: our copy
    // proves nothing fresh (rule 6), and it would carry the peer's max past
    // the gc with whatever stale copy the peer holds, unquestioned (a peer
    // disbelieves the notice we pass on unless its copy went past the gc).
    for (const [id, r] of this.refetches) {
      if ((heard.get(id) ?? -Infinity) < r.gc) (out ??= new Set()).add(id)
    }
    const stale = this.links.get(stream)?.stale
    if (stale === null || stale === undefined) return out
    // A peer naming none of the source holds no stale copy of it: it is
    // sent the source with the notice, on the same digest end. Not in an
    // answer to its answer, which has no end: it would hold a fresh copy
    // without knowing the gc, and pass it on to a stale copy unquestioned
    // (attack found a node restarted from nothing taking both).
    for (const id of stale.keys()) if (answer || heard.has(id)) (out ??= new Set()).add(id)
    return out
  }

  // Under signatures, stale notices and late reports are taken only when a
  // member signed them for our latest nonce on this stream (and was this
  // stream's peer, when the transport authenticated it).
  private signed(stream: StreamLike, l: Link, done: DoneFields): boolean {
    const security = this.host.security
    if (security === undefined) return true
    const { noticeBy: by, noticeSignature: signature, noticeNonce: nonce } = done
    if (by === undefined || signature === undefined || nonce === undefined) return false
    if (stream.peer !== undefined && by !== stream.peer) return false
    if (nonce !== l.nonces[0] && nonce !== l.nonces[1]) return false
    try {
      return security.verify({ ...noticeUpdate(by, nonce, done.stale, done.late), signature }) === true
    } catch {
      return false
    }
  }

  // Rule 6 at the receiving end. A notice is believed when its gc is a
  // believable version and the notifier's digest named the source at or
  // above it (a collector holds what it collected below its max); one
  // passed on by a peer that refetches is believed only when our copy went
  // past the gc (else a collector tells us itself).
  // `whole`: the range the notifier's digest covered, when it names whole
  // copies (no filter). A source it names at or above the gc there is fresh
  // at the notifier; one it covers and names not at all is its own id,
  // named only as far as we showed it while it asks us for its past (a
  // node with a gc of a source holds that source's newest mapping, rule 4):
  // the source is fresh about itself (attack found a restored node's
  // notices disbelieved by every new peer, whose stale copies then stayed).
  private notices(stream: StreamLike, stale: ReadonlyMap<string, StaleNotice>, heard: ReadonlyMap<string, number>, whole: IdRange | null): void {
    const history = this.host.history
    for (const [id, [gc, ours]] of stale) {
      if (!this.host.accepts(gc)) continue
      const named = heard.get(id)
      // (Not of our own id, nor a notice passed on, which names 0: neither
      // comes from the source itself.)
      const direct = named !== undefined ? named >= gc : id !== this.host.id && ours !== 0 && whole !== null && covers(whole, id)
      const max = history.sources.get(id)?.max ?? -Infinity
      if (id === this.host.id) {
        // Our own copy behind our own collected markers. After a restart from
        // nothing we hold only what peers give back, which is fresh; restored
        // from an older state, we cannot tell which of our writes we deleted
        // since, and nothing a peer says removes a write of ours: the
        // operator must choose.
        if (this.restoredOwn && direct && max < gc) {
          reportInvalid(
            stream,
            { source_id: id, version: gc },
            `restored-stale: peers collected deletes of this node up to version ${gc}, beyond the state it was restored from; restart it from its newest state, or from nothing (peers hold its writes)`,
            'restored_stale',
          )
        }
        continue
      }
      if (!direct && max < gc) continue
      // Knowing this gc already, we collected up to it or refetched for it.
      if ((this.refetchedFor.get(id) ?? -Infinity) >= gc || (this.gc.get(id) ?? -Infinity) >= gc) continue
      const r = this.refetches.get(id)
      if (r !== undefined && r.gc >= gc) continue
      this.startRefetch(id, gc)
      if (!this.refetches.has(id)) continue
      // Our copy was stale, and we may have sent it on, carrying a peer's
      // max past the gc too: every peer hears of it (one that knew the gc
      // has nothing to do; one whose copy is below it hears from a collector).
      for (const s of this.host.streams()) {
        if (s === stream) continue
        ;(this.link(s).stale ??= new Map()).set(id, [gc, 0])
      }
    }
  }

  // What we hold of the source below the gc is suspect until a fresh copy
  // sends it again (a refetch under way for a lower gc widens).
  private startRefetch(id: string, gc: number): void {
    const suspects = new Set<Update>()
    let below = -Infinity
    for (const u of this.host.history.news(id, -Infinity)) {
      if (u.version >= gc) break
      suspects.add(u)
      below = u.version
    }
    const r = this.refetches.get(id)
    if (suspects.size === 0) {
      // Nothing held there: nothing can be stale.
      if (r !== undefined) this.refetches.delete(id)
      if ((this.refetchedFor.get(id) ?? -Infinity) < gc) this.refetchedFor.set(id, gc)
      this.raiseGc(id, gc)
      return
    }
    this.refetches.set(id, { gc, suspects, below, since: this.active })
    this.recordText = null
    this.host.emit('refetch', id, gc, suspects.size)
  }

  // Late reports: our own values go to 'late'; others' are passed on
  // towards their writers while we hold them.
  private lateReports(late: readonly LateReport[]): void {
    const history = this.host.history
    const fresh: Update[] = []
    for (const pair of late) {
      const [id, version] = pair
      const u = lateValue(history, pair)
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
    if (this.horizon !== -Infinity || this.forward.size > 0 || this.refetches.size > 0 || this.unsure()) return false
    const l = this.links.get(stream)
    return l === undefined || (l.stale === null && l.late === null)
  }

  /**
   * Add this module's fields to our digest end to `stream` (see
   * DigestDone), within EXTRA_BYTES: notices that do not fit wait.
   */
  extras(stream: StreamLike, done: { -readonly [K in keyof DigestDone]: DigestDone[K] }): void {
    const l = this.link(stream)
    // Fixed fields: nonce (16 hex), horizon and flags, about 90 bytes; a
    // signature (under 100) with its signer and nonce, 260 at most.
    let room = EXTRA_BYTES - 400
    const security = this.host.security
    if (security !== undefined) {
      const nonce = freshNonce()
      l.nonces[1] = l.nonces[0]
      l.nonces[0] = nonce
      done.nonce = nonce
    }
    if (this.horizon !== -Infinity) done.horizon = this.horizon
    if (this.unsure()) done.recovering = true
    if (this.refetches.size > 0) done.withheld = true
    // Under signatures, notices wait for the peer's nonce (its first digest end).
    if (security !== undefined && l.peerNonce === undefined) return
    const late: LateReport[] = []
    const fits = (pair: LateReport): boolean => {
      const bytes = JSON.stringify(pair).length + 1
      if (late.length >= MAX_NOTICES || bytes > room) return false
      room -= bytes
      return true
    }
    if (l.late !== null) {
      for (const [tag, p] of l.late) {
        if (!fits(p)) break
        late.push(p)
        l.late.delete(tag)
      }
      if (l.late.size === 0) l.late = null
    }
    if (this.forward.size > 0) {
      const history = this.host.history
      for (const [tag, pair] of this.forward) {
        const u = lateValue(history, pair)
        // Settled (replaced) by its writer: nothing left to tell.
        if (u === undefined || !history.isCurrent(u)) this.forward.delete(tag)
        else if (fits(pair)) late.push(pair)
      }
    }
    let notices: Map<string, StaleNotice> | undefined
    const stale = l.stale
    if (stale !== null) {
      notices = new Map()
      for (const [id, v] of stale) {
        // Of our own id while this digest names it below the gc (asking the
        // peer for our past, as far as it showed it): the peer would not
        // believe it, and we would send it our id unquestioned. It waits,
        // and our id with it (see telling), until we name ourselves at the
        // gc (attack found a withdrawn, collected value kept at the peer).
        if (id === this.host.id && stream.ownNamed !== -Infinity && stream.ownNamed < v[0]) continue
        const bytes = JSON.stringify([id, v]).length + 1
        if (notices.size >= MAX_NOTICES || bytes > room) break
        room -= bytes
        notices.set(id, v)
        stale.delete(id)
      }
      if (stale.size === 0) l.stale = null
      if (notices.size === 0) notices = undefined
    }
    const lateOut = late.length > 0 ? late : undefined
    if (notices === undefined && lateOut === undefined) return
    if (security !== undefined) {
      try {
        done.notice_signature = security.sign(noticeUpdate(this.host.id, l.peerNonce as string, notices, lateOut))
        done.notice_by = this.host.id
        done.notice_nonce = l.peerNonce
      } catch {
        // A node that only verifies cannot sign: its notices would be
        // refused. It withholds what they would have said (see telling).
        this.cannotSign = true
        return
      }
    }
    if (notices !== undefined) done.stale = Object.fromEntries(notices)
    if (lateOut !== undefined) done.late = lateOut
  }

  // ---- late writes of our own (rule 7) -----------------------------------------

  /**
   * A write of our past (`u`, a value) shown after we withdrew an older
   * value of our past of the same key (R4; `held` is our mapping of it, the
   * withdrawal if it still stands): the withdrawal was decided without it.
   * It is reported late, once, and ours to settle (rule 7): kept, it is
   * written again; dropped, the withdrawal stands.
   */
  pastAfterWithdrawal(stream: StreamLike, u: Update, held: Update): void {
    if (this.lateOwn.has(u.version)) return
    if (!this.afterWithdrawal(u, held)) {
      if (!unnamed(u, held)) return
      // R6: peers holding `u` refuse our withdrawal, which names an older
      // value. One this life wrote for a value this life wrote (else R4's
      // record) covers `u`, of our past, older than that value: it goes
      // again naming `u`. One of our past may have been decided without
      // `u` (its record went with that life): `u` is late.
      if (!this.host.ownPast(held)) {
        this.host.withdraw(u.key, u.version)
        return
      }
    }
    this.lateOwn.set(u.version, u)
    reportInvalid(
      stream,
      u,
      `late: version ${u.version} of this node's own past is newer than the value of its past it withdrew once its past settled; it is not taken back until settled (see docs/deletes.md, R4 and rule 7)`,
      'late',
    )
    this.host.emit('late', [u])
  }

  /**
   * Our withdrawal `was` went again as `now`, above a past that showed
   * itself (R2): when it withdrew a value of our past (R4), the record
   * follows it, so that a newer write of our past, shown at or below it,
   * is still late (it now hides that write too).
   */
  rewrote(was: Update, now: Update | undefined): void {
    const w = this.pastWithdrawn.get(was.key)
    if (w === undefined || w[1] !== was.version || now === undefined || now.withdrawn !== true) return
    this.pastWithdrawn.set(was.key, [w[0], now.version])
    this.recordText = null
  }

  // `u` is newer than the value of our past that `held`, our withdrawal
  // of its key, withdrew (R4).
  private afterWithdrawal(u: Update, held: Update): boolean {
    const w = this.pastWithdrawn.get(u.key)
    return w !== undefined && held.version === w[1] && u.version > w[0]
  }

  // Whether we cannot vouch for our copy of our own id: still fetching our
  // past, or holding out values of our past we refused until they are
  // settled (a peer refetching us must not drop them meanwhile).
  private unsure(): boolean {
    if (this.host.selfUnsure()) return true
    if (this.lateOwn.size === 0) return false
    const history = this.host.history
    for (const u of this.late) if (!history.isCurrent(u)) return true
    return false
  }

  /** Our own values peers refused as late, not yet settled. */
  get late(): Update[] {
    const out: Update[] = []
    const history = this.host.history
    for (const [v, u] of this.lateOwn) {
      // Still standing: held as our current mapping, or (refused from our
      // own past) nothing newer of ours replaced it.
      const mine = history.mapping(this.host.id, u.key)
      if (mine === u || mine === undefined || mine.version < u.version) out.push(u)
      else if (mine.withdrawn === true && (this.afterWithdrawal(u, mine) || (unnamed(u, mine) && this.host.ownPast(mine)))) out.push(u)
      else this.lateOwn.delete(v)
    }
    return out
  }

  /** Settle our late values: write each again (`'keep'`) or withdraw each (`'drop'`). Returns how many. */
  settle(choice: 'keep' | 'drop'): number {
    const late = this.late
    this.lateOwn.clear()
    for (const u of late) {
      if (choice === 'keep') this.host.rewrite(u)
      else this.host.withdraw(u.key, u.version)
    }
    return late.length
  }

  // ---- persistence ---------------------------------------------------------------

  /** What a store keeps besides the mappings: gc per source and the horizon, as JSON text (null: nothing yet). */
  record(): string | null {
    if (this.gc.size === 0 && this.horizon === -Infinity && this.refetches.size === 0 && this.pastWithdrawn.size === 0) return null
    if (this.recordText === null) this.recordText = JSON.stringify(this.snapshotFields())
    return this.recordText
  }

  /** The snapshot's `collected` and `horizon`. */
  snapshotFields(): DeletesFields {
    const collected: Record<string, number> = {}
    for (const [id, v] of this.gc) collected[id] = v
    const out: DeletesFields = { collected }
    if (this.horizon !== -Infinity) out.horizon = this.horizon
    if (this.refetches.size > 0) {
      const refetching: Record<string, number> = {}
      for (const [id, r] of this.refetches) refetching[id] = r.gc
      out.refetching = refetching
    }
    if (this.pastWithdrawn.size > 0) out.pastWithdrawn = Object.fromEntries(this.pastWithdrawn)
    return out
  }

  /** How many markers wait for collection (held, not yet collected), for stats and tests. */
  get pending(): number {
    let n = this.blocked.length
    for (let i = this.head; i < this.queue.length; i++) if (this.host.history.isCurrent(this.queue[i].u)) n++
    return n
  }

  /** Active time so far, µs (time during which the node hears from peers). */
  get activeTime(): number {
    return this.active
  }

  /** The gc of `source` here (-Infinity: none). */
  gcOf(source: string): number {
    return this.gc.get(source) ?? -Infinity
  }
}

/** What the snapshot keeps of this module (see Snapshot.collected and the fields after it). */
export interface DeletesFields {
  collected: Record<string, number>
  horizon?: number
  refetching?: Record<string, number>
  pastWithdrawn?: Record<string, [number, number]>
}

/** The fields of a peer's digest end this module reads (see shape.ts, DoneReading). */
export interface DoneFields {
  readonly nonce: string | undefined
  readonly late: readonly LateReport[] | undefined
  readonly stale: ReadonlyMap<string, StaleNotice> | undefined
  readonly noticeBy: string | undefined
  readonly noticeSignature: string | undefined
  readonly noticeNonce: string | undefined
  readonly recovering: boolean
  readonly withheld: boolean
  /** The end of an answer to our question (not a question). */
  readonly reply: boolean
}

// The value a late report names: by its key when it says one (a history
// keeps every current mapping, but indexes by version only what it has
// not forgotten past max_history).
function lateValue(history: History, pair: LateReport): Update | undefined {
  if (pair.length === 3) {
    const u = history.mapping(pair[0], pair[2])
    return u !== undefined && u.version === pair[1] ? u : undefined
  }
  return history.at(pair[0], pair[1])
}

// 64 random bits, in hex: a stale notice to a peer signs its latest.
function freshNonce(): string {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2))
  return words[0].toString(16).padStart(8, '0') + words[1].toString(16).padStart(8, '0')
}

