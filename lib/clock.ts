/**
 * The Lamport clock of one node, and what it must do when it learns that an
 * earlier incarnation of itself (a restart without saved state) already used
 * versions it might issue again.
 *
 * A fresh clock starts at the wall clock in microseconds, so a restarted node
 * normally issues versions above anything its past incarnation used. Two
 * things remain possible and are handled here:
 * - the past ran ahead of the wall clock (bursts of writes, or a peer with a
 *   fast clock): a peer names our id above our clock. We jump past it, and
 *   every write this incarnation made at or below it is issued again above
 *   it (`Gossip` does the rewriting), since peers would ignore it;
 * - our past's mappings live on at peers. They are ours, so we ask for them
 *   (our digest names us where our knowledge of the past stops) until we
 *   hold as much of it as any peer has told us exists.
 */
export class Clock {
  /** The highest version seen or issued. */
  time: number
  /** The lowest version this incarnation issues. */
  readonly start: number
  /** Our versions in [start, ambiguous] may also be a past incarnation's. */
  ambiguous = -Infinity
  /** The highest version of our id that a peer holds from our past. */
  pastHeard = -Infinity
  /** How far, in version order, we hold our past. */
  pastHeld = -Infinity

  /**
   * @param restored - the clock of a saved state, if any: its past is held.
   * @param now - wall clock in microseconds.
   */
  constructor(restored: number | undefined, now: number) {
    if (restored === undefined) {
      this.time = now
    } else {
      this.time = Math.max(restored, now)
      this.pastHeld = this.pastHeard = restored
    }
    this.start = this.time + 1
  }

  /** The version for a new local write. */
  tick(): number {
    return ++this.time
  }

  /** Lamport receive rule. */
  see(version: number): void {
    if (version > this.time) this.time = version
  }

  /** True while our past is known to exist beyond what we hold of it. */
  get recovering(): boolean {
    return this.pastHeld < this.pastHeard
  }

  /** True if `version` of our own id may belong to a past incarnation. */
  isPast(version: number): boolean {
    return version < this.start || version <= this.ambiguous
  }

  /**
   * A peer holds our id at `version` (from its digest or an update it sent).
   * Returns the version up to which this incarnation's writes must be issued
   * again, or -Infinity when none need to be.
   */
  heard(version: number): number {
    if (version > this.time) {
      this.time = version
      this.ambiguous = version
      this.pastHeard = Math.max(this.pastHeard, version)
      return version
    }
    if (this.isPast(version) && version > this.pastHeard) this.pastHeard = version
    return -Infinity
  }

  /** We received our own past update at `version`. */
  held(version: number): void {
    if (version > this.pastHeld) this.pastHeld = version
  }

  /**
   * A peer answered our question completely and told us it holds our id up
   * to `version`: there is no past there beyond it.
   */
  answered(version: number): void {
    const upTo = Math.min(version, this.pastHeard)
    if (upTo > this.pastHeld) this.pastHeld = upTo
  }

  /**
   * Where our digest names ourselves, given the highest version of ours we
   * hold; undefined to leave ourselves out, which asks for everything.
   */
  digestVersion(ownMax: number): number | undefined {
    const v = this.recovering ? this.pastHeld : ownMax
    return v === -Infinity ? undefined : v
  }
}
