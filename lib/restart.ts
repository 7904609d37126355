/**
 * What a restart of the node needs besides its mappings (a snapshot, or
 * the record a store keeps: the record of deletes, the maxes held back,
 * where its log is its own, the writes this life issued), and the restart
 * from a snapshot.
 */
import type { Deletes } from './deletes'
import type { History, SourceLog } from './history'
import type { Incarnation } from './incarnation'
import { restore, snapshotOf } from './snapshot'
import type { Snapshot, Update } from './types'

/** What a restart needs of the replicated state. */
export interface RestartHost {
  readonly history: History
  readonly incarnation: Incarnation
  readonly deletes: Deletes
  /** `resolve` folded over a key's mappings in `sort` order: the entry it keeps. */
  choose(mappings: Update[]): Update | undefined
}

/** One node's restart state (see the module's comment). */
export class Restart {
  // Sources whose max was held back below mappings of theirs we hold (a
  // value refused in the same answer, a filtered stream): a restart must
  // not take their highest mapping for their max (see Snapshot.maxes).
  readonly heldBack = new Set<SourceLog>()

  constructor(private readonly replica: RestartHost) {}

  /** Restart from `snapshot` (what snapshot() returned); the replica must be new. */
  restore(snapshot: Snapshot): void {
    const restored = restore(this.replica.history, snapshot, (mappings) => this.replica.choose(mappings))
    this.replica.incarnation.fromSnapshot(snapshot, restored)
    this.holdBack(snapshot.maxes)
    this.replica.deletes.restored(snapshot)
  }

  // Snapshot.maxes: put back the maxes held back when the snapshot was taken.
  holdBack(maxes: unknown): void {
    if (maxes === null || typeof maxes !== 'object') return
    for (const id of Object.keys(maxes)) {
      const v = (maxes as Record<string, unknown>)[id]
      const log = this.replica.history.sources.get(id)
      if (log === undefined || typeof v !== 'number' || !(v < log.max)) continue
      log.max = v < 0 ? -Infinity : v
      this.heldBack.add(log)
    }
  }

  /** The node's state, for Gossip.restore. */
  snapshot(): Snapshot {
    const incarnation = this.replica.incarnation
    const snap = snapshotOf(this.replica.history, incarnation.clock.time, incarnation.snapshotHeld)
    const maxes = this.maxes()
    const issued = incarnation.snapshotIssued
    const floor = incarnation.floor
    const withMaxes = {
      ...snap,
      ...(maxes === null ? {} : { maxes }),
      ...(issued === undefined ? {} : { issued }),
      ...(floor === -Infinity ? {} : { floor }),
    }
    return this.replica.deletes.record() === null ? withMaxes : { ...withMaxes, ...this.replica.deletes.snapshotFields() }
  }

  // Snapshot.maxes: the sources still held back, with their max.
  private maxes(): Record<string, number> | null {
    let out: Record<string, number> | null = null
    for (const log of this.heldBack) {
      let top = -Infinity
      for (const u of this.replica.history.news(log.id, log.max)) if (u.version > top) top = u.version
      if (top <= log.max) this.heldBack.delete(log)
      // (-1 for none: a snapshot is JSON.)
      else (out ??= {})[log.id] = log.max === -Infinity ? -1 : log.max
    }
    return out
  }

  /**
   * What the node keeps besides its mappings, as JSON text for a store
   * (null: nothing): its record of deletes, held-back maxes, where its log
   * is its own (Snapshot.floor), and, until its past settles, the writes
   * this life issued (Snapshot.issued).
   */
  record(): string | null {
    const deletes = this.replica.deletes.record()
    const maxes = this.heldBack.size === 0 ? null : this.maxes()
    const issued = this.replica.incarnation.snapshotIssued
    const floor = this.replica.incarnation.floor
    if (maxes === null && issued === undefined && floor === -Infinity) return deletes
    const r: Record<string, unknown> = deletes === null ? {} : (JSON.parse(deletes) as Record<string, unknown>)
    if (maxes !== null) r.maxes = maxes
    if (issued !== undefined) r.issued = issued
    if (floor !== -Infinity) r.floor = floor
    return JSON.stringify(r)
  }
}
