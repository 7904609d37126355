/**
 * A peer's update taken in: checked (the clock, value limits, mtu_bytes,
 * signature), then taken unless the source's mapping of the key here is as
 * new, it is a write of ours we replaced since, a delete we collected may
 * have beaten it (rule 5), or it withdraws a value older than the one we
 * hold (R6); our own past coming back after a restart passes the
 * incarnation first (docs/deletes.md, "A node started without its log").
 * What is refused is reported on the stream it came from.
 */
import { Clock } from './clock'
import { reportInvalid } from './codes'
import type { Deletes } from './deletes'
import type { GapFills } from './fills'
import type { History, Slot, SourceLog } from './history'
import { mappingOf } from './history'
import { sameValue, type Incarnation, type PastPeer } from './incarnation'
import { isMarker, type StreamLike } from './markers'
import { oversize } from './reconcile'
import { isVersion, type UpdateReading } from './shape'
import { peerUpdate, verified } from './signatures'
import type { Security, Update } from './types'
import { Refused, admitValue, plainValue } from './value'

/** The peer an update came from, as the intake sees it. */
export interface Sender extends StreamLike, PastPeer {
  /** Whether updates from this peer may move a source's max (no filter at either end). */
  gapFree(): boolean
  /** An update from this peer is about to move `log.max`. */
  movingMax(log: SourceLog): void
}

/** What taking an update needs of the replicated state. */
export interface Taker {
  readonly id: string
  readonly history: History
  readonly incarnation: Incarnation
  readonly deletes: Deletes
  readonly fills: GapFills
  readonly security: Security | undefined
  readonly mtuBytes: number
  /** The key's resolved entry once `update` replaces `previous` (see Replica.entryFor). */
  entryFor(update: Update, slot: Update | Slot | undefined, previous: Update | undefined): Update | undefined
  /** Record `update` in place of `previous` (see Replica.put); false when a newer mapping of its source came first. */
  put(update: Update, entry: Update | undefined, slot: Update | Slot | undefined, previous: Update | undefined, writes: number, advance?: boolean, log?: SourceLog): boolean
  /** The log of `source_id`. */
  logOf(source_id: string): SourceLog
}

/** A node's intake of peers' updates (see the module's comment). */
export class Intake {
  // The wall clock and Clock.NOTICE when last read: versions above it are
  // looked at (see aheadOf).
  private noticeAt = -Infinity
  private readonly security: Security | undefined
  private readonly mtuBytes: number
  // The replica's parts, read once (per update, each is one load less).
  private readonly id: string
  private readonly history: History
  private readonly incarnation: Incarnation
  private readonly deletes: Deletes
  private readonly fills: GapFills

  /** `replica`: made whole (its incarnation, deletes and fills there). */
  constructor(private readonly replica: Taker) {
    this.security = replica.security
    this.mtuBytes = replica.mtuBytes
    this.id = replica.id
    this.history = replica.history
    this.incarnation = replica.incarnation
    this.deletes = replica.deletes
    this.fills = replica.fills
  }

  /**
   * A peer's update (its fields read into `fields`) from `from`: checked
   * (clock, value limits, size, signature), then taken unless the source's
   * mapping of the key here is as new, a delete we collected may have beaten
   * it (rule 5), or it is a twin's. What is refused is reported on `from`.
   */
  take(from: Sender, chunk: unknown, fields: UpdateReading): void {
    const key = fields.key
    const source_id = fields.source_id
    const version = fields.version
    const deleted = fields.deleted
    const withdrawn = fields.withdrawn
    const first = fields.first
    const marker = deleted || withdrawn
    const history = this.history
    const clock = this.incarnation.clock
    if (!clock.accepts(version)) {
      reportInvalid(from, chunk, aheadReason(version), 'ahead')
      return
    }
    if (version > this.noticeAt && source_id !== this.id) this.aheadOf(from, source_id, version)
    // The limits every path shares; the value is frozen where it is. A
    // marker's value is null, whatever came with it, but for the version a
    // withdrawal names (R6).
    let value = fields.value
    if (marker && !(withdrawn && isVersion(value))) value = null
    else if (!plainValue(value)) {
      const held = admitValue(value, false)
      if (held instanceof Refused) {
        reportInvalid(from, chunk, `value ${held.reason}`, 'value')
        return
      }
      value = held
    }
    // mtu_bytes and signatures (set in the config, so checked apart).
    let signature: string | undefined
    if (this.mtuBytes !== Infinity || this.security !== undefined) {
      const s = this.checked(from, chunk, key, value, source_id, version, deleted, withdrawn, first)
      if (s === null) return
      signature = s
    }
    let slot = history.slot(key)
    let previous = mappingOf(slot, source_id)
    let past = false
    if (source_id === this.id) {
      const writes = history.writes
      const p = this.incarnation.received(from, key, value, version, previous !== undefined && previous.version >= version)
      if (p === undefined) return
      past = p
      // Our past showing itself may have issued our writes again above it,
      // this key's too: the update is weighed against what we hold now
      // (attack found a past value replacing the newer write just issued).
      if (history.writes !== writes) {
        slot = history.slot(key)
        previous = mappingOf(slot, source_id)
      }
    } else {
      clock.see(version)
    }
    const deletes = this.deletes
    // A write of ours from this life that we do not hold as it is: we
    // replaced it since (and may have collected what replaced it). A stale
    // copy at a peer does not bring it back.
    if (source_id === this.id && !past && (previous === undefined || previous.version < version)) return
    // What may move the source's max: not through a filter (what it brings
    // may have gaps below), nor past a value refused in this answer.
    const advance = from.gapFree() && deletes.lateValues.mayAdvance(from, source_id, version)
    // The source's mapping of the key is here already, or a newer one.
    if (previous !== undefined && previous.version >= version) {
      if (past && !marker && previous.withdrawn === true) {
        deletes.lateValues.pastAfterWithdrawal(from, Object.freeze({ key, value, source_id, version }), previous)
      } else if (past && !marker && previous.version === version && (isMarker(previous) || !sameValue(previous.value, value))) {
        // Another life's value at our own mapping's version (R8): neither is newer.
        deletes.lateValues.pastAtOwnVersion(from, Object.freeze({ key, value, source_id, version }))
      } else if (past && marker && previous.version === version && !isMarker(previous)) {
        deletes.lateValues.markerAtOwnValue(from, previous)
      }
      // Keep the source's max moving: we hold it this far.
      const log = this.replica.logOf(source_id)
      if (advance && version > log.max) {
        from.movingMax(log)
        log.max = version
      }
      if (deletes.staleCopies.watching) deletes.staleCopies.received(from, source_id, version, previous.version === version ? previous : undefined, false)
      return
    }
    const update: Update =
      signature === undefined && !marker && first === undefined
        ? Object.freeze({ key, value, source_id, version })
        : peerUpdate(key, value, source_id, version, signature, deleted, withdrawn, first)
    // R6: a withdrawal of a value older than the source's value we hold was
    // decided without ours (its source rebuilt its log without it). Not
    // taken, nor claimed: the source is shown our value and settles it.
    if (withdrawn && source_id !== this.id && previous !== undefined && typeof value === 'number' && value < previous.version && !isMarker(previous)) {
      deletes.lateValues.refusesWithdrawal(from, update, previous)
      // Shown to the sender as a gap fill (it names the source above it):
      // a source that rebuilt its log asks a peer for its past once, in an
      // answer the mtu may cut, and names itself past the value after
      // (attack found a refused withdrawal offered again for good).
      const wait = (from.fillWait ??= [])
      if (!wait.includes(previous)) wait.push(previous)
      // A fresh copy served to a refetch was still sent this far: the refusal
      // is the source's to settle, not the refetch's to wait on (outside model
      // checker seed 965160: the refetch never ended, and the source, never
      // shown the refetcher's copy of it, never vouched to serve it).
      if (deletes.staleCopies.watching) deletes.staleCopies.received(from, source_id, version, undefined, false)
      return
    }
    // Older than a delete we collected: it may be what that delete beat.
    // Refused, and its writer told (rule 5). A copy issued again is judged
    // at its first version, where a delete beats it (R2).
    // At or below our gc of its source too: one of the source's collected
    // markers may have replaced it (rule 5).
    if ((past || (first ?? version) <= deletes.horizon || (deletes.collection.gc.size !== 0 && version <= deletes.collection.gcOf(source_id))) && deletes.lateValues.refuses(from, update, past)) return
    // A throwing resolve or store leaves the update unrecorded (and our
    // digest not claiming it), to be asked for again.
    let stage = 'resolve'
    try {
      const writes = history.writes
      const entry = this.replica.entryFor(update, slot, previous)
      stage = 'the store'
      const log = this.replica.logOf(source_id)
      // (At the max too: another mapping of the source holds that version,
      // a past life's, R8 in docs/deletes.md.)
      const below = version <= log.max
      if (advance) from.movingMax(log)
      if (this.replica.put(update, entry, slot, previous, writes, advance, log)) {
        if (past) this.incarnation.pastMappings.add(update)
        this.fills.took(update, below)
        if (marker || !deletes.idle) deletes.took(update, false)
        if (deletes.staleCopies.watching) deletes.staleCopies.received(from, source_id, version, update, true)
      }
    } catch (err) {
      if (history.mapping(source_id, key) === update) stage = "an 'update' listener"
      // Unrecorded: the rest of this source in this answer stays below its
      // max, so that the next exchange brings it again.
      else deletes.lateValues.holdBack(from, source_id, version)
      reportInvalid(from, chunk, `${stage} threw: ${(err as Error)?.message}`, 'node_error')
    }
  }

  // take()'s checks of mtu_bytes and signatures: the signature (undefined
  // unsigned), or null when refused (reported on `from`).
  private checked(from: Sender, chunk: unknown, key: string, value: unknown, source_id: string, version: number, deleted: boolean, withdrawn: boolean, first: number | undefined): string | undefined | null {
    // What this node could never send on (mtu_bytes) it does not take
    // either: the same limit as at set.
    if (this.mtuBytes !== Infinity && !deleted && !withdrawn) {
      const big = oversize(this.mtuBytes, source_id, key, value, this.security !== undefined)
      if (big !== null) {
        reportInvalid(from, chunk, big, 'too_big')
        return null
      }
    }
    // Signed updates: check before anything, so a forgery moves nothing.
    if (this.security === undefined) return undefined
    const signature = verified(this.security, chunk, key, value, source_id, version, deleted ? 'deleted' : withdrawn ? 'withdrawn' : null, first)
    if (signature === undefined) {
      reportInvalid(from, chunk, `signature of ${source_id} missing or invalid`, 'signature')
      return null
    }
    return signature
  }

  // An update of `source_id` far ahead of the wall clock: said on the
  // stream it came on (`'ahead'`) when it jumps the source's max, since a
  // forgery ahead (without signatures any peer can write as any id) hides
  // the source's writes below it until the source passes it.
  private aheadOf(from: Sender, source_id: string, version: number): void {
    this.noticeAt = this.incarnation.clock.wall() + Clock.NOTICE
    if (version <= this.noticeAt) return
    const max = this.history.sources.get(source_id)?.max ?? -Infinity
    if (version > max + Clock.NOTICE) from.emit('ahead', source_id, version)
  }
}

/**
 * Whether an `'invalid'` reason is a version refused for running too far
 * ahead of this node's clock: the update is refused, but the peer may only
 * relay what a node with a wrong clock wrote.
 */
export function aheadReason(version: number): string {
  const ahead = (version - Clock.now()) / 3.6e9
  return `version ${version} is ${ahead.toFixed(1)} h ahead of this node's clock (the limit is ${Clock.AHEAD / 3.6e9} h): a clock is wrong, or a peer is hostile`
}
