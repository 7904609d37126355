/**
 * The Lamport clock of one node, and what it must do when it learns that an
 * earlier incarnation of itself (a restart without saved state) already used
 * versions it might issue again.
 *
 * A fresh clock starts at the wall clock in microseconds, so a restarted node
 * normally issues versions above anything its past incarnation used. What
 * remains possible is handled with `Gossip` and `PeerStream`:
 * - the past ran ahead of the wall clock (bursts of writes, or a peer with a
 *   fast clock), so versions this incarnation issues were also the past's.
 *   A version of ours that we did not issue (a peer's digest names it, or a
 *   peer sends an update of ours we did not write) is `foreign`: the clock
 *   jumps past it and every write of this incarnation at or below it is
 *   issued again above it, since peers would ignore it;
 * - our past's mappings live on at peers. They are ours, so the first digest
 *   on every stream asks for all of them (an update of ours at a version we
 *   issued but with other contents also reveals the past), and while a peer
 *   has told us of more past than we hold, digests ask for the rest.
 */
import { MAX_VERSION } from './shape'

// Reading the wall clock costs as much as the rest of a local write, and
// tick() needs it only to within Clock.SLACK: it reads it again once this
// counter moved (every 250 ms, on a timer that keeps no process alive).
let wallEpoch = 0
let ticker: ReturnType<typeof setInterval> | null = null
function startTicker(): void {
  if (ticker !== null) return
  ticker = setInterval(() => wallEpoch++, 250)
  ;(ticker as { unref?: () => void }).unref?.()
}
function systemNow(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000)
}

export class Clock {
  /** Wall clock in microseconds, with sub-millisecond precision. */
  static now: () => number = systemNow

  /** How far a version may run ahead of the wall clock, in µs: one hour. */
  static readonly AHEAD = 3_600_000_000
  /**
   * How far ahead of the wall clock, in µs, a version that jumps its
   * source's max is reported (a peer's `'ahead'` event): one minute, far
   * beyond the skew of synchronised clocks.
   */
  static readonly NOTICE = 60_000_000
  /**
   * How many times a past incarnation has shown itself above where we last
   * issued our writes again, beyond which it is no past: another live node
   * writes as us (a twin), or a peer lies about us. A restart shows itself
   * once or twice (once per peer that knew more of the past).
   */
  static readonly TWIN_LIMIT = 4

  /**
   * The highest version seen or issued. Initialised here (the constructor
   * sets it): a field first defined as undefined holds a double as a boxed
   * number, so each tick would allocate one (about 90 instructions a tick).
   */
  time = 0
  /** The lowest version this incarnation issues. */
  readonly start: number
  /** Our versions in [first, ambiguous] may also be a past incarnation's. */
  ambiguous = -Infinity
  /** The highest version of our id that a peer holds from our past. */
  pastHeard = -Infinity
  /** How far, in version order, we hold our past. */
  pastHeld = -Infinity
  /** A peer showed us a past of ours we did not hold. */
  pastSeen = false
  /** How many times our writes were issued again (see {@link Clock.TWIN_LIMIT}). */
  raises = 0
  /** This clock's wall clock in µs: `Clock.now` as it was when the clock was made. */
  readonly wall: () => number = Clock.now
  // The wallEpoch at which tick() last read the wall clock.
  private epoch = -1
  // Cached wall-clock bounds (they only grow): accepts() and see().
  private bound = -Infinity
  private soft = -Infinity
  // The versions this incarnation issued, as runs [from, to, from, to, ...]:
  // a run grows while ticks follow each other and a new one starts when the
  // clock jumped in between, so the list stays short.
  private readonly runs: number[] = []

  /**
   * @param restored - the clock of a saved state, if any.
   * @param now - wall clock in microseconds.
   * @param held - how far the saved state held its own past (default: all).
   * @param issued - versions this life issued before the saved state was
   *   taken, as runs (see {@link Clock.issuedRuns}): a state saved before
   *   its past settled, whose own writes are still this life's.
   */
  constructor(restored: number | undefined, now: number, held: number = restored ?? -Infinity, issued?: readonly number[]) {
    startTicker()
    if (restored === undefined) {
      this.time = now
    } else {
      this.time = Math.max(restored, now)
      this.pastHeard = restored
      // (held < 0: none of the past is held)
      this.pastHeld = held < 0 ? -Infinity : Math.min(held, restored)
      this.pastSeen = this.pastHeld < restored
    }
    this.start = this.time + 1
    if (issued !== undefined) this.runs.push(...issued)
    // The bounds read now rather than at the first accepts() and see(): a
    // branch a new clock alone takes made the optimised take() of every
    // node deoptimise at each new node's first update.
    this.bound = this.wall() + Clock.AHEAD
    this.soft = this.wall() + Clock.AHEAD / 2
  }

  /** The lowest version this life issued (see the constructor's `issued`). */
  get first(): number {
    return this.runs.length > 0 ? Math.min(this.runs[0], this.start) : this.start
  }

  /**
   * The versions this life issued, as runs [from, to, from, to, ...] (for a
   * saved state). Those a past showed itself at or above (`ambiguous`) are
   * left out: this life wrote again above them what it wrote there, so a
   * mapping of ours at such a version is the past's, after a restart too
   * (attack found a restored node dropping its past's delete that shared a
   * version with a write this life had issued again).
   */
  issuedRuns(): number[] {
    const runs = this.runs
    const cut = this.ambiguous
    if (cut === -Infinity) return runs.slice()
    const out: number[] = []
    for (let i = 0; i < runs.length; i += 2) {
      if (runs[i + 1] <= cut) continue
      out.push(Math.max(runs[i], cut + 1), runs[i + 1])
    }
    return out
  }

  /**
   * Runs of issued versions from a saved state, if they read: pairs of
   * safe integers, increasing, at or below `restored`. Undefined otherwise
   * (a damaged list claims nothing: its writes count as past).
   */
  static runsOf(issued: unknown, restored: number): number[] | undefined {
    if (!Array.isArray(issued) || issued.length % 2 !== 0 || issued.length > 2 * Clock.MAX_RUNS) return undefined
    let last = -Infinity
    for (let i = 0; i < issued.length; i++) {
      const v: unknown = issued[i]
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v > restored || (i % 2 === 0 ? v <= last : v < last)) return undefined
      last = v
    }
    return issued as number[]
  }

  /**
   * How far, in µs, the clock may fall behind the wall clock before a local
   * write takes the wall clock's reading instead of one more than the last:
   * versions then say roughly when a write was made (deletes are collected
   * by age, see docs/deletes.md), while a run of writes within it keeps
   * consecutive versions (and the record of what this incarnation issued
   * short). One second.
   */
  static readonly SLACK = 1_000_000

  /** How many separate runs of issued versions a clock remembers (see tick). */
  static readonly MAX_RUNS = 4096

  /** The version for a new local write. */
  tick(): number {
    const v = this.time + 1
    const runs = this.runs
    const n = runs.length
    // The usual tick: no new wall-clock reading due, the run goes on.
    if (this.epoch === wallEpoch && this.wall === systemNow && n > 0 && runs[n - 1] === v - 1 && v <= MAX_VERSION) {
      this.time = v
      runs[n - 1] = v
      return v
    }
    return this.tickOther()
  }

  // tick(), whatever the clock and its runs.
  private tickOther(): number {
    let v = this.time + 1
    // A clock of its own (a test's) is read every time.
    if (this.epoch !== wallEpoch || this.wall !== systemNow) {
      this.epoch = wallEpoch
      const now = this.wall()
      if (v < now - Clock.SLACK) v = now
    }
    if (v > MAX_VERSION) {
      throw new RangeError(
        `this node's clock passed MAX_VERSION (${MAX_VERSION}), which peers refuse: it was restored from a state holding a version that high`,
      )
    }
    this.time = v
    const runs = this.runs
    const n = runs.length
    if (n > 0 && runs[n - 1] === v - 1) runs[n - 1] = v
    else {
      runs.push(v, v)
      // Writes interleaved with peers' make a run each: past MAX_RUNS the
      // older half becomes one run, so memory stays bounded. Versions in
      // its gaps then count as ours: an old past write at exactly such a
      // version is not issued again (only ever the oldest gaps).
      if (runs.length > 2 * Clock.MAX_RUNS) runs.splice(1, Clock.MAX_RUNS - 2)
    }
    return v
  }

  /** True if this incarnation issued `version`. */
  issued(version: number): boolean {
    const runs = this.runs
    let lo = 0
    let hi = runs.length / 2 - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (version < runs[2 * mid]) hi = mid - 1
      else if (version > runs[2 * mid + 1]) lo = mid + 1
      else return true
    }
    return false
  }

  /**
   * True if a version from a peer is believable: no more than
   * {@link Clock.AHEAD} above this node's wall clock. Versions start at the
   * wall clock in µs and grow by one per write, so nothing honest runs an
   * hour ahead; a version that does would move every clock that saw it
   * towards MAX_VERSION (clock poisoning).
   */
  accepts(version: number): boolean {
    if (version <= this.bound) return true
    this.bound = this.wall() + Clock.AHEAD
    return version <= this.bound
  }

  /**
   * Lamport receive rule, moving the clock at most half of
   * {@link Clock.AHEAD} past the wall clock, so that our next writes stay
   * believable to peers whose clocks lag ours by up to that much.
   */
  see(version: number): void {
    if (version <= this.time) return
    if (version > this.soft) this.soft = this.wall() + Clock.AHEAD / 2
    this.time = version < this.soft ? version : Math.max(this.time, this.soft)
  }

  /**
   * Our own id was seen at `version` (believable: see accepts): the clock
   * moves past it however far ahead it is. Peers that hold it ignore every
   * version of ours below it, so writes issued there would be hidden, and
   * the node shown dead, until the wall clock caught up (a heartbeat of
   * ours forged ahead, without --keys). Those peers took the version, so
   * they take ours above it; one whose clock lags more refused it, and
   * refuses our writes only until its clock passes them.
   */
  follow(version: number): void {
    if (version > this.time) this.time = version
  }

  /** How far our snapshot may claim to hold our own past. */
  get heldThrough(): number {
    // -1, not -Infinity, so that it survives JSON
    return this.recovering ? Math.max(this.pastHeld, -1) : this.time
  }

  /** True while our past is known to exist beyond what we hold of it. */
  get recovering(): boolean {
    return this.pastHeld < this.pastHeard
  }

  /**
   * True if `version` of our own id belongs to a past incarnation: a
   * version this life never issued, or one a past showed itself at or
   * above. (A past version equal to one we issued cannot be told apart
   * here, which a clock behind its past makes likely: Incarnation compares
   * contents, and offers a peer the writes its copy skipped, R7 in
   * docs/deletes.md.)
   */
  isPast(version: number): boolean {
    return version <= this.ambiguous || !this.issued(version)
  }

  /**
   * `version` of our id is known to belong to a past incarnation (a peer's
   * digest named it, or a peer sent an update of ours we did not write).
   * Returns the version up to which this incarnation's writes must be issued
   * again (all of them so far, once the past is found inside our range), or
   * -Infinity when none need to be.
   */
  foreign(version: number): number {
    if (version > this.pastHeld) this.pastSeen = true
    if (version > this.pastHeard) this.pastHeard = version
    if (version < this.first || version <= this.ambiguous) return -Infinity
    // Past the limit, a raise is only counted (the caller learns that the
    // peer keeps it up) and the clock follows, as far as it is believable,
    // so that our next writes pass it: nothing is issued again.
    if (this.twin) {
      this.raises++
      this.follow(version)
      return -Infinity
    }
    // Our past reaches into the versions this incarnation uses: every
    // version issued so far may be a past one's too.
    this.follow(version)
    this.ambiguous = this.time
    this.raises++
    return this.twin ? -Infinity : this.time
  }

  /** Our "past" keeps moving above our writes: a live twin (see {@link Clock.TWIN_LIMIT}). */
  get twin(): boolean {
    return this.raises > Clock.TWIN_LIMIT
  }

  /** We received our own past update at `version`. */
  held(version: number): void {
    if (version > this.pastHeld) this.pastHeld = version
  }

  /**
   * A peer answered a digest that asked for our past completely, and holds
   * our id up to `version`: it has no more of our past to give.
   */
  answered(version: number): void {
    const upTo = Math.min(version, this.pastHeard)
    if (upTo > this.pastHeld) this.pastHeld = upTo
  }
}
