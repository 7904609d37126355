/**
 * Group commit: the queue of writes, one transaction per group, one fsync
 * of the write-ahead log per group, and who waits for which commit.
 * Flushes made while an fsync is in flight share the next transaction and
 * the next fsync; fsyncs run off the event loop. Without fsync (the store's
 * `fsync: false`) a commit settles its waiters at once.
 *
 * Invariants: a flush resolves only once an fsync of the log (or a
 * completed checkpoint) covers every transaction up to the one that holds
 * what was queued when it was called; `durableTo`, the highest own version
 * so covered, only grows; the witness is told of a commit only after the
 * fsync that made it durable; after a failure nothing more is committed
 * and every flush rejects. The log is fsynced through a descriptor of our
 * own (SQLite at synchronous = NORMAL does not sync at commit), and its
 * name into the directory the first time and whenever SQLite made it anew.
 */
import * as fs from 'fs'
import type { Op } from './database'
import { fsyncDir } from './directory'
import { AckedWitness, type WitnessOwner } from './witness'

/** What a commit writes, and the store's checkpoint: given by the store. */
export interface Journal {
  /**
   * Write `ops`, and what else the node keeps that changed, as commit `seq`
   * in one transaction. False, with nothing written, when `ops` is empty,
   * nothing else changed and the commit is not `forced`.
   */
  write(ops: Op[], seq: number, forced: boolean): boolean
  /** Whether something besides the queued ops waits to be written. */
  changed(): boolean
  /** Checkpoint the log into the database (the store's own `checkpoint()`). */
  checkpoint(): boolean
}

export interface GroupCommitOptions {
  /** The data directory (its entries are fsynced for the log's name). */
  readonly dir: string
  /** The write-ahead log's path. */
  readonly wal: string
  /** fsync before acknowledging (false: a commit is acknowledged at once). */
  readonly sync: boolean
  /** The log's size past which it is checkpointed. */
  readonly checkpointBytes: number
  readonly journal: Journal
  /** Told once, of the first failure. */
  readonly onFail: (err: Error) => void
}

export class GroupCommit implements WitnessOwner {
  /** The witness of what is durable (the `acked` file). */
  readonly witness: AckedWitness
  private ops: Op[] = []
  private committed: number
  private synced: number
  private scheduled = false
  private syncing = false
  // A flush is waiting for the next commit: it is made even with nothing
  // queued (so that the commit number it waits for comes).
  private forced = false
  private waiters: { target: number; resolve: () => void; reject: (err: Error) => void }[] = []
  // Pairs (commit, own version) not yet durable, in commit order.
  private ownUnsynced: number[] = []
  private ownSynced = -Infinity
  private walFd: number | null = null
  private walIno = -1
  private stopped = false
  private failure: Error | null = null

  /** `seq`: the last commit in the database, durable. */
  constructor(
    private readonly o: GroupCommitOptions,
    seq: number,
  ) {
    this.committed = this.synced = seq
    this.witness = new AckedWitness(o.dir, o.sync, this)
  }

  /** The last commit. */
  get seq(): number {
    return this.committed
  }

  /** A repair rebuilt the database, whose last commit, durable, is `seq`. */
  resume(seq: number): void {
    this.committed = this.synced = seq
  }

  /** The store closed (or was abandoned): nothing runs on its own any more. */
  get closed(): boolean {
    return this.stopped
  }

  get failed(): boolean {
    return this.failure !== null
  }

  /** An fsync of the log is in flight. */
  get inFlight(): boolean {
    return this.syncing
  }

  /** Everything queued so far is committed and durable. */
  get durable(): boolean {
    return this.ops.length === 0 && this.synced >= this.committed
  }

  /** The highest own version already durable. */
  get durableTo(): number {
    return this.ownSynced
  }

  /** Queue `op` for the next commit. */
  queue(op: Op): void {
    this.ops.push(op)
  }

  /** An own write of `version` goes into the next commit. */
  own(version: number): void {
    this.ownUnsynced.push(this.committed + 1, version)
  }

  /** Commit what is queued at the next turn of the event loop. */
  schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      if (this.stopped || this.failure !== null) return
      try {
        this.commit()
        this.maybeCheckpoint()
      } catch (err) {
        this.fail(err as Error)
      }
    })
  }

  /** Resolves once everything queued so far is durable (see Store.flush). */
  flush(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.stopped) return Promise.resolve()
    // What is queued goes into the next commit.
    const target = this.dirty() ? this.committed + 1 : this.committed
    if (this.synced >= target) return Promise.resolve()
    if (target > this.committed) this.forced = true
    return new Promise((resolve, reject) => {
      this.waiters.push({ target, resolve, reject })
      this.kick()
    })
  }

  /** Write every queued op in one transaction (durable once the log is fsynced). */
  commit(): void {
    const ops = this.ops
    const forced = this.forced
    this.ops = []
    this.forced = false
    const seq = this.committed + 1
    if (!this.o.journal.write(ops, seq, forced)) return
    this.committed = seq
    if (!this.o.sync) {
      this.setSynced(seq)
      this.settle()
    }
  }

  /** Commit, and make the commit durable before returning (a reservation that must not wait). */
  commitNow(): void {
    this.commit()
    if (this.o.sync) {
      this.openWal()
      fs.fdatasyncSync(this.walFd as number)
      this.witness.writeSync(this.committed)
    }
  }

  /** Every commit up to `upTo` is durable: settle who waits for them. */
  markSynced(upTo: number): void {
    this.setSynced(upTo)
    this.settle()
  }

  /** A checkpoint completed: it synced the log and the database. */
  checkpointed(): void {
    if (this.o.sync) this.setSynced(this.committed)
    this.settle()
    this.witness.durable(this.synced)
  }

  /** The store failed for good: every waiter is told, nothing more is written. */
  fail(err: Error): Error {
    const first = this.failure === null
    this.failure = err
    if (first) this.o.onFail(err)
    for (const w of this.waiters) w.reject(err)
    this.waiters = []
    return err
  }

  /** Nothing runs on its own any more (the store is closing). */
  stop(): void {
    this.stopped = true
    this.witness.stop()
  }

  /** At close: commit what is queued, and have the witness name what is durable. */
  finish(): void {
    this.commit()
    if (this.witness.lags(this.synced)) this.witness.writeSync(this.synced)
  }

  /** Release the files; waiters are rejected (a close) or dropped (`abandon`: kill -9 answers no one). */
  close(abandon = false): void {
    if (!abandon) for (const w of this.waiters) w.reject(new Error('store: closed'))
    this.waiters = []
    if (this.walFd !== null) fs.closeSync(this.walFd)
    this.walFd = null
    this.witness.close()
  }

  // Whether a commit now would write anything.
  private dirty(): boolean {
    return this.ops.length > 0 || this.forced || this.o.journal.changed()
  }

  // The leader of a group: unless an fsync is in flight (its end calls this
  // again), commit what is queued and fsync it for whoever waits. Without
  // fsync, the commit at the next turn settles them.
  private kick(): void {
    if (this.syncing || this.stopped || this.failure !== null) return
    if (!this.o.sync) {
      this.schedule()
      return
    }
    try {
      this.commit()
    } catch (err) {
      this.fail(err as Error)
      return
    }
    this.startSync()
  }

  private startSync(): void {
    if (this.syncing || this.stopped) return
    this.settle()
    if (this.waiters.length === 0) return
    const target = this.committed
    this.syncing = true
    const done = (err: Error | null): void => {
      this.syncing = false
      if (this.stopped) return
      if (err !== null) {
        this.fail(err)
        return
      }
      this.setSynced(target)
      this.settle()
      // The witness follows, off the acknowledgement's path.
      this.witness.durable(this.synced)
      try {
        this.maybeCheckpoint()
      } catch (e) {
        this.fail(e as Error)
        return
      }
      // The next group: what came while this fsync ran.
      this.kick()
    }
    try {
      this.openWal()
    } catch (err) {
      done(err as Error)
      return
    }
    fs.fdatasync(this.walFd as number, (err) => done(err))
  }

  private setSynced(upTo: number): void {
    if (upTo <= this.synced) return
    this.synced = upTo
    const own = this.ownUnsynced
    let i = 0
    while (i < own.length && own[i] <= upTo) {
      this.ownSynced = own[i + 1]
      i += 2
    }
    if (i > 0) own.splice(0, i)
  }

  private settle(): void {
    const still: typeof this.waiters = []
    for (const w of this.waiters) {
      if (w.target <= this.synced) w.resolve()
      else still.push(w)
    }
    this.waiters = still
  }

  private maybeCheckpoint(): void {
    if (this.syncing) return
    const size = this.walFd !== null ? fs.fstatSync(this.walFd).size : (fs.statSync(this.o.wal, { throwIfNoEntry: false })?.size ?? 0)
    if (size > this.o.checkpointBytes) this.o.journal.checkpoint()
  }

  // The log's descriptor, for fsyncs of our own. Its name is fsynced into
  // the directory the first time, and again if SQLite ever made it anew.
  private openWal(): void {
    const file = this.o.wal
    const ino = fs.statSync(file).ino
    if (this.walFd !== null && ino === this.walIno) return
    if (this.walFd !== null) fs.closeSync(this.walFd)
    this.walFd = fs.openSync(file, 'r')
    this.walIno = ino
    if (this.o.sync) fsyncDir(this.o.dir)
  }
}
