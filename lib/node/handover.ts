/**
 * A handover, both ends (docs/twins.md): a node refused as a twin by every
 * peer it has hands its acknowledged writes to one that refused it, on a
 * session of its own (a hello with `handover: true`, see
 * `lib/wire/session.ts`); that peer writes them as its own writes
 * (only a source changes its own mappings, so no version of the refused
 * id meets the other twin's), each placed at its handed version (`first`,
 * docs/deletes.md R2), answers how many, and they reach the cluster
 * through it. When a handover is due is the twin rule's (twins.ts); what
 * is handed, and how it is written, the node's.
 *
 * @packageDocumentation
 */
import type { Gossip } from '../gossip'
import { isMembershipKey } from '../membership'
import type { Session, SessionError, SessionOptions } from '../wire/session'
import { errand, type ErrandFailure } from './dialer'
import type { Address } from './types'

/** A write handed over by a node refused as a twin. */
export interface HandedWrite {
  readonly key: string
  readonly value: unknown
  readonly deleted?: true
  readonly version: number
  /** Its place, when it is a copy issued again above a past (docs/deletes.md R2). */
  readonly first?: number
}

/** A write as the receiving end reads it (a version, its place: `first` if sent, only from a node that knows it). */
export interface TakenWrite {
  key: string
  value: unknown
  deleted: boolean
  version?: number
}

/** Most writes one handover session carries (the peer refuses more: see MAX_HANDOVER). */
export const HANDOVER_BATCH = 10_000
/** Most writes one handover session may carry, as its receiver counts (a refused twin sends HANDOVER_BATCH at most). */
export const MAX_HANDOVER = 2 * HANDOVER_BATCH
// How long the handing end waits for the peer's answer.
const ANSWER_WAIT = 10_000

/**
 * What a node refused as a twin would hand over: this life's acknowledged
 * writes, current and not handed over yet (a write not acknowledged was
 * taken back as the node was refused), above what a peer's digest said it
 * holds of them.
 */
export class Handing {
  // This life's own writes handed over up to this version, and held by a
  // peer up to this one.
  private handedUpTo = -Infinity
  private ownConfirmed = -Infinity

  constructor(private readonly gossip: Gossip) {}

  /**
   * What a peer said it holds of this life's writes (`ownHeld`, its
   * digest's version of our id): a version named that this node sent and
   * issued (a twin's versions are not ours, nor do they say that a peer
   * holds ours).
   */
  confirm(peer: { readonly ownReceived: number }): void {
    // (Not merely named: a peer that names our versions unsent would keep them from the handover.)
    const v = peer.ownReceived
    const inc = this.gossip.incarnation
    if (v > this.ownConfirmed && v <= inc.sentOwn && inc.clock.issued(v)) this.ownConfirmed = v
  }

  /**
   * The writes to hand over now, after what `peers` hold; not the versions
   * `waiting` for their answer, nor, with membership on, its own record and
   * heartbeats (the node's, not a user's).
   */
  writes(peers: Iterable<{ readonly ownReceived: number }>, waiting: ReadonlySet<number> | undefined, membership: boolean): HandedWrite[] {
    const gossip = this.gossip
    const id = gossip.id
    const inc = gossip.incarnation
    for (const c of peers) this.confirm(c)
    const out: HandedWrite[] = []
    // Not those still waiting for their answer (they may yet be taken back
    // and answered `twin`: the property test found one handed over, then
    // refused, and winning everywhere); each goes once acknowledged (see Twins.wrote).
    // The past lives' writes restored from the directory go too (docs/twins.md,
    // R6: one acknowledged before a restart may never have left the node, and
    // the twin's versions at the peers keep gossip from sending it).
    const first = inc.clock.first
    for (const u of gossip.history.news(id, this.handedUpTo)) {
      if (waiting?.has(u.version) === true) continue
      // (A past mapping peers gave back to this life is at peers already.)
      if (u.withdrawn === true || inc.pastMappings.has(u)) continue
      if (u.version >= first && (u.version <= this.ownConfirmed || !inc.clock.issued(u.version))) continue
      if (membership && isMembershipKey(u.key)) continue
      // (A copy issued again goes with its place, `first`: handed at its version it would rank above what beat it.)
      const at = u.first === undefined ? { version: u.version } : { version: u.version, first: u.first }
      out.push(u.deleted === true ? { key: u.key, value: null, deleted: true, ...at } : { key: u.key, value: u.value, ...at })
    }
    return out
  }

  /** `writes` were handed over. */
  handed(writes: readonly HandedWrite[]): void {
    for (const w of writes) if (w.version > this.handedUpTo) this.handedUpTo = w.version
  }
}

/**
 * Hand `writes` to the node at `to`, on a session with `options`: resolves
 * with null once it answered that it wrote them all, or with why not (a
 * refused session's code with it).
 */
export function handOver(gossip: Gossip, options: SessionOptions, to: Address, writes: readonly HandedWrite[]): Promise<ErrandFailure | null> {
  return errand(gossip, { ...options, handover: true }, to, ANSWER_WAIT, (s, done) => {
    s.on('refused', (err: SessionError) => done(err.message, err.code))
    s.on('handover', () => {
      // Each with its version: the peer leaves out those a write of the key at or above it has reached (see takeHandover).
      for (const w of writes) {
        const at = w.first === undefined ? { version: w.version } : { version: w.version, first: w.first }
        s.send(w.deleted === true ? { key: w.key, deleted: true, ...at } : { key: w.key, value: w.value, ...at })
      }
      s.send({ end: true })
    })
    s.on('message', (m: { handed?: unknown; error?: unknown }) => {
      if (m?.handed !== writes.length) done(typeof m?.error === 'string' ? `it answered: ${m.error.slice(0, 200)}` : 'it took none')
      else done(null)
    })
  })
}

/** What the receiving end of a handover does with it. */
export interface HandoverTaker {
  /** Whether `key` may never be handed over (membership's keys are each node's own record). */
  refuses(key: string): boolean
  /** Whether this node holds a mapping of `key` placed at or above `version` already. */
  holds(key: string, version: number): boolean
  /** Whether a value placed at `version` is refused here as late (a collected delete may have beaten it: docs/deletes.md, rule 5); reported if so. */
  late(w: TakenWrite & { version: number }): boolean
  /** Write `w` as this node's own (placed at its version, if any); resolves once durable. */
  write(w: TakenWrite): Promise<unknown>
  /** The writes were taken and answered: `fresh` written, `held` left out, `late` refused as late. */
  took(fresh: number, held: number, late: number): void
  /** Writing them failed (answered). */
  failed(err: Error): void
  /** The peer sent a bad write, or too many: close it. */
  bad(reason: string): void
}

/**
 * The receiving end of a handover on `session` (opened with `handover`),
 * from `who`: the writes are read until the end, then written, and the
 * count answered once all are durable.
 */
export function takeHandover(session: Session, who: string, taker: HandoverTaker): void {
  const writes: TakenWrite[] = []
  session.on('message', (m: { key?: unknown; value?: unknown; deleted?: unknown; end?: unknown; version?: unknown; first?: unknown }) => {
    if (m?.end === true) {
      void writeHandover(session, writes, taker)
      return
    }
    const version = m?.version
    const first = m?.first
    if (
      typeof m?.key !== 'string' ||
      taker.refuses(m.key) ||
      writes.length >= MAX_HANDOVER ||
      (version !== undefined && !Number.isSafeInteger(version)) ||
      (first !== undefined && !(Number.isSafeInteger(first) && typeof version === 'number' && (first as number) < version))
    ) {
      taker.bad(`peer ${who} handed over a bad write (no key, a membership key, a version not an integer, or a first not below it), or more than ${MAX_HANDOVER}`)
      return
    }
    // Its place: where the copy was first issued (R2), else its version.
    writes.push({ key: m.key, value: m.value ?? null, deleted: m.deleted === true, version: (first ?? version) as number | undefined })
  })
}

async function writeHandover(session: Session, writes: TakenWrite[], taker: HandoverTaker): Promise<void> {
  // A write whose key holds a mapping placed at or above the handed one
  // here already has it, or one that wins over it: written, it would
  // replace this node's own mapping of the key by a lower one. Left out,
  // counted as taken. A value at or below the horizon is refused as late
  // (rule 5), reported: written, a collected delete of its key came back.
  let late = 0
  const fresh = writes.filter((w) => {
    if (w.version === undefined) return true
    if (taker.holds(w.key, w.version)) return false
    if (!w.deleted && taker.late({ ...w, version: w.version })) {
      late++
      return false
    }
    return true
  })
  try {
    await Promise.all(fresh.map((w) => taker.write(w)))
  } catch (err) {
    session.send({ handed: 0, error: (err as Error).message })
    taker.failed(err as Error)
    return
  }
  session.send({ handed: writes.length })
  taker.took(fresh.length, writes.length - fresh.length - late, late)
}
