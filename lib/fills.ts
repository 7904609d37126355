/**
 * Gap fills: mappings a peer may lack though its digest names their source
 * at or above them, offered to it once each. A mapping taken below its
 * source's max filled a gap here (our own past come back after a restart,
 * a copy refetched); a twinned source's mappings interleave; our own log
 * rebuilt after a restart that lost it may differ from every peer's copy.
 */
import type { Passes } from './filter'
import type { History } from './history'
import { TWIN_OFFER_MS, MAX_TWINS } from './shape'
import type { Update } from './types'

// Most mappings of a source offered at once when it is found twinned: half
// the gap fills kept (see filled).
const TWIN_OFFER_HELD = 2048
// Most sources twinned at once (peers' claims past it are ignored).
const MAX_TWINNED = 1024

/** A peer's view of the gap fills (see GapFills.fillsFor). */
export interface FillCursor {
  /** How far, in the node's list of gap fills, this peer has been looked at. */
  fillAt: number
  /** Gap fills this peer was behind on when looked at: offered once it passes them. */
  fillWait: Update[] | null
  /** How far, in our own rebuilt log (see Incarnation.rebuiltTo), this peer has been offered it. */
  pastAt: number
}

/** What the gap fills read of the node's own id (see Incarnation.rebuiltTo). */
export interface RebuiltLog {
  readonly rebuiltTo: number
  readonly rebuiltFrom: number
  readonly settled: boolean
}

/** One node's gap fills (see the module's comment). */
export class GapFills {
  // Mappings taken below their source's max here: they filled a gap (our own
  // past come back after a restart, a copy refetched), so peers that
  // passed them may lack them too. Each is offered once to every peer whose
  // digest names its source at or above it; fillBase counts those dropped
  // from the front.
  private fills: Update[] = []
  private fillBase = 0
  // Sources two live nodes write as, each until when (ms): see twinned.
  private twinSources: Map<string, number> | null = null
  // Mappings offered as gap fills because their source is twinned: once each.
  private readonly twinOffered = new WeakSet<Update>()

  constructor(
    private readonly id: string,
    private readonly history: History,
    private readonly incarnation: RebuiltLog,
  ) {}

  /**
   * Two live nodes write as `source` (twins; the caller saw signs of both).
   * Their versions interleave, so a peer may come to hold the source past
   * a mapping of one twin before it got it, and is then never sent it (its
   * digest names the source above it). For `ms` from now, each mapping of
   * the source is therefore offered as a gap fill (see fillsFor), once to
   * every peer whose digest names the source at or above it: the newest
   * TWIN_OFFER_HELD held now, and each taken or written until then. A peer
   * that lacked one takes it below its max, so offers it on in turn.
   */
  twinned(source: string, ms = TWIN_OFFER_MS): void {
    const was = this.isTwinned(source)
    const sources = (this.twinSources ??= new Map())
    if (!was && sources.size >= MAX_TWINNED) return
    const until = Date.now() + ms
    if (until > (sources.get(source) ?? -Infinity)) sources.set(source, until)
    if (was) return
    const held = this.history.news(source, -Infinity)
    for (let i = Math.max(0, held.length - TWIN_OFFER_HELD); i < held.length; i++) this.offerTwin(held[i])
  }

  /**
   * The twinned sources to tell a peer (a digest end's `twins`), each with
   * the whole seconds it stays so (what a peer passes on back cannot
   * outlast the sign it came from), or undefined.
   */
  twinsToTell(): Record<string, number> | undefined {
    const sources = this.twinSources
    if (sources === null) return undefined
    const now = Date.now()
    let out: Record<string, number> | undefined
    let n = 0
    for (const [id, until] of sources) {
      const ms = Math.floor((until - now) / 1000) * 1000
      if (until <= now) sources.delete(id)
      if (ms <= 0 || n >= MAX_TWINS) continue
      ;(out ??= {})[id] = ms
      n++
    }
    if (sources.size === 0) this.twinSources = null
    return out
  }

  // Whether `source` is twinned now (see twinned).
  private isTwinned(source: string): boolean {
    const sources = this.twinSources
    const until = sources?.get(source)
    if (until === undefined) return false
    if (until > Date.now()) return true
    sources?.delete(source)
    if (sources?.size === 0) this.twinSources = null
    return false
  }

  /** `u` was just taken or written: offered on if it filled a gap (`below` its source's max) or its source is twinned. */
  took(u: Update, below: boolean): void {
    if (below) this.filled(u)
    else if (this.twinSources !== null && this.isTwinned(u.source_id)) this.offerTwin(u)
  }

  // Offer `u`, a mapping of a twinned source, as a gap fill (once).
  private offerTwin(u: Update): void {
    if (this.twinOffered.has(u) || !this.history.isCurrent(u)) return
    this.twinOffered.add(u)
    this.filled(u)
  }

  // `u` filled a gap here: offer it on (see fills), keeping the list bounded.
  private filled(u: Update): void {
    const fills = this.fills
    fills.push(u)
    if (fills.length > 4096) {
      const drop = fills.length - 2048
      fills.splice(0, drop)
      this.fillBase += drop
    }
  }

  /**
   * The mappings that filled a gap here (see `fills`) that a peer (`at`
   * its cursor) has passed (its digest `heard` names their source at or
   * above them) without being offered them: at most `mtu`, each offered
   * once per peer. A peer behind one is offered it once it passes it (it
   * may pass it through a copy with the gap). Null when there are none.
   */
  fillsFor(at: FillCursor, heard: ReadonlyMap<string, number>, passes: Passes, mtu: number): Update[] | null {
    const fills = this.fills
    const end = this.fillBase + fills.length
    if (at.fillAt >= end && at.fillWait === null) return this.pastFills(at, heard, passes, mtu, null)
    const waiting = at.fillWait ?? []
    for (let i = Math.max(at.fillAt - this.fillBase, 0); i < fills.length; i++) waiting.push(fills[i])
    at.fillAt = end
    const out: Update[] = []
    const still: Update[] = []
    for (const u of waiting) {
      if (!this.history.isCurrent(u) || (passes !== null && !passes(u.source_id, u.key))) continue
      if ((heard.get(u.source_id) ?? -Infinity) < u.version || out.length >= mtu) still.push(u)
      else out.push(u)
    }
    // Bounded: the oldest go first (a peer that never passes them needs none).
    if (still.length > 4096) still.splice(0, still.length - 4096)
    at.fillWait = still.length === 0 ? null : still
    return this.pastFills(at, heard, passes, mtu, out.length === 0 ? null : out)
  }

  // Our own log as rebuilt after a restart that lost it (see
  // Incarnation.rebuiltTo): each peer's copy of us was our old log as of
  // some moment, so a peer may name us past a mapping of the rebuilt log
  // it lacks (the old log had replaced it by a write no peer kept). Once
  // our past is settled, each peer is offered, in version order, every
  // mapping of ours in the rebuilt range up to where its digest names us,
  // once per stream: versions unchanged, so a peer takes only what it
  // lacks (attack round 3, finding C). Added to `out`, within `mtu`.
  private pastFills(at: FillCursor, heard: ReadonlyMap<string, number>, passes: Passes, mtu: number, out: Update[] | null): Update[] | null {
    const incarnation = this.incarnation
    const upTo = Math.min(heard.get(this.id) ?? -Infinity, incarnation.rebuiltTo)
    const from = Math.max(at.pastAt, incarnation.rebuiltFrom)
    const room = mtu - (out === null ? 0 : out.length)
    if (upTo <= from || room <= 0 || !incarnation.settled) return out
    const offered = out === null ? null : new Set(out)
    // A bounded look each time: what a filter or `out` leaves out, next time.
    const limit = mtu + (offered?.size ?? 0) + 1
    const news = this.history.news(this.id, from, limit)
    let last = news.length < limit ? upTo : Math.min(upTo, news[news.length - 1].version)
    for (const u of news) {
      if (u.version > upTo) break
      if ((passes !== null && !passes(u.source_id, u.key)) || offered?.has(u) === true) continue
      if ((out?.length ?? 0) >= mtu) {
        last = u.version - 1
        break
      }
      ;(out ??= []).push(u)
    }
    at.pastAt = last
    return out
  }

}
