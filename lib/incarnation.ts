/**
 * A node's own id across its lives (incarnations): the clock that issues
 * its versions, and what it does when a peer shows it versions of its own
 * id it did not issue in this life: a past incarnation's writes (a restart
 * without its saved state, or from an older one), fetched back and issued
 * again above where needed; or, past Clock.TWIN_LIMIT such raises, another
 * live node writing as it (a twin), whose writes are then taken at their
 * versions and no longer issued again over.
 */
import { Clock } from './clock'
import { reportInvalid } from './codes'
import type { History } from './history'
import type { Snapshot, Update } from './types'

/** What this module needs of one peer's exchange. */
export interface PastPeer {
  /** This peer named or sent a version of ours from a past incarnation. */
  pastShown: boolean
  /** This peer kept showing our id above our writes: a twin or a liar. */
  twin: boolean
  /** This peer answered a question for our past completely. */
  readonly verified: boolean
  /** This peer has had an exchange with us. */
  readonly exchanged: boolean
  /** The peer's stream is closed. */
  readonly destroyed: boolean
  /** Where our outstanding question asked for our own past from, or null. */
  readonly askFrom: number | null
  /** This peer has shown us every update of ours up to here. */
  ownSeen: number
  /** Mappings offered to this peer once its digest names their source at or above them (see Replica.fillsFor). */
  fillWait: Update[] | null
  /** Report an event on this peer's stream (`'invalid'`: what it sent was refused). */
  emit(event: string, ...args: unknown[]): boolean
}

/** What this module needs of its node. */
export interface IncarnationHost {
  readonly id: string
  readonly history: History
  /** Write `u` (a value or a marker) again, at a new version: a local write. */
  rewrite(u: Update): void
  /** Our past just settled: what waited for it (withdrawals of our past values) is decided now. */
  settledPast(): void
  /** Another live node writes as `source` (see Replica.twinned). */
  twinned(source: string): void
  /** Whether `a` replaces `b` (resolve asked of the two alone). */
  beats(a: Update, b: Update): boolean
  /** Withdraw `u`, a value of ours (an ordinary local write of a withdrawal naming it). */
  withdraw(u: Update): void
}

/** The node's own id in this life: its clock, its past, its twins. */
export class Incarnation {
  /** The highest version of our own id pushed to any peer: peers can know no version of ours above it from this life. */
  sentOwn = -Infinity
  /**
   * Whether we know how far we hold our own past. A node started without
   * state does not: its id may have written before (a restart from
   * nothing), so it asks each peer once, and its snapshots claim nothing
   * of its past until every peer it exchanges with has answered.
   */
  pastKnown = true
  /** Restored from a snapshot taken while still fetching its past. */
  restoredRecovering = false
  /**
   * Every peer we exchange with answered our question for our past: we
   * send our own updates again though what we hold of our past may have a
   * gap no peer can fill.
   */
  pastSettled = false
  /** Mappings of our id that a past incarnation wrote (received, not issued). */
  readonly pastMappings = new WeakSet<Update>()
  /** Some write of this life was issued again (see reissue, tookOther). */
  reissuedAny = false
  // Each write of this life issued again above our past, with the version
  // it was first issued at: its place among other sources' writes.
  private readonly reissued = new WeakMap<Update, number>()
  /**
   * Our own log rebuilt from peers' copies (docs/deletes.md, "A node
   * started without its log"): versions of ours in (rebuiltFrom,
   * rebuiltTo] came back from copies of different moments, so a peer may
   * name us past one of them it lacks. Once settled, each peer is offered
   * them (see Replica.fillsFor). Empty (-Infinity) until then.
   */
  rebuiltTo = -Infinity
  /** How far this life started holding its own log whole (see rebuiltTo). */
  rebuiltFrom = -Infinity

  constructor(
    private readonly host: IncarnationHost,
    /** The clock that issues our versions (a restore replaces it). */
    public clock: Clock,
  ) {}

  /** A node started without state: its id may have a past. */
  unknownPast(): void {
    this.pastKnown = false
    this.restoredRecovering = true
    this.settledSeen = false
    this.floor = this.clock.start
  }

  /**
   * Whether our own log is settled: we know how far we hold our past and
   * every peer we exchange with has shown us what it holds of it. Until
   * then what we hold of our past may be partial: no decision rests on it
   * (withdrawals wait, see mayWithdraw) and we vouch for nothing of it.
   */
  get settled(): boolean {
    return this.pastKnown && (!this.clock.recovering || this.pastSettled)
  }

  /**
   * Whether our own values may be withdrawn now (rule 2): only once our
   * past is settled. Before, a peer not yet heard from may hold a newer
   * write of ours to the key that the delete does not beat (attack round
   * 3, finding D), and a write of this life may yet be issued again above
   * a past that shows itself higher (R2), where the delete no longer beats
   * it. (A node that never asks a question never settles: its values a
   * delete beats stay, hidden by the delete, until it does.)
   */
  mayWithdraw(): boolean {
    return this.settled
  }

  /**
   * Call where no update is half taken (the end of a peer's answer): once
   * our past has just settled, what waited for it runs (withdrawals of our
   * past values; offering peers our rebuilt log, see rebuiltTo).
   */
  checkSettled(): void {
    const now = this.settled
    const was = this.settledSeen
    this.settledSeen = now
    if (was || !now) return
    const heard = this.clock.pastHeard
    if (heard > this.wholeFrom && heard > this.rebuiltTo) {
      this.rebuiltFrom = this.wholeFrom
      this.rebuiltTo = heard
    }
    this.host.settledPast()
  }

  // Whether the past was settled when last looked at (checkSettled).
  private settledSeen = true
  // Active time when this life was first heard from a peer (see pastAnswered).
  private lifeActive: number | undefined

  // How far this life started holding its own log whole: nothing after a
  // restart from nothing, the snapshot's `held` after one taken while fetching.
  private wholeFrom = -Infinity

  /**
   * The first version of the life that began without saved state (see
   * Snapshot.floor): our log is ours whole only from there. Below it lies
   * whatever a past incarnation wrote, which we know only from peers' copies.
   */
  floor = -Infinity

  // R9 (docs/deletes.md): the versions the lives since `floor` issued, as
  // runs, from a state saved after its past settled; undefined when the
  // saved state named none (an older release's: every version counts as
  // theirs, as before). Only the stale test reads it: nothing is issued
  // again because of it (an old backup's writes would beat newer ones).
  private lineage: number[] | undefined

  /** Restarted from a store object's entries, `restored` the highest version among them. */
  fromEntries(restored: number): void {
    this.clock.pastHeard = this.host.history.sources.get(this.host.id)?.max ?? -Infinity
    this.sentOwn = restored
    this.restoredRecovering = this.clock.recovering
    this.wholeFrom = this.clock.pastHeld
    this.settledSeen = this.settled
    this.floor = this.clock.start
  }

  /** Restarted from `snapshot`, whose mappings went up to version `restored`. */
  fromSnapshot(snapshot: Snapshot, restored: number): void {
    const held = heldOf(snapshot)
    // A state saved before its past settled names the writes its life issued.
    const issued = held === undefined ? undefined : Clock.runsOf(snapshot?.issued, restored)
    this.clock = new Clock(restored, Math.max(Clock.now(), reservedOf(snapshot)), held, issued)
    // What a saved state holds, an earlier run may have sent.
    this.sentOwn = restored
    this.wholeFrom = this.clock.pastHeld
    this.pastKnown = true
    this.settledSeen = this.settled
    const floor = snapshot?.floor
    this.floor = typeof floor === 'number' && Number.isSafeInteger(floor) ? floor : -Infinity
    this.lineage = held === undefined && this.floor !== -Infinity ? Clock.runsOf(snapshot?.issued, restored) : undefined
    // A log rebuilt since a start without state (it has a floor) may lack a
    // past that only a peer away while it settled holds: every new peer is
    // asked for it, as a node that started without state asks (attack found
    // such a past kept at that peer alone, for good, once the node restarted
    // from a state saved after it settled).
    this.restoredRecovering = this.clock.recovering || this.floor !== -Infinity
  }

  /** What a snapshot says of how far we hold our past (see Snapshot.held): undefined for all of it. */
  get snapshotHeld(): number | undefined {
    return !this.pastKnown ? -1 : this.clock.recovering ? this.clock.heldThrough : undefined
  }

  /**
   * What a snapshot says of the writes this life issued (see
   * Snapshot.issued): while it claims only part of our past, so that a
   * restart from it still tells our writes from the past peers hold, and
   * issues them again above it (attack round 3, F). Undefined otherwise.
   */
  get snapshotIssued(): number[] | undefined {
    if (this.snapshotHeld !== undefined) return this.clock.issuedRuns()
    // R9: settled, but our log is ours whole only since the floor.
    return this.floor === -Infinity ? undefined : this.lineageRuns()
  }

  // R9: the runs the lives since the floor issued, this one's included;
  // those above floor + Clock.AHEAD are left out (no past version lies
  // there: lineageIssued counts every one as ours), so the list stays short.
  private lineageRuns(): number[] {
    const top = this.floor + Clock.AHEAD
    const out: number[] = []
    const add = (runs: readonly number[]): void => {
      for (let i = 0; i < runs.length && runs[i] <= top && out.length < 2 * Clock.MAX_RUNS; i += 2) out.push(runs[i], runs[i + 1])
    }
    if (this.lineage !== undefined) add(this.lineage)
    const mine = this.clock.issuedRuns()
    // (A life before this one issued nothing at or above this one's start.)
    if (out.length === 0 || mine.length === 0 || mine[0] > out[out.length - 1]) add(mine)
    return out
  }

  // R9: whether the lives since the floor issued `version` (as far as the
  // saved state says: without a record, every version counts as theirs).
  private lineageIssued(version: number): boolean {
    const runs = this.lineage
    if (runs === undefined || version > this.floor + Clock.AHEAD || this.clock.issued(version)) return true
    for (let i = 0; i < runs.length; i += 2) if (version >= runs[i] && version <= runs[i + 1]) return true
    return false
  }

  /**
   * Whether the node cannot vouch for its copy of its own id: it has seen
   * signs of a past incarnation and not fetched it all (a node that names
   * itself nowhere claims nothing of its id).
   */
  get unsure(): boolean {
    return (
      ((!this.pastKnown && this.clock.pastSeen) || (this.clock.recovering && !this.pastSettled)) &&
      (this.host.history.sources.get(this.host.id)?.max ?? -Infinity) !== -Infinity
    )
  }

  /**
   * Whether `peer` is to be asked for our past (all it holds of it). Not
   * while it refetches our id and we vouch for our copy: we alone serve
   * that refetch, which takes our digest naming us at or above the gc,
   * and the peer withholds its copy meanwhile, so asking would keep both
   * waiting (outside model checker seed 2115462); we ask once it is done.
   */
  asks(peer: { readonly verified: boolean; readonly pastShown: boolean; readonly withholdsOwn: boolean }): boolean {
    return !peer.verified && (peer.pastShown || this.restoredRecovering) && !(peer.withholdsOwn && !this.unsure)
  }

  /** We pushed our own update at `version` to a peer. */
  sent(version: number): void {
    if (version > this.sentOwn) this.sentOwn = version
  }

  /**
   * An update of our own id from `peer` (`held`: we hold its key's mapping
   * at that version or newer): true if it is our past, false if it is this
   * life's own, undefined to leave it alone (the peer is a twin's, or it is
   * a stale copy of our past).
   */
  received(peer: PastPeer, key: string, value: unknown, version: number, held: boolean): boolean | undefined {
    const past = this.isPast(key, value, version)
    if (past) this.pastOf(peer, version)
    // A twin's writes (past Clock.TWIN_LIMIT) are taken at their own
    // versions, as every other node takes them: last writer wins among them
    // and ours, nothing is issued again, so once one twin stops the survivor
    // holds what the others hold (red team 5: ignoring them kept the
    // survivor without its stopped twin's writes for good).
    // Our past as far as we hold it whole (from our own saved state) is ours
    // to know: a version there we do not hold, we replaced (only we change
    // our log); a peer's copy of it is stale, whatever collected what
    // replaced it. Not so as far as peers gave it back: their copies are of
    // different moments (and of this life's log, once we sent it), so one
    // peer's copy cannot tell another's mapping replaced.
    // (Nor below the first version of the life that began without saved
    // state: a snapshot taken after settling still never held that whole.)
    // (Nor where we hold another mapping of ours at that very version: one
    // life issues a version once, so the two are of two lives, R8. The same
    // mapping, replaced and not yet swept from our log, is the write we
    // replaced: taken for our past, it came back late, red team 18.)
    // (Nor at a version the lives since the floor never issued, R9.)
    // (Nor, our mapping there swept, while we hold an older one of its key:
    // ours at that version was of another key, R7, so this one is a past's
    // we never held; taken as stale, it stayed at the peers alone.)
    const mine = past ? this.host.history.at(this.host.id, version) : undefined
    const stale =
      past &&
      !held &&
      version <= this.wholeFrom &&
      version >= this.floor &&
      (mine === undefined ? this.host.history.mapping(this.host.id, key) === undefined : mine.key === key && sameValue(mine.value, value)) &&
      this.lineageIssued(version)
    // An answer to a question for our past comes in version order from
    // where we asked, which joins what we held and what this peer showed.
    // (Once we sent our own updates again, a peer's copy of us may have
    // our own gap: it proves nothing of what we hold.)
    const from = peer.askFrom
    if (from !== null && version > peer.ownSeen) {
      this.skipped(peer, Math.max(from, peer.ownSeen), version)
      peer.ownSeen = version
      // (Our own writes of this life coming back are no past.)
      const clock = this.clock
      if (!stale && from <= clock.pastHeld && !this.pastSettled && version < clock.start) clock.held(version)
    }
    return stale ? undefined : past
  }

  // R7 (docs/deletes.md): `peer`'s answer to our question for our past
  // went from `after` straight to `version`, so its copy lacks each of our
  // mappings in between, whatever version it names us at (a past of ours
  // may have used that version too): each is offered to it, this life's
  // writes and our past's alike (R3's range is not kept by a snapshot).
  private skipped(peer: PastPeer, after: number, version: number): void {
    const history = this.host.history
    const id = this.host.id
    let at = after
    // Usually the next update of ours here is the one shown: a look at one.
    for (let look = 1; ; look = SKIPPED_LOOK) {
      const news = history.news(id, at, look)
      for (const u of news) {
        if (u.version >= version) return
        at = u.version
        const wait = (peer.fillWait ??= [])
        // Bounded as Replica.fillsFor bounds its list: the rest waits for a later answer.
        if (wait.length >= SKIPPED_MAX) return
        wait.push(u)
      }
      if (news.length < look) return
    }
  }

  // An update of our own id is from our past unless we sent that version
  // and it is what we wrote then.
  private isPast(key: string, value: unknown, version: number): boolean {
    // Peers know only the versions of ours we sent: anything above is past.
    if (version > this.sentOwn || this.clock.isPast(version)) return true
    const history = this.host.history
    const mine = history.at(this.host.id, version)
    if (mine !== undefined) return mine.key !== key || !sameValue(mine.value, value)
    // Our write there was replaced and swept: only by a newer one of its
    // key, so with the key's mapping here older, it was of another key, and
    // this is our past's (R7). (None here: it may be a marker we collected.)
    return (history.mapping(this.host.id, key)?.version ?? Infinity) < version
  }

  /** A peer's digest names our own id at `version`. */
  heardSelf(peer: PastPeer, version: number): void {
    if (peer.twin) return
    if (version > this.sentOwn || this.clock.isPast(version)) this.pastOf(peer, version)
  }

  // `peer` showed us our own id at `version`, which we did not issue: a
  // past incarnation's, to be issued again above; past Clock.TWIN_LIMIT
  // such raises, a twin or a liar on that stream (see twinOn).
  private pastOf(peer: PastPeer, version: number): void {
    peer.pastShown = true
    const clock = this.clock
    if (version > clock.pastHeard) this.pastSettled = false
    const raises = clock.raises
    const before = clock.time
    const upTo = clock.foreign(version)
    this.noticeAhead(peer, before)
    if (clock.raises > raises && clock.twin && !peer.twin) this.twinOn(peer, version)
    // A twin: our writes are no longer issued again above its versions, so
    // each is offered to peers that passed it (while its versions keep coming).
    if (clock.twin) this.host.twinned(this.host.id)
    // (Settled again later, with more of our past to offer: see checkSettled.)
    if (!this.settled) this.settledSeen = false
    this.reissue(upTo)
  }

  // The clock jumped from `before` far ahead of the wall clock, following
  // our id as `peer` showed it: said on its stream (`'ahead'`), for logs.
  private noticeAhead(peer: PastPeer, before: number): void {
    const clock = this.clock
    if (clock.time > before + Clock.NOTICE && clock.time > clock.wall() + Clock.NOTICE) peer.emit('ahead', this.host.id, clock.time)
  }

  // A stream that keeps showing our "past" above our writes carries a twin
  // (another live node with our id) or a liar, or relays one: reported
  // once; its versions of our id no longer move ours. The stream stays open:
  // an honest peer relaying a liar's forgery must still get our writes,
  // which the clock (following the forgery) now issues above it.
  private twinOn(peer: PastPeer, version: number): void {
    peer.twin = true
    const message =
      `another live node writes as "${this.host.id}" (or a peer keeps claiming it does): ` +
      `its versions passed ours ${Clock.TWIN_LIMIT} times; give each node its own id`
    reportInvalid(peer, { source_id: this.host.id, version }, message, 'twin_writes')
  }

  // Issue again, above the clock, every write of this life at or below
  // `upTo`: peers that hold our past up to there would ignore them.
  private reissue(upTo: number): void {
    if (upTo === -Infinity) return
    const clock = this.clock
    for (const u of this.host.history.news(this.host.id, clock.first - 1)) {
      if (u.version > upTo) break
      // Only this life's own writes: a past's mapping we hold keeps its
      // version, so a newer write of the past still wins over it. Not one
      // restored from a saved state (below clock.start): that state may be
      // an old backup, and what peers show above it our later writes (R2).
      if (u.version >= clock.start && clock.issued(u.version) && !this.pastMappings.has(u)) {
        // Lost already to another source's write: withdrawn above the past,
        // as the yield does (left at its version beside the past's mapping
        // there, sources disagreed for good: checker seed 2406856).
        if (this.replaced(u)) {
          if (u.deleted !== true && u.withdrawn !== true && this.lost(u)) this.host.withdraw(u)
          continue
        }
        this.host.rewrite(u)
        const again = this.host.history.mapping(this.host.id, u.key)
        if (again !== undefined && again !== u) {
          this.reissued.set(again, this.reissued.get(u) ?? u.version)
          this.reissuedAny = true
        }
      }
    }
  }

  /**
   * `w`, another source's value or tombstone, was just taken. If our
   * mapping of its key is a value issued again above our past (reissue)
   * and `w` beats it at the version it was first issued at, the copy
   * yields: withdrawn, so that `w` wins at every node as it wins over the
   * write first issued. Issued again only to pass our past, the copy would
   * otherwise beat every write of its key made after it that was still on
   * its way here (a twin's versions, taken for our past, had one lost: the
   * twins property's re-issue race, docs/twins.md R7).
   */
  tookOther(w: Update): void {
    if (w.withdrawn === true) return
    const mine = this.host.history.mapping(this.host.id, w.key)
    const first = mine === undefined ? undefined : this.reissued.get(mine)
    // (At the copy's own version too: there `resolve` orders the two by
    // source alone, not by the write first issued.)
    if (mine === undefined || first === undefined || w.version > mine.version || mine.deleted === true || mine.withdrawn === true) return
    if (!this.host.beats(w, { ...mine, version: first })) return
    this.reissued.delete(mine)
    this.host.withdraw(mine)
  }

  // Whether another source's mapping of `u`'s key here is above it: `u`
  // lost to it already, and issued again it would beat it everywhere (a
  // twin's versions, taken for our past, had a write re-dated over a later
  // one: the property test found the later write lost).
  private replaced(u: Update): boolean {
    for (const m of this.host.history.get(u.key)) if (m.source_id !== u.source_id && m.version > u.version) return true
    return false
  }

  // Whether a value or tombstone of another source here beats `u`.
  private lost(u: Update): boolean {
    for (const m of this.host.history.get(u.key)) if (m.source_id !== u.source_id && m.withdrawn !== true && this.host.beats(m, u)) return true
    return false
  }

  /** A peer completely answered our digest and holds us up to `version`. */
  answeredSelf(version: number): void {
    // A peer naming us at a version this life issued may hold none of our
    // past (R7): its answer vouches only for the past it showed (received).
    if (!this.pastSettled && version < this.clock.start) this.clock.answered(version)
  }

  /**
   * After a peer's digest end: once every peer we exchange with (`peers`)
   * has answered our question for our past completely, we hold all of our
   * past there is to fetch from them, and send our own updates again. (One
   * that shows more later makes us fetch again; what we sent meanwhile with
   * a gap is mended by gap fills.) A node that asks no question (it only
   * answers) is never answered: with no sign of a past of its id for a
   * grace of active time (`active`, `grace`, µs), it settles too.
   */
  pastAnswered(peers: Iterable<PastPeer>, active: number, grace: number): void {
    if (this.pastKnown && (!this.clock.recovering || this.pastSettled)) return
    this.lifeActive ??= active
    const quiet = this.clock.pastHeard === -Infinity && !this.clock.recovering && active - this.lifeActive > grace
    let any = false
    for (const p of peers) {
      if (!p.exchanged || p.destroyed) continue
      if (!p.verified && !quiet) return
      any = true
    }
    if (!any) return
    if (this.clock.recovering) this.pastSettled = true
    this.pastKnown = true
  }
}

// How many of our updates skipped() looks at a time, and how many it offers one peer at most.
const SKIPPED_LOOK = 64
const SKIPPED_MAX = 4096

export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  try {
    return JSON.stringify(a) === JSON.stringify(b)
  } catch {
    return false
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
