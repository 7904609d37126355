/**
 * Collection (docs/deletes.md, rule 4): markers wait a grace period of
 * active time (time during which the node hears from peers), then go when
 * they may: not a source's newest, nor a tombstone still beating a live
 * value. What was collected is kept as gc(S) per source and the horizon
 * (rule 5). And the view without markers (rule 3).
 */
import type { SourceLog } from './history'
import { isMarker, type DeletesHost } from './markers'
import type { Update } from './types'

interface Queued {
  readonly u: Update
  readonly at: number
}

/** Blocked markers are looked at again at most this often (a fraction of the grace), unless few. */
const RECHECK = 8

/** One node's collection of markers (see the module's comment). */
export class Collection {
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
  readonly tombKeys = new Set<string>()
  // gc(S): the highest version of S's markers collected here or at a peer that told us.
  readonly gc = new Map<string, number>()
  /** The highest version of a tombstone this node collected, or took from a peer (docs/deletes.md, rule 5). */
  horizon = -Infinity
  // Horizons peers passed on, each waiting until we hold what that peer's
  // digest named (`ids`/`at`; `next`, the first we may not hold yet: asked
  // per update while one waits, so a look costs one lookup, no allocation).
  private lent: { h: number; ids: string[]; at: number[]; next: number }[] = []

  /**
   * @param graceMs - `config.tombstone_grace`.
   * @param now - the wall clock now, µs: active time counts from here.
   * @param changed - what was collected changed (the record must be written again).
   */
  constructor(
    private readonly host: DeletesHost,
    graceMs: number,
    now: number,
    private readonly changed: () => void,
  ) {
    this.grace = graceMs * 1000
    this.lastHeard = now
  }

  /**
   * True when `took` has nothing to do for a value (no marker): no blocked
   * marker to look at again, no key that may hold a tombstone. (Per update:
   * the caller asks this first.)
   */
  get idle(): boolean {
    return this.blocked.length === 0 && this.tombKeys.size === 0
  }

  /** `u` was just recorded as its source's current mapping: a marker waits for collection. */
  took(u: Update): void {
    if (this.blocked.length > 0) this.blockedDirty = true
    if (u.deleted === true) {
      this.queue.push({ u, at: this.active })
      this.tombKeys.add(u.key)
    } else if (u.withdrawn === true) {
      this.queue.push({ u, at: this.active })
    }
  }


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
  }

  /** Look again at the blocked markers, when something changed (after collect). */
  recheck(): void {
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
    this.forgetMarker(u)
    // A tombstone may have waited for this withdrawal (beatsLive).
    if (u.withdrawn === true) this.blockedDirty = true
    this.raiseGc(u.source_id, u.version)
    this.changed()
    return true
  }

  /**
   * A peer whose whole digest named `named` passes on its horizon `h`
   * (rule 5): ours once we hold all it named. A few are kept, the latest.
   */
  lend(h: number, named: ReadonlyMap<string, number>): void {
    if (h <= this.horizon) return
    if (this.lent.length >= 4) this.lent.shift()
    this.lent.push({ h, ids: [...named.keys()], at: [...named.values()], next: 0 })
  }

  /** Whether a horizon passed on still waits (cheap: asked per update). */
  get lending(): boolean {
    return this.lent.length > 0
  }

  /** Take each horizon passed on whose peer's digest we now hold up to where it named. */
  takeLent(): void {
    const sources = this.host.history.sources
    for (let i = 0; i < this.lent.length;) {
      const l = this.lent[i]
      // Each id is passed once reached; the first one short stops the look.
      while (l.next < l.ids.length && (sources.get(l.ids[l.next])?.max ?? -Infinity) >= l.at[l.next]) l.next++
      const h = l.h
      if (h <= this.horizon) this.lent.splice(i, 1)
      else if (l.next === l.ids.length) {
        this.horizon = h
        this.changed()
        this.lent.splice(i, 1)
      } else i++
    }
  }

  /** Forget marker `u` as a collection does: a tombstone gone raises the horizon (rule 5). */
  forgetMarker(u: Update): void {
    this.host.forget(u)
    if (u.deleted === true) {
      // (At its place: a copy issued again beat only what its first version beats, R2.)
      const place = u.first ?? u.version
      if (place > this.horizon) this.horizon = place
      if (!this.host.history.get(u.key).some((m) => m.deleted === true)) this.tombKeys.delete(u.key)
    }
  }

  // Whether tombstone `t` beats a live value of its key held here, or the
  // value another source's held withdrawal names (rule 4: the withdrawal
  // may reach a node holding a value `t` beats without `t`, I3); mappings
  // `spare` says a fresh copy holds too are left out (rule 6).
  beatsLive(t: Update, spare?: (m: Update) => boolean): boolean {
    for (const m of this.host.history.get(t.key)) {
      if (spare?.(m) === true) continue
      if (!isMarker(m)) {
        if (this.host.beats(t, m)) return true
      } else if (m.withdrawn === true && typeof m.value === 'number' && m.source_id !== t.source_id) {
        if (this.host.beats(t, { key: m.key, value: null, source_id: m.source_id, version: m.value })) return true
      }
    }
    return false
  }

  raiseGc(id: string, version: number): void {
    if ((this.gc.get(id) ?? -Infinity) >= version) return
    this.gc.set(id, version)
    this.changed()
  }


  /** `sources(key)`: the key's values no held tombstone beats (rule 3). */
  visible(key: string, mappings: Update[]): Update[] {
    const tombs = this.tombKeys.has(key) ? mappings.filter((m) => m.deleted === true) : []
    if (tombs.length === 0) {
      if (this.tombKeys.has(key) && this.host.history.get(key).every((m) => m.deleted !== true)) this.tombKeys.delete(key)
      return mappings.some(isMarker) ? mappings.filter((m) => !isMarker(m)) : mappings
    }
    return mappings.filter((m) => !isMarker(m) && !tombs.some((t) => this.host.beats(t, m)))
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
