/**
 * Deletes, as docs/deletes.md designs them: tombstones and withdrawals in
 * their sources' own logs, collection after the grace period, the horizon
 * below which a value new to the node is refused as late, and the refetch
 * of a source whose copy is behind markers a peer collected. `Deletes`
 * composes the parts (collection.ts: rule 4; late.ts: rules 5 and 7;
 * stale-copies.ts: rule 6; markers.ts: what they share), takes markers in
 * and withdraws our values they beat (rule 2), and reads and writes the
 * fields of a digest's end; the node calls in at the points the design
 * names (a mapping taken in, a peer's digest end heard, an update about to
 * be taken, our digest end sent).
 *
 * Only S changes S's log. The one thing a node removes on its own is a
 * marker it collected, which every node does alike; a refetch drops only
 * what a fresh copy of the source does not hold.
 */
import { Collection } from './collection'
import { lateValue, Late } from './late'
import { reportInvalid } from './codes'
import { isMarker, Links, type DeletesHost, type DoneFields, type Link, type StreamLike } from './markers'
import type { IdRange } from './reconcile'
import { MAX_NOTICES, noticeUpdate } from './shape'
import { StaleCopies } from './stale-copies'
import type { DigestDone, LateReport, Snapshot, StaleNotice, Update } from './types'

/**
 * Most bytes this module adds to a digest's end (its horizon, nonce, late
 * reports and stale notices): a digest bounded by `mtu_bytes` leaves this
 * much room; notices past it wait for the next end.
 */
export const EXTRA_BYTES = 2048

/** The delete logic of one node (see the module's comment and docs/deletes.md). */
export class Deletes {
  /** Collection (rule 4), gc and the horizon, and the view without markers (rule 3). */
  readonly collection: Collection
  /** Late values (rules 5 and 7). */
  readonly lateValues: Late
  /** Stale copies and refetches (rule 6). */
  readonly staleCopies: StaleCopies
  private readonly links = new Links()
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
    const changed = (): void => {
      this.recordText = null
    }
    this.collection = new Collection(host, graceMs, now, changed)
    this.lateValues = new Late(host, this.collection, this.links, changed)
    this.staleCopies = new StaleCopies(host, this.collection, this.links, changed)
  }

  /** `config.tombstone_grace` in µs of active time. */
  get grace(): number {
    return this.collection.grace
  }

  /**
   * The highest version of a tombstone this node collected (docs/deletes.md,
   * rule 5), a horizon passed on taken first once we hold all its peer
   * named. Read so by what saves or says it too: a horizon whose last
   * needed update came before no other update did was in neither the
   * snapshot nor the digest end (outside model checker seed 2119621).
   */
  get horizon(): number {
    if (this.collection.lending) this.collection.takeLent()
    return this.collection.horizon
  }

  /** True when `took` has nothing to do for a value (see Collection.idle). */
  get idle(): boolean {
    return this.collection.idle
  }

  /** Whether a refetch is under way (our answers then leave suspects out). */
  get refetching(): boolean {
    return this.staleCopies.refetching
  }

  /**
   * `u` was just recorded as its source's current mapping (by us when
   * `own`). Markers wait for collection; a tombstone makes us withdraw our
   * own value it beats (rule 2), as does a value of ours a held tombstone
   * beats.
   */
  took(u: Update, own: boolean): void {
    this.collection.took(u)
    if (own && isMarker(u)) this.staleCopies.markedOwn = true
    if (u.deleted === true) {
      if (!own) {
        const mine = this.host.history.mapping(this.host.id, u.key)
        if (mine !== undefined && !isMarker(mine) && this.host.beats(u, mine) && this.host.mayWithdraw(mine)) this.withdrawOwn(mine)
      }
    } else if (u.withdrawn !== true && (own || u.source_id === this.host.id) && this.collection.tombKeys.has(u.key) && this.host.mayWithdraw(u)) {
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
    if (w !== undefined && w.withdrawn === true && this.host.ownPast(mine)) this.lateValues.withdrewPast(mine, w)
  }

  /** The markers of a restored history wait for collection from now; our own values they beat are withdrawn. */
  restored(snapshot: Snapshot | undefined): void {
    // (Not a state saved while fetching our past, Snapshot.held: it never
    // claimed our log whole, and peers' copies of it are what it fetches.)
    const own = typeof snapshot?.held === 'number' ? undefined : this.host.history.sources.get(this.host.id)
    this.staleCopies.restoredOwn = own !== undefined && own.live > 0 ? own.max : -Infinity
    const history = this.host.history
    const markers: Update[] = []
    for (const u of history.mappings()) if (isMarker(u)) markers.push(u)
    markers.sort((a, b) => a.version - b.version)
    for (const u of markers) this.took(u, u.source_id === this.host.id)
    const collected = snapshot?.collected
    if (collected !== null && typeof collected === 'object') {
      for (const id of Object.keys(collected)) {
        const v = collected[id]
        if (typeof v === 'number' && Number.isSafeInteger(v)) this.collection.raiseGc(id, v)
      }
    }
    const h = snapshot?.horizon
    if (typeof h === 'number' && Number.isSafeInteger(h) && h > this.collection.horizon) this.collection.horizon = h
    // A refetch under way starts again: what we hold of the source waits to
    // be confirmed (a restart must not make a stale copy fresh).
    const refetching: unknown = snapshot?.refetching
    if (refetching !== null && typeof refetching === 'object') {
      for (const id of Object.keys(refetching)) {
        const v: unknown = (refetching as Record<string, unknown>)[id]
        // ([gc, target] from before the target went.)
        const gc = Array.isArray(v) ? v[0] : v
        if (typeof gc === 'number' && Number.isSafeInteger(gc)) this.staleCopies.startRefetch(id, gc)
      }
    }
    const pw: unknown = snapshot?.pastWithdrawn
    if (pw !== null && typeof pw === 'object') {
      for (const key of Object.keys(pw)) {
        const v: unknown = (pw as Record<string, unknown>)[key]
        if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) {
          this.lateValues.pastWithdrawn.set(key, [v[0] as number, v[1] as number])
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
    this.lateValues.dropWaiting()
    const history = this.host.history
    for (const key of [...this.collection.tombKeys]) {
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

  /** Forget the markers past the grace that may go. Runs as exchanges start and end. */
  collect(): void {
    this.collection.collect()
    if (this.staleCopies.refetches.size > 0) this.staleCopies.abandon()
    this.collection.recheck()
  }

  /**
   * A peer's digest end (read into `done`), with the digest `heard` before
   * it over `range`: active time moves; its nonce, late reports and stale
   * notices are taken; refetches find their fresh copies here and end; the
   * peer's copy of each source we collected markers of is judged (rule 6),
   * and notices owed for our next digest end to it. `judge`: the stream
   * has no filter, so its digest names whole copies.
   */
  onDone(stream: StreamLike, done: DoneFields, heard: ReadonlyMap<string, number>, range: IdRange, judge: boolean): void {
    this.collection.heard()
    const l = this.links.link(stream)
    this.lateValues.answered(l)
    if (done.nonce !== undefined) l.peerNonce = done.nonce
    if (done.lives !== undefined) this.staleCopies.learn(stream, done.lives)
    // A horizon passed on (rule 5): only with a whole digest, believable, and under signatures from an authenticated peer.
    const h = done.horizon
    if (h !== undefined && h > this.collection.horizon && judge && range.after === undefined && range.through === undefined && this.host.accepts(h) && (this.host.security === undefined || stream.peer !== undefined)) {
      // Never above both every version the digest named and our wall clock:
      // rule 5 needs us to hold all the peer held up to the horizon, which a
      // digest naming nothing that high does not show (it waits, offered
      // again, until our clock passes it); a forged one would outrun what
      // we hold and refuse writes made after it, here and at our peers.
      let top = this.host.wall()
      for (const v of heard.values()) if (v > top) top = v
      if (h <= top) this.collection.lend(h, heard)
      else reportInvalid(stream, { digest: true, done: true, horizon: h }, `horizon ${h} above every version the digest named and this node's clock (${top}): ignored until either passes it (docs/deletes.md, rule 5)`, 'ahead')
    }
    if (done.stale !== undefined || done.late !== undefined) {
      if (!this.signed(stream, l, done)) {
        const notice: Record<string, unknown> = { digest: true, done: true }
        if (done.stale !== undefined) notice.stale = Object.fromEntries(done.stale)
        if (done.late !== undefined) notice.late = done.late
        reportInvalid(stream, notice, 'stale notices and late reports not signed by a member with a key: ignored', 'notice_unsigned')
      } else {
        if (done.late !== undefined) this.lateValues.lateReports(done.late)
        if (done.stale !== undefined) this.staleCopies.notices(stream, done.stale, heard, judge ? range : null)
      }
    }
    this.staleCopies.serve(stream, l, done, heard, judge)
    if (judge) this.staleCopies.judge(l, heard, range)
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

  /** Whether our digest end to `stream` needs none of this module's fields. */
  quiet(stream: object): boolean {
    if (this.horizon !== -Infinity || this.lateValues.forward.size > 0 || this.staleCopies.refetches.size > 0 || this.lateValues.unsure()) return false
    const l = this.links.peek(stream)
    if (this.staleCopies.livesToSay(l).length > 0) return false
    return l === undefined || (l.stale === null && l.late === null)
  }

  /**
   * Add this module's fields to our digest end to `stream` (see
   * DigestDone), within EXTRA_BYTES: notices that do not fit wait.
   */
  extras(stream: StreamLike, done: { -readonly [K in keyof DigestDone]: DigestDone[K] }): void {
    const l = this.links.link(stream)
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
    if (this.horizon !== -Infinity) done.horizon = this.collection.horizon
    if (this.lateValues.unsure()) done.recovering = true
    if (this.staleCopies.refetches.size > 0) {
      // The sources refetched, when they fit (else every source).
      const ids = [...this.staleCopies.refetches.keys()]
      const bytes = JSON.stringify(ids).length
      if (ids.length <= MAX_NOTICES && bytes <= room / 2) {
        done.withheld = ids
        room -= bytes
      } else done.withheld = true
    }
    const lives = this.staleCopies.livesToSay(l)
    if (lives.length > 0) {
      // Our own first: a collector of our markers must learn it. A quarter
      // of the room at most: notices and late reports matter more.
      const said: Record<string, number | readonly [number, number]> = {}
      let n = 0
      let share = Math.floor(room / 4)
      for (const [id, life] of lives) {
        const v = life[1] === -Infinity ? life[0] : life
        const bytes = JSON.stringify([id, v]).length + 1
        if (n >= MAX_NOTICES || bytes > share) break
        share -= bytes
        room -= bytes
        said[id] = v
        ;(l.livesTold ??= new Map()).set(id, life)
        n++
      }
      if (n > 0) done.lives = said
    }
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
    if (this.lateValues.forward.size > 0) {
      const history = this.host.history
      for (const [tag, pair] of this.lateValues.forward) {
        const u = lateValue(history, pair)
        // Settled (replaced) by its writer: nothing left to tell.
        if (u === undefined || !history.isCurrent(u)) this.lateValues.forward.delete(tag)
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
        this.staleCopies.cannotSign = true
        return
      }
    }
    if (notices !== undefined) done.stale = Object.fromEntries(notices)
    if (lateOut !== undefined) done.late = lateOut
  }

  /** What a store keeps besides the mappings: gc per source and the horizon, as JSON text (null: nothing yet). */
  record(): string | null {
    if (this.collection.gc.size === 0 && this.horizon === -Infinity && this.staleCopies.refetches.size === 0 && this.lateValues.pastWithdrawn.size === 0) return null
    if (this.recordText === null) this.recordText = JSON.stringify(this.snapshotFields())
    return this.recordText
  }

  /** The snapshot's `collected` and `horizon`. */
  snapshotFields(): DeletesFields {
    const collected: Record<string, number> = {}
    for (const [id, v] of this.collection.gc) collected[id] = v
    const out: DeletesFields = { collected }
    if (this.horizon !== -Infinity) out.horizon = this.collection.horizon
    if (this.staleCopies.refetches.size > 0) {
      const refetching: Record<string, number> = {}
      for (const [id, r] of this.staleCopies.refetches) refetching[id] = r.gc
      out.refetching = refetching
    }
    if (this.lateValues.pastWithdrawn.size > 0) out.pastWithdrawn = Object.fromEntries(this.lateValues.pastWithdrawn)
    return out
  }

  /** How many markers wait for collection (held, not yet collected), for stats and tests. */
  get pending(): number {
    return this.collection.pending
  }

  /** Active time so far, µs (time during which the node hears from peers). */
  get activeTime(): number {
    return this.collection.activeTime
  }

  /** The gc of `source` here (-Infinity: none). */
  gcOf(source: string): number {
    return this.collection.gcOf(source)
  }
}

/** What the snapshot keeps of this module (see Snapshot.collected and the fields after it). */
export interface DeletesFields {
  collected: Record<string, number>
  horizon?: number
  refetching?: Record<string, number>
  pastWithdrawn?: Record<string, [number, number]>
}

// 64 random bits, in hex: a stale notice to a peer signs its latest.
function freshNonce(): string {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2))
  return words[0].toString(16).padStart(8, '0') + words[1].toString(16).padStart(8, '0')
}

