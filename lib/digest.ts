/**
 * Our digest to one peer (the paper's section 3.1: for every source, the
 * highest version we hold of it) and its end marker. A digest too long for
 * one message goes in parts, one part per exchange; under `mtu_bytes` the
 * digest with its end takes at most half a message.
 */
import type { FlowControl } from './flow'
import type { Passes } from './filter'
import type { History, SourceLog } from './history'
import { ALL, covers, DigestMeter, lacking, newsOf, type IdRange } from './reconcile'
import type { Replica } from './replica'
import { EXTRA_BYTES } from './deletes'
import type { StreamLike } from './markers'
import type { DigestDone, DigestEntry, Filter, Message } from './types'
import { PROTOCOL } from './shape'

/**
 * Most sources one digest names: more are sent in parts, one part per
 * exchange, so a digest fits a message and every source is named within
 * ceil(sources / DIGEST_PART) exchanges.
 */
export const DIGEST_PART = 1024
/** Most digest entries taken from a peer before its end marker: four parts. */
export const MAX_HEARD = 4 * DIGEST_PART
const DONE: DigestDone = Object.freeze({ digest: true, done: true, protocol: PROTOCOL })
const REPLY: DigestDone = Object.freeze({ digest: true, done: true, reply: true, protocol: PROTOCOL })

/** What a digest needs of the exchange with the peer it goes to. */
export interface DigestPeer extends StreamLike {
  /** The part of the ids our last digest to this peer covered. */
  part: IdRange
  /** The bytes of our last digest to this peer, its end included (with mtu_bytes). */
  digestBytes: number
  /** What our digests to this peer name: through our filter and the one it announced. */
  readonly digestPasses: Passes
  /** This peer answered a question for our past completely. */
  readonly verified: boolean
  /** This peer showed us a version of ours from a past incarnation. */
  readonly pastShown: boolean
  /** This peer refetches our own id: it withholds its copy of it. */
  readonly withholdsOwn: boolean
  /** This peer has shown us every update of ours up to here. */
  readonly ownSeen: number
  /** What our latest digest to this peer named our own id at (-Infinity: not at all). */
  ownNamed: number
  /** Our latest digest to this peer asked for our past (its end says `past`). */
  asksPast: boolean
  /** The peer's own id while its digest asks for its past (its end says `past`). */
  readonly peerPast: string | undefined
  readonly streamFilter: Filter | undefined
  readonly takes: boolean
  readonly sends: boolean
  /** Updates the node held that the peer lacked at the last exchange. */
  readonly behind: { readonly them: number }
}

/**
 * Push our digest's entries (not its end) to `peer` onto `out`; `askAll`
 * asks for everything of ours the peer holds beyond the past we hold.
 * Returns where it asks for our past from, or null if it does not.
 */
export function writeDigest(replica: Replica, peer: DigestPeer, out: { push(m: Message): boolean }, askAll: boolean, mtuBytes: number, flowOn: boolean): number | null {
  const id = replica.id
  const history = replica.history
  const sources = history.sources
  // A peer that answered a question for our past completely holds no
  // more of it than we do: to it we name ourselves as far as we hold.
  const incarnation = replica.incarnation
  // DIGEST_PART, smaller only in tests (config.digest_part).
  const part = Math.min(replica.digestPart ?? DIGEST_PART, DIGEST_PART)
  const askPast = askAll || (incarnation.clock.recovering && incarnation.asks(peer))
  // The end's room for the delete logic's fields counts against the
  // message too, and for our id when it asks for our past (`past`).
  const extra = mtuBytes === Infinity ? 0 : (replica.deletes.quiet(peer) ? 0 : EXTRA_BYTES) + (askPast ? id.length + 12 : 0)
  const meter = mtuBytes === Infinity ? null : new DigestMeter(mtuBytes, id, flowOn, extra)
  // The first entry says our protocol, ahead of any delta of a reply
  // (docs/wire.md, "Protocol").
  let mark = true
  if (sources.size < part && (meter === null || meter.whole(sources.values(), id))) {
    for (const log of sources.values()) {
      if (log.id === id) continue
      const max = named(replica, peer, log)
      if (max !== -Infinity) {
        out.push(entry(log.id, max, mark))
        mark = false
      }
    }
    peer.part = ALL
  } else {
    // In parts: the ids after where the last part to this peer ended.
    const ids = history.sortedIds()
    const after = peer.part.through
    let i = after === undefined ? 0 : upperBound(ids, after)
    if (i >= ids.length) i = 0
    const first = i
    let count = 0
    meter?.start(first === 0 ? undefined : ids[first - 1])
    for (; i < ids.length && count < part - 1; i++) {
      if (ids[i] === id) continue
      const max = named(replica, peer, sources.get(ids[i]) as SourceLog)
      if (meter !== null && !meter.add(ids[i], max)) break
      if (max !== -Infinity) {
        out.push(entry(ids[i], max, mark))
        mark = false
      }
      count++
    }
    peer.part = { after: first === 0 ? undefined : ids[first - 1], through: i >= ids.length ? undefined : ids[i - 1] }
  }
  peer.digestBytes = meter === null ? 0 : meter.bytes + extra
  // Asking for our past names us where our knowledge of it, and of what
  // this peer already showed us, stops.
  const ownLog = sources.get(id)
  const own = ownLog === undefined ? -Infinity : named(replica, peer, ownLog)
  // Each peer is asked for all it holds of our past, from where it has
  // shown us so far: what we hold "without a gap" was judged from other
  // peers' copies, and one of ours we sent meanwhile may hold a gap (gap
  // fills mend those once we have what was missing).
  const mine = askPast ? peer.ownSeen : own
  peer.ownNamed = mine >= 0 ? mine : -Infinity
  peer.asksPast = askPast
  if (mine >= 0) out.push(entry(id, mine, mark))
  return askPast ? mine : null
}

// A digest entry; the first of a digest says our protocol.
function entry(source_id: string, version: number, first: boolean): DigestEntry {
  return first ? { digest: true, source_id, version, protocol: PROTOCOL } : { digest: true, source_id, version }
}

/**
 * What our digest to `peer` names for `log`'s source: its max (below the gc
 * while we refetch it, see StaleCopies.naming), or, through a filter, the
 * newest mapping we hold that passes it.
 */
export function named(replica: Replica, peer: DigestPeer, log: SourceLog): number {
  const passes = peer.digestPasses
  if (passes === null) {
    const refetched = replica.deletes.staleCopies.naming(peer, log.id, log.max)
    if (refetched !== undefined) return refetched
    // The source asking for its past is sent what we hold of it above a max
    // a refused value held back too (rule 5): named there, its question
    // waits for them (R5), not only for what lies below (seed 2002260).
    const top = log.id === peer.peerPast ? log.updates[log.updates.length - 1] : undefined
    return top !== undefined && top.version > log.max ? top.version : log.max
  }
  let max = -Infinity
  for (const u of replica.history.news(log.id, -Infinity)) if (u.version > max && passes(u.source_id, u.key)) max = u.version
  return max
}

/**
 * The end of our digest to `peer`, a question's or a reply's: with our
 * allowed rate under flow control, the part of the ids it covered when sent
 * in parts, how many updates the peer lacks, whether the stream takes
 * updates and its filter, and the delete logic's fields.
 */
export function digestEnd(replica: Replica, peer: DigestPeer, reply: boolean, flow: FlowControl | null, signed: boolean): DigestDone {
  const range = peer.part
  const behind = reply ? peer.behind.them : 0
  const deletes = replica.deletes
  const twins = replica.fills.twinsToTell()
  if (flow === null && range === ALL && behind === 0 && peer.takes && peer.sends && !signed && peer.streamFilter === undefined && twins === undefined && !peer.asksPast && deletes.quiet(peer)) {
    return reply ? REPLY : DONE
  }
  const done: { -readonly [K in keyof DigestDone]: DigestDone[K] } = { digest: true, done: true, protocol: PROTOCOL }
  if (reply) done.reply = true
  if (flow !== null) done.rate = flow.allowed
  if (range.after !== undefined) done.after = range.after
  if (range.through !== undefined) done.through = range.through
  if (behind > 0) done.behind = behind
  if (!peer.takes) done.accepts = false
  if (!peer.sends) done.sends = false
  if (peer.streamFilter !== undefined) done.filter = peer.streamFilter
  if (twins !== undefined) done.twins = twins
  if (peer.asksPast) done.past = replica.id
  deletes.extras(peer, done)
  return done
}

// The index of the first id above `id`.
function upperBound(ids: readonly string[], id: string): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ids[mid] <= id) lo = mid + 1
    else hi = mid
  }
  return lo
}

// behind() counts up to here.
const BEHIND_CAP = 1_000_000

/** How many updates this node holds that a peer's digest lacks (an upper bound, counted to a cap). */
export function behind(history: History, heard: ReadonlyMap<string, number>, range: IdRange, passes: Passes): number {
  let n = 0
  for (const [log, from] of lacking(history, heard, range, passes)) {
    n += passes === null ? history.waiting(log.id, from) : newsOf(history, log, from, BEHIND_CAP, passes).length
    if (n >= BEHIND_CAP) return BEHIND_CAP
  }
  return n
}

/**
 * True if a peer's digest names exactly the versions this node holds over
 * `range`, as `named(log)` says our digest to it names them. `out`: the
 * peer holds all we do; `inn`: we hold all it does.
 */
export function sameDigest(history: History, heard: ReadonlyMap<string, number>, range: IdRange, named: (log: SourceLog) => number, out: boolean, inn: boolean): boolean {
  const sources = history.sources
  for (const log of sources.values()) {
    if (range.after !== undefined || range.through !== undefined) if (!covers(range, log.id)) continue
    const max = named(log)
    const theirs = heard.get(log.id) ?? -Infinity
    if ((out && theirs < max) || (inn && max < theirs)) return false
  }
  if (inn) for (const id of heard.keys()) if (!sources.has(id) && covers(range, id)) return false
  return true
}
