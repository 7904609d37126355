/**
 * Stale copies (docs/deletes.md, rule 6): a peer whose digest names a
 * source below our gc of it holds a copy that may keep what collected
 * markers replaced, and is told (a stale notice on our digest end). A node
 * told so of its own copy refetches the source: what it holds below the gc
 * is suspect until a fresh copy sends it again, and what none sends again
 * goes.
 */
import { reportInvalid } from './codes'
import type { Collection } from './collection'
import { isMarker, type DeletesHost, type DoneFields, type Link, type Links, type Refetch, type StreamLike } from './markers'
import { covers, type IdRange } from './reconcile'
import type { Life } from './shape'
import type { StaleNotice, Update } from './types'

// A refetch that ended with no serving peer: nothing named.
const NONE_NAMED: ReadonlyMap<string, number> = new Map()

/** One node's stale copies and refetches (see the module's comment). */
export class StaleCopies {
  readonly refetches = new Map<string, Refetch>()
  // Per source: the gc a refetch of it completed for (a notice at or below it is old news).
  private readonly refetchedFor = new Map<string, number>()
  // The node was restored with writes of its own (a snapshot, a store),
  // up to this version of its id (else -Infinity): they may be older than
  // deletes of its own peers collected.
  restoredOwn = -Infinity
  // Under config.security without a private key: notices cannot be signed.
  cannotSign = false
  // Per source whose current life began without state: that life's first
  // version (its floor) and how far it holds its past whole, from its
  // digest ends and those of peers that know it. A notice carries them: past
  // the life may never have seen is not a fresh copy of it to drop.
  readonly lives = new Map<string, Life>()
  // We wrote a marker this life: a collector of it must learn our floor.
  markedOwn = false
  // Refetches abandoned with suspects (rule 6, abandoned): while one of them
  // is still current here our copy of the source is no fresh copy, so our
  // digest names the source below the gc, as during the refetch, and no
  // refetch takes us for its server (outside model checker seed 1609902).
  private readonly doubted = new Map<string, Refetch>()
  // Notices not believed yet (the notifier named the source below the gc,
  // and our copy had not reached it): gc, and the life the notice named.
  // Believed once our copy reaches the gc: a doubted copy's answers carry
  // us there after telling us (rule 6, I2).
  private readonly pending = new Map<string, [number, number | undefined, number | undefined]>()

  constructor(
    private readonly host: DeletesHost,
    private readonly collection: Collection,
    private readonly links: Links,
    private readonly changed: () => void,
  ) {}

  /**
   * An update of `source` at `version` came from `stream`; `held` is our
   * mapping at that version now (the update, if `taken`, or the same one
   * held before), if any. While `source` is refetched: from a fresh peer
   * serving it, it confirms what we hold; from any other, a mapping taken
   * below the gc is suspect too.
   */
  received(stream: object, source: string, version: number, held: Update | undefined, taken: boolean): void {
    if (this.pending.size > 0) this.reached(source)
    if (this.refetches.size === 0) return
    const r = this.refetches.get(source)
    if (r === undefined) return
    const l = this.links.peek(stream)
    const p = l?.pass?.get(source)
    if (p !== undefined && p.r === r && p.skip === 0) {
      if (version > p.at) p.at = version
      if (held !== undefined) r.suspects.delete(held)
      r.since = this.collection.activeTime
      // Sent as far as its digest named it: done, without waiting for its
      // next digest on this stream (which may never come; attack found it).
      if (p.at >= p.target) {
        l?.pass?.delete(source)
        this.refetched(source, r, p.named)
      }
    } else if (held !== undefined && taken && version < r.gc && (version >= r.floor || version <= r.held)) {
      r.suspects.add(held)
    }
    if (held !== undefined && version < r.gc && version > r.below) r.below = version
    // Our copy reached the gc holding no suspect: nothing of it can be
    // stale, served or not. The refetch ends, and we know the gc from now
    // on: abandoned instead, it was forgotten, and we carried a stale
    // copy's max past the gc untold (outside red team, issue 18, B2).
    if (this.refetches.get(source) === r && this.fresh(source, r)) this.refetched(source, r, NONE_NAMED)
  }

  // Whether our copy of `source` reaches the refetch's gc with no suspect
  // still current (one replaced since is no longer ours to doubt: dropped).
  private fresh(source: string, r: Refetch): boolean {
    const history = this.host.history
    if ((history.sources.get(source)?.max ?? -Infinity) < r.gc) return false
    for (const u of r.suspects) {
      if (history.isCurrent(u)) return false
      r.suspects.delete(u)
    }
    return true
  }

  /**
   * What our digest to `stream` names for `source` while we refetch it:
   * from where the fresh peer serving it has sent it so far (so that it
   * sends the source whole) but no further than `max`, our max of it (a
   * value rule 5 refused holds it back: named past, the next answer would
   * carry our max past a value we lack), and to every other peer below the
   * gc (our copy proves nothing fresh). Undefined when `source` is not
   * refetched.
   */
  naming(stream: object, source: string, max: number): number | undefined {
    if (this.refetches.size === 0 && this.doubted.size === 0) return undefined
    const r = this.refetches.get(source)
    if (r === undefined) return this.doubting(source, max)
    const p = this.links.peek(stream)?.pass?.get(source)
    if (p !== undefined && p.r === r) return Math.min(p.at, max)
    return Math.min(max, r.below)
  }

  // naming() for a source whose refetch was abandoned: below the gc while a
  // suspect of it is still current here. The doubt gone, a copy that
  // reaches the gc is fresh: we keep the gc, as a refetch that ends does.
  private doubting(source: string, max: number): number | undefined {
    const r = this.doubted.get(source)
    if (r === undefined) return undefined
    for (const u of r.suspects) if (this.host.history.isCurrent(u)) return Math.min(max, r.below)
    this.doubted.delete(source)
    if ((this.host.history.sources.get(source)?.max ?? -Infinity) >= r.gc) this.collection.raiseGc(source, r.gc)
    return undefined
  }

  // A pending notice of `source` whose gc our copy reached is believed now.
  private reached(source: string): void {
    const p = this.pending.get(source)
    if (p === undefined || (this.host.history.sources.get(source)?.max ?? -Infinity) < p[0]) return
    this.pending.delete(source)
    this.believe(null, source, p[0], p[1], p[2], false)
  }

  /** Whether a refetch is under way (our answers then leave suspects out). */
  get refetching(): boolean {
    return this.refetches.size > 0
  }

  /** Whether intake must report the updates it takes (a refetch, or a notice pending). */
  get watching(): boolean {
    return this.refetches.size > 0 || this.pending.size > 0
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

  // Refetches: a peer whose digest names the source at or above the gc,
  // that vouches for its copy of it (neither fetching its own past nor
  // withholding suspects of that source: one refetching another source
  // still sends this one whole, and two refetching each other's sources
  // must serve each other; attack found both abandoned) and, under
  // signatures, whose stream the transport authenticated, serves it: our
  // digest to it names the source from scratch, and once it has sent the
  // source as far as it names it, what it did not send again of our
  // suspects goes.
  serve(stream: StreamLike, l: Link, done: DoneFields, heard: ReadonlyMap<string, number>, judge: boolean): void {
    if (this.refetches.size === 0 && this.doubted.size === 0) return
    const vouches = judge && !done.recovering && done.withheld !== true && (this.host.security === undefined || stream.peer !== undefined)
    // A doubted copy (refetch abandoned) refetches again from a peer that
    // would have served it: once every collector restarted from nothing,
    // nobody tells it again (outside model checker seed 3102968).
    if (vouches && this.doubted.size > 0) {
      for (const [id, r] of this.doubted) {
        if (done.withheld?.has(id) === true || !((heard.get(id) ?? -Infinity) >= r.gc)) continue
        this.doubted.delete(id)
        if ([...r.suspects].some((u) => this.host.history.isCurrent(u))) this.startRefetch(id, r.gc, r.floor === -Infinity ? undefined : [r.floor, r.held])
      }
    }
    for (const [id, r] of this.refetches) {
      const p = l.pass?.get(id)
      const serving = p !== undefined && p.r === r
      if (!vouches || done.withheld?.has(id) === true) {
        if (serving) l.pass?.delete(id)
        continue
      }
      const v = heard.get(id)
      if (v === undefined || v < r.gc) continue
      if (!serving) {
        // Answers to questions we asked before (naming the source below
        // the gc, not from scratch) are still to come: they serve nothing.
        const skip = stream.questions - (done.reply ? 1 : 0)
        ;(l.pass ??= new Map()).set(id, { r, at: -Infinity, target: v, skip, named: new Map(heard) })
        r.since = this.collection.activeTime
      } else if (p.skip > 0) {
        if (done.reply) p.skip--
        p.named = new Map(heard)
      } else if (p.at < v) {
        p.target = v
        p.named = new Map(heard)
      } else {
        l.pass?.delete(id)
        this.refetched(id, r, heard)
      }
    }
  }

  // Done: a fresh copy was sent whole. Our suspects it did not send again
  // were replaced where it comes from, by markers since collected: they go
  // as a collection would take them (a tombstone beating a live value here
  // waits for rule 4, unless the serving peer holds that value too: its
  // source replaced the tombstone there, and kept it would wait for a
  // withdrawal that never comes, seed 2443055; a tombstone gone raises
  // the horizon). `named`: what the serving peer's digest named.
  private refetched(id: string, r: Refetch, named: ReadonlyMap<string, number>): void {
    this.refetches.delete(id)
    this.doubted.delete(id)
    this.changed()
    if ((this.refetchedFor.get(id) ?? -Infinity) < r.gc) this.refetchedFor.set(id, r.gc)
    const history = this.host.history
    let dropped = 0
    for (const u of r.suspects) {
      if (!history.isCurrent(u)) continue
      if (u.deleted === true && this.collection.beatsLive(u, (m) => this.servedToo(m, named))) continue
      this.collection.forgetMarker(u)
      dropped++
    }
    this.collection.raiseGc(id, r.gc)
    this.host.emit('refetched', id, dropped)
  }

  // Whether the serving peer holds `m` too: it named m's source at or above
  // m, and our copy of that source, holding m still, is at least as far
  // (both are that source's log as of some moment, I1; ours the later).
  private servedToo(m: Update, named: ReadonlyMap<string, number>): boolean {
    const theirs = named.get(m.source_id)
    return theirs !== undefined && theirs >= m.version && (this.host.history.sources.get(m.source_id)?.max ?? -Infinity) >= theirs
  }

  // A refetch no fresh copy served for a grace of active time: none may be
  // left (the collector restarted from nothing, or is gone). Its suspects
  // are kept and sent again, and the node says so; a collector that meets
  // it later tells it again.
  abandon(): void {
    for (const [id, r] of this.refetches) {
      if (this.collection.activeTime - r.since <= this.collection.grace) continue
      this.refetches.delete(id)
      if (r.suspects.size > 0) this.doubted.set(id, r)
      this.changed()
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
  judge(l: Link, heard: ReadonlyMap<string, number>, range: IdRange): void {
    if (this.collection.gc.size === 0 && this.doubted.size === 0) return
    const parted = range.after !== undefined || range.through !== undefined
    // Of our own id only once we vouch for it: we alone serve that refetch,
    // and fetching our past waits for the peer's copy, which a refetch
    // withholds (outside model checker seed 1500607: refetched, abandoned
    // and told again for good, never served).
    const own = this.host.selfUnsure() ? this.host.id : undefined
    // A doubted copy's gc too: its answers carry a peer's max past the gc
    // (it sends its copy whole), so the peer must know the gc first (I2).
    let gcs: ReadonlyMap<string, number> = this.collection.gc
    if (this.doubted.size > 0) {
      const all = new Map(gcs)
      for (const [id, r] of this.doubted) if (r.gc > (all.get(id) ?? -Infinity) && this.doubting(id, Infinity) !== undefined) all.set(id, r.gc)
      gcs = all
    }
    for (const [id, gc] of gcs) {
      if (id === own) continue
      const named = heard.get(id)
      if (named !== undefined && named >= gc) continue
      if (parted && !covers(range, id)) continue
      const told = l.told?.get(id)
      if (told !== undefined && told[0] >= gc && this.collection.activeTime - told[1] <= this.collection.grace) continue
      ;(l.told ??= new Map()).set(id, [gc, this.collection.activeTime])
      const life = this.lives.get(id)
      const n = named ?? 0
      ;(l.stale ??= new Map()).set(id, life === undefined || life[0] > gc ? [gc, n] : life[1] === -Infinity ? [gc, n, life[0]] : [gc, n, life[0], life[1]])
    }
  }

  /**
   * Life floors a peer's digest end names (DigestDone.lives). Under
   * config.security only the peer's own, on a stream the transport
   * authenticated: a forged floor would keep a stale copy.
   */
  learn(stream: StreamLike, lives: ReadonlyMap<string, Life>): void {
    for (const [id, life] of lives) {
      if (id === this.host.id || !this.host.accepts(life[0])) continue
      if (this.host.security !== undefined && stream.peer !== id) continue
      // A later life, or the same one holding more of its past.
      const was = this.lives.get(id)
      if (was === undefined || life[0] > was[0] || (life[0] === was[0] && life[1] > was[1])) this.lives.set(id, life)
    }
  }

  /**
   * The life floors our digest end to the peer of `l` names (DigestDone.lives),
   * each once per stream: ours once we wrote a marker, then those we learned.
   */
  livesToSay(l: Link | undefined): [string, Life][] {
    const out: [string, Life][] = []
    const untold = (id: string, life: Life): boolean => {
      const told = l?.livesTold?.get(id)
      return told === undefined || told[0] !== life[0] || told[1] !== life[1]
    }
    const own = this.host.life()
    if (own !== undefined && (this.markedOwn || this.collection.gc.has(this.host.id)) && untold(this.host.id, own)) out.push([this.host.id, own])
    // Under signatures a peer takes only the sender's own.
    if (this.host.security === undefined) for (const [id, life] of this.lives) if (untold(id, life)) out.push([id, life])
    return out
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
      for (const [id, gc] of this.collection.gc) {
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
    // Our own id to a peer not told yet of our gc (see judge: not while we
    // fetch our past): nothing of it, or its max of us would pass the gc
    // unquestioned.
    const id = this.host.id
    const gc = this.collection.gc.get(id)
    if (gc !== undefined && !((heard.get(id) ?? -Infinity) >= gc) && !((this.links.peek(stream)?.told?.get(id)?.[0] ?? -Infinity) >= gc)) {
      ;(out ??= new Set()).add(id)
    }
    const stale = this.links.peek(stream)?.stale
    if (stale === null || stale === undefined) return out
    // A peer naming none of the source holds no stale copy of it: it is
    // sent the source with the notice, on the same digest end. Not in an
    // answer to its answer, which has no end: it would hold a fresh copy
    // without knowing the gc, and pass it on to a stale copy unquestioned
    // (attack found a node restarted from nothing taking both).
    // A doubted copy is no fresh copy: not with the notice either, to a peer
    // naming none of it (a notice lost with the connection would leave
    // its max past the gc, untold).
    for (const id of stale.keys()) if (answer || heard.has(id) || this.doubted.has(id)) (out ??= new Set()).add(id)
    return out
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
  notices(stream: StreamLike, stale: ReadonlyMap<string, StaleNotice>, heard: ReadonlyMap<string, number>, whole: IdRange | null): void {
    const history = this.host.history
    for (const [id, [gc, ours, told, toldHeld]] of stale) {
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
        // (What we restored, not our max now: a restored node takes its later
        // writes back from peers first, which carried the max past the gc
        // and kept this silent; outside red team, issue 18.)
        // (Only while a value of ours that state held is still current: a
        // key this life wrote since holds this life's write, and a marker
        // brings nothing back; else a node restarted from its newest state
        // was told so once peers collected its own markers of this life,
        // red team 18, seed 1001040.)
        if (this.restoredOwn !== -Infinity && this.restoredOwn < gc && direct && this.restoredValueHeld()) {
          reportInvalid(
            stream,
            { source_id: id, version: gc },
            `restored-stale: peers collected deletes of this node up to version ${gc}, beyond the state it was restored from; restart it from a newer saved state, or from nothing once a peer holds its writes (docs/deletes.md, Limits)`,
            'restored_stale',
          )
        }
        continue
      }
      // Not believed yet: once our copy reaches the gc (an answer of a
      // doubted copy, which told us first, carries us there).
      if (!direct && max < gc) {
        if ((this.pending.get(id)?.[0] ?? -Infinity) < gc) this.pending.set(id, [gc, told, toldHeld])
        continue
      }
      this.believe(stream, id, gc, told, toldHeld, direct)
    }
  }

  // A notice of `id` believed (from `stream`; null: pending until now);
  // `direct`: from a peer naming the source at or above the gc.
  private believe(stream: object | null, id: string, gc: number, told: number | undefined, toldHeld: number | undefined, direct: boolean): void {
    if ((this.pending.get(id)?.[0] ?? Infinity) <= gc) this.pending.delete(id)
    // A doubted copy told again by a peer that cannot serve it (its copy is
    // no fresher) stays doubted: refetching again would serve nothing, and
    // two doubted copies telling each other never got quiet (outside model
    // checker seed 2300087).
    if (!direct && this.doubted.has(id)) return
    // Knowing this gc already, we collected up to it or refetched for it;
    // not so while our copy is doubted (an abandoned refetch's suspects
    // still current here), whatever we collected since: the collector
    // telling us again is what ends the doubt (outside model checker seed
    // 3102968: ignored, the copy named the source below the gc for good).
    if (!this.doubted.has(id) && ((this.refetchedFor.get(id) ?? -Infinity) >= gc || (this.collection.gc.get(id) ?? -Infinity) >= gc)) return
    const r = this.refetches.get(id)
    if (r !== undefined && r.gc >= gc) return
    // The source's life, as the notice says or as we know it.
    const known = this.lives.get(id)
    const life: Life | undefined = told !== undefined ? [told, toldHeld ?? -Infinity] : known !== undefined && known[0] <= gc ? known : undefined
    // A kept notice widens a refetch under way without restarting its
    // grace: its peers cannot serve it any sooner (outside model checker
    // seed 2300087, streams not quiet for a grace more).
    this.startRefetch(id, gc, life, stream === null ? r?.since : undefined)
    if (!this.refetches.has(id)) return
    // Our copy was stale, and we may have sent it on, carrying a peer's
    // max past the gc too: every peer hears of it (one that knew the gc
    // has nothing to do; one whose copy is below it hears from a collector).
    for (const s of this.host.streams()) {
      if (s === stream) continue
      ;(this.links.link(s).stale ??= new Map()).set(id, life === undefined ? [gc, 0] : life[1] === -Infinity ? [gc, 0, life[0]] : [gc, 0, life[0], life[1]])
    }
  }

  // Whether a value of ours the restored state held (at or below
  // restoredOwn) is still our current mapping of its key.
  private restoredValueHeld(): boolean {
    for (const u of this.host.history.news(this.host.id, -Infinity)) {
      if (u.version > this.restoredOwn) return false
      if (!isMarker(u)) return true
    }
    return false
  }

  // What we hold of the source below the gc is suspect until a fresh copy
  // sends it again (a refetch under way for a lower gc widens). Not below
  // the floor of the source's current life, begun without state, and above
  // how far that life holds its past whole: that is past the life may never
  // have seen (its peers held none of it), so a fresh copy of the life lacks
  // it without its markers having replaced it; the source judges it once
  // shown it (R1, rule 5).
  startRefetch(id: string, gc: number, life?: Life, since = this.collection.activeTime): void {
    const floor = life?.[0] ?? -Infinity
    const held = life?.[1] ?? -Infinity
    const suspects = new Set<Update>()
    let below = -Infinity
    for (const u of this.host.history.news(id, -Infinity)) {
      if (u.version >= gc) break
      if (u.version >= floor || u.version <= held) suspects.add(u)
      below = u.version
    }
    const r = this.refetches.get(id)
    // Nothing held there and our copy reaches the gc: nothing can be stale.
    // One that does not (a node started without state, told the gc before
    // it got the source) refetches all the same: what a peer naming the
    // source below the gc sends it meanwhile is suspect (seed 907083: a
    // stale copy taken so, then carried past the gc by a fresh peer's
    // newer mappings, was never questioned again).
    if (suspects.size === 0 && (this.host.history.sources.get(id)?.max ?? -Infinity) >= gc) {
      if (r !== undefined) this.refetches.delete(id)
      if ((this.refetchedFor.get(id) ?? -Infinity) < gc) this.refetchedFor.set(id, gc)
      this.collection.raiseGc(id, gc)
      return
    }
    this.refetches.set(id, { gc, suspects, below, floor, held, since })
    this.changed()
    this.host.emit('refetch', id, gc, suspects.size)
  }
}
