/**
 * Late values (docs/deletes.md, rules 5 and 7): a value new to the node at
 * or below its horizon may be what a collected delete beat, so it is
 * refused and its writer told; a withdrawal naming a value older than the
 * one held (R6) waits for its source; our own values refused as late, and
 * a write of our past shown after we withdrew an older one (R4), are ours
 * to settle (keep or drop). Late reports of other sources are passed on
 * towards their writers.
 */
import { reportInvalid } from './codes'
import type { Collection } from './collection'
import { isMarker, MAX_FORWARD, unnamed, type DeletesHost, type Link, type Links, type StreamLike } from './markers'
import type { History } from './history'
import type { LateReport, Update } from './types'

/** One node's late values (see the module's comment). */
export class Late {
  // Our own values peers refused as late, by version, until settled.
  private readonly lateOwn = new Map<number, Update>()
  // Values of our past we withdrew once it settled (R4): key -> [the
  // value's version, the withdrawal's]. A newer write of our past that a
  // peer shows us later was written after the value R4 judged: the
  // withdrawal decided without it, so it is ours to settle (rule 7).
  readonly pastWithdrawn = new Map<string, [number, number]>()
  // Values of our past refused as late and dropped before our past settled
  // (R4): key -> the value. The withdrawal waits for the past (dropWaiting).
  private readonly dropping = new Map<string, Update>()
  // Late reports of other sources to pass on: "source\u0000version" -> the pair.
  readonly forward = new Map<string, LateReport>()
  // Links whose answer being read holds refusals (a link dropped mid-answer
  // keeps its count: mayAdvance then only looks it up).
  private refusals = 0
  // Refusals already reported as 'invalid' (bounded), so a value offered
  // again at every exchange is reported once.
  private readonly reported = new Set<string>()

  constructor(
    private readonly host: DeletesHost,
    private readonly collection: Collection,
    private readonly links: Links,
    private readonly changed: () => void,
  ) {}

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
    // The horizon at the value's place (`first`: a copy issued again, or a handed write, R2).
    if ((u.first ?? u.version) > this.collection.horizon && u.version > this.collection.gcOf(u.source_id)) return false
    const l = this.links.link(stream)
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
        `late: version ${u.version} of ${u.source_id} is older than deletes this node collected (horizon ${this.collection.horizon}, gc of its source ${this.collection.gcOf(u.source_id)}); its writer is told (see docs/deletes.md)`,
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
    if (u.version > this.collection.horizon && u.version > this.collection.gcOf(this.host.id)) return false
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
    const refusing = this.links.peek(stream)?.refusing
    if (refusing === undefined || refusing === null) return true
    const v = refusing.get(source)
    return v === undefined || version < v
  }

  /** Leave the rest of `source` in this answer below its max (a throwing resolve or store left a gap). */
  holdBack(stream: StreamLike, source: string, version: number): void {
    const refusing = this.refusing(this.links.link(stream))
    const was = refusing.get(source)
    if (was === undefined || version < was) refusing.set(source, version)
  }

  /** The answer being read from `l` ended: its refusals end with it. */
  answered(l: Link): void {
    if (l.refusing !== null) {
      l.refusing = null
      this.refusals--
    }
  }

  /** Withdrawal `w` (ours, of version `w.version`) withdrew `mine`, a value of our past (R4): remembered. */
  withdrewPast(mine: Update, w: Update): void {
    this.pastWithdrawn.set(mine.key, [mine.version, w.version])
    this.changed()
  }

  // Late reports: our own values go to 'late'; others' are passed on
  // towards their writers while we hold them.
  lateReports(late: readonly LateReport[]): void {
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
   * R8: a value of our past (`u`) shown at the version of our own mapping
   * of its key, with other contents: two lives issued that version, and a
   * source holds one mapping per key, so the peers holding either would
   * keep it for good. It is reported late, once, and ours to settle (rule
   * 7): kept, it is written again; dropped, our own mapping goes again.
   */
  pastAtOwnVersion(stream: StreamLike, u: Update): void {
    if (this.lateOwn.has(u.version)) return
    this.lateOwn.set(u.version, u)
    reportInvalid(
      stream,
      u,
      `late: version ${u.version} of this node's own past is another mapping of ${JSON.stringify(u.key)} than this node holds at that version (two lives issued it); it is not taken until settled (see docs/deletes.md, R8 and rule 7)`,
      'late',
    )
    this.host.emit('late', [u])
  }

  /**
   * R8, the other way round: a marker of our past shown at the version of
   * our own value of its key (`held`). A marker cannot be written again as
   * a late value, so our value is reported late instead, once: kept, it is
   * written again; dropped, it is withdrawn. Either replaces both mappings
   * at every node (outside model checker seed 2112123).
   */
  markerAtOwnValue(stream: StreamLike, held: Update): void {
    if (this.lateOwn.has(held.version)) return
    this.lateOwn.set(held.version, held)
    reportInvalid(
      stream,
      held,
      `late: a marker of this node's own past is at version ${held.version}, where this node holds its value of ${JSON.stringify(held.key)} (two lives issued it); the value is reported late until settled (see docs/deletes.md, R8 and rule 7)`,
      'late',
    )
    this.host.emit('late', [held])
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
    this.changed()
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
  unsure(): boolean {
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
      // (At its version too: our own mapping there is another life's, R8.)
      if (mine === u || mine === undefined || mine.version <= u.version) out.push(u)
      else if (mine.withdrawn === true && (this.afterWithdrawal(u, mine) || (unnamed(u, mine) && this.host.ownPast(mine)))) out.push(u)
      else this.lateOwn.delete(v)
    }
    return out
  }

  /** Settle our late values: write each again (`'keep'`) or withdraw each (`'drop'`). Returns how many. */
  settle(choice: 'keep' | 'drop'): number {
    const late = this.late
    this.lateOwn.clear()
    const history = this.host.history
    for (const u of late) {
      const mine = history.mapping(this.host.id, u.key)
      // A value of our past we refused, dropped before our past settled: a
      // newer mapping of ours of its key may yet come back (R4, seed 1001048).
      if (choice === 'drop' && (mine === undefined || mine.version < u.version) && !this.host.mayWithdraw(u)) {
        this.dropping.set(u.key, u)
        continue
      }
      if (choice === 'keep' && !this.beatenHere(u)) this.host.rewrite(u)
      // Dropped at the version of our own mapping of its key (R8): ours stands, again above.
      else if (mine !== undefined && mine !== u && mine.version === u.version) this.host.rewrite(mine)
      else this.host.withdraw(u.key, u.version)
    }
    return late.length
  }

  /** Our past settled: withdraw the values of it dropped meanwhile, unless a newer mapping of ours of the key came back (R4). */
  dropWaiting(): void {
    if (this.dropping.size === 0) return
    const history = this.host.history
    for (const u of this.dropping.values()) {
      const mine = history.mapping(this.host.id, u.key)
      if (mine === undefined || mine.version < u.version) this.host.withdraw(u.key, u.version)
    }
    this.dropping.clear()
  }

  // Whether another source's mapping held here beats our late value `u`: it
  // lost anyway, so 'keep' withdraws it (written again now, it would beat
  // that newer write; rule 7).
  private beatenHere(u: Update): boolean {
    for (const m of this.host.history.get(u.key)) if (m.source_id !== this.host.id && m.withdrawn !== true && this.host.beats(m, u)) return true
    return false
  }
}

// The value a late report names: by its key when it says one (a history
// keeps every current mapping, but indexes by version only what it has
// not forgotten past max_history).
export function lateValue(history: History, pair: LateReport): Update | undefined {
  if (pair.length === 3) {
    const u = history.mapping(pair[0], pair[2])
    return u !== undefined && u.version === pair[1] ? u : undefined
  }
  return history.at(pair[0], pair[1])
}
