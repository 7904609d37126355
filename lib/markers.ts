/**
 * What the parts of the delete logic (docs/deletes.md) share: markers,
 * what they need of the node and of a stream, and what one stream knows
 * for deletes (its Link, kept out of the stream).
 */
import type { History } from './history'
import type { Life } from './shape'
import type { LateReport, Security, StaleNotice, Update } from './types'

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
   * The node's current life when it began without state: its first version
   * (Incarnation.floor) and how far it holds its past whole; else undefined.
   */
  life(): Life | undefined
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
export class Link {
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
   * to it names the source there, so it sends the source whole), and
   * what its latest whole digest named (rule 6: a tombstone beating a
   * value it holds too goes with the refetch).
   */
  pass: Map<string, { r: Refetch; at: number; target: number; skip: number; named: ReadonlyMap<string, number> }> | null = null
  /** Life floors told to the peer on this stream (DigestDone.lives): each is told once. */
  livesTold: Map<string, Life> | null = null
  /** Under signatures: our last two nonces sent to the peer, and its latest. */
  nonces: [string | undefined, string | undefined] = [undefined, undefined]
  peerNonce: string | undefined = undefined
}

/** A source being refetched: its copy here may hold what markers a peer collected replaced. */
export interface Refetch {
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
  /**
   * The first version of the source's current life, if the notice said
   * (-Infinity if not), and how far that life holds its past whole: what
   * we hold of it between the two is past it may never have seen, not suspect.
   */
  floor: number
  held: number
  /** Active time the refetch began or last moved: a grace without either abandons it. */
  since: number
}

/** Each stream's Link, made when first needed. */
export class Links {
  private readonly links = new WeakMap<object, Link>()

  /** The stream's Link (made now if it has none). */
  link(stream: object): Link {
    let l = this.links.get(stream)
    if (l === undefined) {
      l = new Link()
      this.links.set(stream, l)
    }
    return l
  }

  /** The stream's Link, if it has one. */
  peek(stream: object): Link | undefined {
    return this.links.get(stream)
  }
}

/** Most late reports of other sources passed on towards their writers, and most owed to one peer. */
export const MAX_FORWARD = 1024

/** Whether withdrawal `w` names a version below `u`'s, itself below `w` (R6: holders of `u` refuse `w`). */
export function unnamed(u: Update, w: Update): boolean {
  return typeof w.value === 'number' && w.value < u.version && u.version < w.version
}

/** A marker: a tombstone or a withdrawal. */
export function isMarker(u: Update): boolean {
  return u.deleted === true || u.withdrawn === true
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
  readonly withheld: true | ReadonlySet<string> | undefined
  /** Sources' lives the peer knows (DigestDone.lives). */
  readonly lives: ReadonlyMap<string, Life> | undefined
  /** The peer's horizon (DigestDone.horizon, rule 5). */
  readonly horizon: number | undefined
  /** The end of an answer to our question (not a question). */
  readonly reply: boolean
}
