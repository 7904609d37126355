/**
 * Durable state for one node, in an SQLite database (better-sqlite3, WAL
 * mode) in a directory.
 *
 * Layout of the directory:
 * - `state.db` (with SQLite's `state.db-wal` and `state.db-shm`): the
 *   database. Table `mappings` holds every source's newest mapping of each
 *   key (the paper's mu), one row per (key, source_id), with a CRC-32 of the
 *   row and a `resolved` flag marking the key's entry in the resolved view
 *   (the view `state` lists them); table `meta` holds the node id, the
 *   versions reserved on disk, how far the node holds its own past and the
 *   commit count. Any SQLite tool reads it (see docs/operations.md).
 * - `lock.db`: a small SQLite database whose exclusive lock, held for as
 *   long as the store is open, keeps any other process (and any other store
 *   in this process) out of the directory; it also remembers the node id
 *   and the reservation, so that a lost `state.db` is noticed.
 * - `acked`: the commit count last made durable and acknowledged, written
 *   after each fsync of the log (before the acknowledgement leaves) and
 *   fsynced itself at most every 100 ms, so that a write-ahead log cut back
 *   or deleted is noticed rather than silently losing acknowledged writes
 *   (after a power cut it may name an earlier commit, never a later one).
 * - `damaged-<time>/`: copies of damaged files a repair set aside.
 *
 * Acknowledgement: every update written to the node's history (its
 * `'update'` event) is queued and written, with whatever else is queued, in
 * one transaction at the next turn of the event loop (or at `flush()`);
 * `flush()` resolves once an fsync of the log covers every transaction so
 * far. Group commit: flushes made while an fsync is in flight share the
 * next transaction and the next fsync; fsyncs run off the event loop. The
 * log is written over in place (given its size at open, restarted at each
 * checkpoint), so that a commit's fsync does not grow the file.
 *
 * Versions are never reused: before the `'update'` event of a local write
 * returns, a version above the write is reserved in the database and
 * fsynced (`reserve` versions ahead, so one fsync per `reserve` writes);
 * restart starts the clock above every reservation.
 *
 * Damage: the log is checked frame by frame before SQLite opens it (a
 * damaged frame followed by whole ones is damage, not a crash), SQLite's
 * `quick_check` runs at open, every row's CRC is checked when it is read,
 * and the acknowledged commit count must be in the database. Damage is
 * refused with a {@link StoreDamagedError} naming the file, unless the
 * store is opened with `repair: true`: then the damaged files are copied
 * aside, what can be read is kept, and every loss is logged (what was lost
 * comes back from peers: the repaired store claims nothing it lost).
 *
 * The jobs are in the modules beside this one, each with its invariants:
 * `directory.ts` (file names, fsync of names, copies set aside),
 * `checksum.ts`, `schema.ts` (the tables and a row), `lock.ts` (lock.db),
 * `database.ts` (state.db: open, check, a commit's transaction),
 * `commit.ts` (group commit), `witness.ts` (`acked`), `damage.ts` (checks
 * at open), `salvage.ts` (repair), `load.ts` (restart), `view.ts` (the
 * store object) and `open-gossip.ts`. This class composes them: it records
 * the node's updates as writes for the next commit, and opens and closes
 * the directory.
 *
 * @packageDocumentation
 */
import type Database from 'better-sqlite3'
import * as fs from 'fs'
import * as path from 'path'
import type { Transform } from 'readable-stream'
import { barrier } from '../../barrier'
import type { Gossip } from '../../gossip'
import type { PersistentStore } from '../../persistence'
import { markChecked, type RecordFields } from '../../snapshot'
import type { Snapshot, StateStore, Update } from '../../types'
import { GroupCommit } from './commit'
import { asDamage, checkAcked, checkLog, lostDatabase, type OpenContext, StoreDamagedError, StoreError } from './damage'
import { type Meta, type Op, openDatabase, StateDatabase } from './database'
import { DB, fsyncDir } from './directory'
import { readDeletes, readMappings } from './load'
import { DirectoryLock } from './lock'
import { salvage } from './salvage'
import { rowUpdate, sqlite } from './schema'
import { makeView } from './view'


/** Options of {@link Store.open}. */
export interface StoreOptions {
  /**
   * Versions reserved on disk ahead of use (one fsync per this many local
   * writes, and the gap a restart leaves in this node's versions).
   * Default 1000000.
   */
  reserve?: number
  /** fsync before acknowledging (default true; false is safe against a process crash, not a power cut). */
  fsync?: boolean
  /** Size of the write-ahead log, in bytes, past which it is copied into the database. Default 16 MiB. */
  checkpointBytes?: number
  /**
   * SQLite's check at open: `'full'` (default, `PRAGMA integrity_check`),
   * `'quick'` (`PRAGMA quick_check`: skips checking the index against the
   * table, about half the time) or `'none'`. Row checksums are checked
   * whenever rows are read.
   */
  check?: 'quick' | 'full' | 'none'
  /**
   * Repair damage instead of refusing it: damaged files are copied into
   * `damaged-<time>/` in the directory, what can be read is kept, and every
   * loss is logged. Default false.
   */
  repair?: boolean
  /** Where repairs and recoveries are reported, one line each. Default: stderr. */
  log?: (line: string) => void
}

// Directories open in this process (SQLite's lock also refuses a second
// store here; this names the reason).
const OPEN = new Set<string>()

/**
 * The durable state of one node in a directory, in SQLite. Open it, build
 * the node from `store.state`, attach: `Store.open(dir, id)`, then
 * `store.attach(Gossip.restore(id, config, store.state))` (or `new Gossip`
 * for a new directory); or in one step {@link openGossip}. Or, as the
 * original API did, keep the resolved view in the database:
 * `store.attach(new Gossip(id, config, store.view))`.
 */
export class Store implements PersistentStore {
  /** Highest version reserved on disk. */
  reserved: number
  /** The directory, as given. */
  readonly dir: string
  /** The node id whose state this directory holds. */
  readonly id: string

  private readonly file: string
  private readonly real: string
  private readonly log: (line: string) => void
  private readonly reserveAhead: number
  private readonly repair: boolean
  // What the checks and repairs at open need.
  private readonly ctx: OpenContext
  private db: StateDatabase
  private readonly lock: DirectoryLock
  private readonly commits: GroupCommit
  private created: boolean
  private held: number | null = null
  // Entries written through the view, not committed yet (null: removed).
  private readonly overlay = new Map<string, Update | null>()
  private gossip: Gossip | null = null
  private viewMode = false
  private closed = false
  /** Called once, the first time a write to the directory fails (the node then refuses local writes). */
  onFail: ((err: Error) => void) | null = null
  private cached: Snapshot | undefined | null = null
  private proxy: StateStore | null = null
  // A repair rebuilt the database: its resolved flags are made again from
  // the node at attach.
  private repaired = false
  // lock.db knew this directory as the node's.
  private known = false
  private readonly onUpdate = (u: Update, resolved: boolean): void => this.record(u, resolved)
  private readonly onForget = (u: Update): void => this.forgot(u)
  // The record last written (`Persisted.record`, from gossip.persisted()).
  private deletesWritten: string | null = null

  private constructor(dir: string, id: string, options: StoreOptions) {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('store: dir must be a path')
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('store: id must be a non-empty string')
    this.reserveAhead = options.reserve ?? 1_000_000
    if (!(Number.isSafeInteger(this.reserveAhead) && this.reserveAhead >= 1)) throw new TypeError('store: reserve must be a positive integer')
    const checkpointBytes = options.checkpointBytes ?? 16 << 20
    if (!(checkpointBytes > 0)) throw new TypeError('store: checkpointBytes must be positive')
    const check = options.check ?? 'full'
    if (check !== 'quick' && check !== 'full' && check !== 'none') throw new TypeError("store: check must be 'quick', 'full' or 'none'")
    const sync = options.fsync ?? true
    this.repair = options.repair ?? false
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`))
    this.dir = dir
    this.id = id
    this.file = path.join(dir, DB)
    this.ctx = { dir, file: this.file, id, repair: this.repair, log: this.log }
    sqlite() // a missing better-sqlite3 says so here, before any catch below reads it as damage
    fs.mkdirSync(dir, { recursive: true })
    this.real = fs.realpathSync(dir)
    if (OPEN.has(this.real)) throw new StoreError('store_in_use', `store: ${dir} is already open in this process (two stores on one directory would be two writers)`)
    OPEN.add(this.real)
    let lock: DirectoryLock | undefined
    let sql: Database.Database | undefined
    try {
      lock = DirectoryLock.take(dir, id, this.log)
      this.lock = lock
      this.reserved = lock.reserved
      checkLog(this.ctx)
      // An empty file is what SQLite would take for a new database.
      const existed = fs.existsSync(this.file) && fs.statSync(this.file).size > 0
      if (!existed && (lock.known || fs.existsSync(`${this.file}-wal`))) {
        lostDatabase(this.ctx, lock.known, this.reserved)
        this.held = -1
      }
      this.known = lock.known
      this.created = !fs.existsSync(this.file)
      const opened = this.openState(check, 0)
      sql = opened.sql
      this.db = new StateDatabase(sql, id)
      const journal = {
        write: (ops: Op[], seq: number, forced: boolean): boolean => this.write(ops, seq, forced),
        changed: (): boolean => this.changed(),
        // Through the method, which a subclass or a test may wrap.
        checkpoint: (): boolean => this.checkpoint(),
      }
      this.commits = new GroupCommit({ dir, wal: `${this.file}-wal`, sync, checkpointBytes, journal, onFail: (err) => this.onFail?.(err) }, opened.meta.seq)
      checkAcked(this.ctx, this.commits.witness, this.commits.seq, this.created)
      if (this.created) {
        lock.writeReserved(this.reserved)
        this.commits.witness.writeSync(this.commits.seq)
        fsyncDir(dir)
      }
    } catch (err) {
      try {
        sql?.close()
      } catch {
        // closing a damaged database can fail too
      }
      lock?.close()
      OPEN.delete(this.real)
      throw err
    }
  }

  /**
   * Open (creating if needed) the data directory of node `id`. Throws if
   * the directory belongs to another id or is in use (by another process,
   * or already in this one), and a {@link StoreDamagedError} naming the
   * file if it is damaged (unless `options.repair`).
   */
  static open(dir: string, id: string, options: StoreOptions = {}): Store {
    return new Store(dir, id, options)
  }

  /**
   * What the directory holds, for `Gossip.restore` (undefined for a
   * directory this open created): every mapping, each row's checksum
   * checked, the reservation and how far the node held its own past.
   * Reads the whole table once, on first use.
   * @throws StoreDamagedError for rows that fail their checks (unless repairing).
   */
  get state(): Snapshot | undefined {
    // (A directory whose database a repair found missing is not new: it
    // keeps its reservation, and asks peers for its own past.)
    if (this.cached === null) this.cached = this.created && this.held === null ? undefined : this.load()
    return this.cached
  }

  /**
   * The resolved view in the database, as a store object for
   * `new Gossip(id, config, store.view)`: `view[key]` reads the key's entry
   * (checksum checked), and writes go into the next transaction. A node
   * built on it keeps its resolved view out of memory and answers `get`
   * from the database; at restart its own entries are its history again,
   * and other sources' mappings come back from peers (see docs/guide.md, "Keeping state").
   */
  get view(): StateStore {
    if (this.proxy === null) {
      const store = this
      this.proxy = makeView({
        get closed() {
          return store.closed
        },
        overlay: this.overlay,
        get: (key) => this.get(key),
        keys: () => this.db.resolvedKeys(),
        write: (key, entry) => {
          this.overlay.set(key, entry)
          this.commits.queue({ u: entry, key, entry: entry === null ? null : entry.source_id, fix: true })
          this.commits.schedule()
        },
        record: () => this.recordText(),
      })
    }
    return this.proxy
  }

  /** Start recording `gossip`'s applied updates. Its id must be the store's. */
  attach(gossip: Gossip): this {
    if (this.closed) throw new StoreError('store_closed', 'store: closed')
    if (this.gossip !== null) throw new StoreError('store_attached', 'store: already attached')
    if (gossip.id !== this.id) throw new StoreError('store_other_node', `store: directory of "${this.id}" cannot hold "${gossip.id}"`)
    this.gossip = gossip
    this.viewMode = gossip.state === this.proxy
    this.cached = null
    if (this.repaired && !this.viewMode) this.writeResolved(gossip.state)
    gossip.history.on('update', this.onUpdate)
    gossip.history.on('forget', this.onForget)
    return this
  }

  /**
   * @internal Mark each key's entry in `state` (a node's resolved view) as
   * resolved in the database, in one transaction: after a repair, which
   * rebuilds the table without them.
   */
  writeResolved(state: Readonly<Record<string, Update>>): void {
    this.db.markResolved(state)
    this.repaired = false
  }

  /** @internal True when this open repaired the directory (see {@link StoreOptions.repair}). */
  get wasRepaired(): boolean {
    return this.repaired
  }

  /** True when every update applied so far is on disk. */
  get durable(): boolean {
    return this.commits.durable
  }

  /**
   * The key's entry in the resolved view, read from the database (what the
   * node's last transaction left there; `flush()` first to include what is
   * queued). Undefined when the key has none.
   * @throws StoreDamagedError when the row fails its checksum.
   */
  get(key: string): Update | undefined {
    const row = this.db.entry(key)
    if (row === undefined) return undefined
    const u = rowUpdate(row)
    if (typeof u === 'string') throw new StoreDamagedError(this.file, [`the row of key ${JSON.stringify(key)} from ${JSON.stringify(row[1])}: ${u}`])
    return u
  }

  /**
   * A pass-through for what a node sends a peer that holds each of the
   * node's own writes back until it is on disk (writes waiting together
   * share one fsync; everything else passes at once). Put it between a
   * gossip stream and the wire, `stream.pipe(store.barrier()).pipe(serialize())`,
   * and no write of ours leaves the process that a crash could take back.
   */
  barrier(): Transform {
    return barrier(this)
  }

  /** @internal The highest own version already durable (see barrier). */
  get durableTo(): number {
    return this.commits.durableTo
  }

  /**
   * Resolves once every update applied so far is on disk (fsynced); rejects
   * once the disk failed. Group commit: flushes made while an fsync is in
   * flight share the next transaction and the next fsync, so a stream of
   * writes each awaiting its own flush costs one fsync per group, and a
   * lone write one transaction and one fsync.
   */
  flush(): Promise<void> {
    return this.commits.flush()
  }

  /**
   * Copy the write-ahead log into the database file (SQLite's checkpoint)
   * and empty it. Runs by itself when the log passes `checkpointBytes`.
   * Returns false when a reader (such as the sqlite3 shell) kept it from
   * completing.
   */
  checkpoint(): boolean {
    if (this.closed || this.commits.inFlight) return false
    this.commits.commit()
    if (!this.db.checkpoint()) return false
    // A completed checkpoint syncs the log and the database file.
    this.commits.checkpointed()
    return true
  }

  /**
   * Check the whole database now: SQLite's `integrity_check`, every row's
   * checksum, and at most one resolved entry per key. Returns the problems
   * found (none: an empty array).
   */
  check(): string[] {
    return this.db.check()
  }

  /** Flush, detach and release the directory. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.gossip !== null) {
      await this.flush().catch(() => undefined)
    }
    while (this.commits.inFlight || this.commits.witness.busy) await new Promise((resolve) => setImmediate(resolve))
    if (this.closed) return
    this.closed = true
    this.commits.stop()
    this.gossip?.history.off('update', this.onUpdate)
    this.gossip?.history.off('forget', this.onForget)
    try {
      if (!this.commits.failed) this.commits.finish()
    } finally {
      this.commits.close()
      // Closing the last connection checkpoints the log into the database
      // (synced) and removes it.
      this.db.close()
      this.lock.close()
      OPEN.delete(this.real)
    }
  }

  /**
   * @internal For tests: what kill -9 leaves. Nothing of this store runs or
   * writes again (not a queued transaction, not the end of an fsync in
   * flight), and its files are released as the kernel releases a dead
   * process's, without the checkpoint a close would make.
   */
  _abandon(): void {
    if (this.closed) return
    this.closed = true
    this.commits.stop()
    this.gossip?.history.off('update', this.onUpdate)
    this.gossip?.history.off('forget', this.onForget)
    this.commits.close(true)
    // A read-only connection open at the close keeps SQLite from
    // checkpointing and removing the log, and cannot do either itself.
    const reader = new (sqlite())(this.file, { readonly: true })
    try {
      reader.pragma('user_version')
      this.db.close()
    } finally {
      reader.close()
    }
    this.lock.close()
    OPEN.delete(this.real)
  }

  // The last commit (test/node/store/store.test.ts reads it to count transactions).
  private get seq(): number {
    return this.commits.seq
  }

  // ---- recording -------------------------------------------------------

  private record(u: Update, resolved: boolean): void {
    // (After a failure nothing is written again: nothing is queued.)
    if (this.closed || this.commits.failed) return
    const g = this.gossip as Gossip
    let entry: string | null | undefined
    let fix: boolean
    if (resolved) {
      entry = u.source_id
      fix = this.viewMode || g.sources(u.key).length > 1
    } else {
      const e = this.entryOf(g, u.key)
      entry = e === undefined ? null : e.source_id
      fix = true
    }
    this.commits.queue({ u, key: u.key, entry, fix })
    if (u.source_id === this.id) {
      this.commits.own(u.version)
      if (u.version > this.reserved) {
        // A store that cannot reserve has failed: said by flush(), never
        // thrown into the write that is under way.
        try {
          this.reserve(u.version + this.reserveAhead)
        } catch (err) {
          this.commits.fail(err as Error)
        }
        return
      }
    }
    this.commits.schedule()
  }

  // The key's entry as the node resolved it, deletes included.
  private entryOf(g: Gossip, key: string): Update | undefined {
    const e = this.viewMode ? (g.state as StateStore)[key] : g.history.entry(key)
    return typeof e === 'object' && e !== null ? e : undefined
  }

  private forgot(u: Update): void {
    if (this.closed || this.commits.failed) return
    const e = this.entryOf(this.gossip as Gossip, u.key)
    this.commits.queue({ u, key: u.key, entry: e === undefined ? null : e.source_id, fix: true, drop: true })
    this.commits.schedule()
  }

  // Put a reservation on disk before the version that needs it can leave
  // this process (we are inside the 'update' event of its write).
  private reserve(upTo: number): void {
    this.reserved = upTo
    this.commits.commitNow()
    this.lock.writeReserved(upTo)
    this.commits.markSynced(this.commits.seq)
  }

  // A commit's transaction (the Journal of GroupCommit): the ops, and what
  // the node keeps besides its mappings when it changed.
  private write(ops: Op[], seq: number, forced: boolean): boolean {
    const kept = this.gossip === null ? null : this.gossip.persisted()
    const held = kept === null ? this.held : kept.held
    const deletes = kept === null ? this.deletesWritten : kept.record
    if (ops.length === 0 && !forced && held === this.held && deletes === this.deletesWritten) return false
    this.db.write(ops, deletes !== this.deletesWritten && deletes !== null ? deletes : null, this.reserved, held, seq)
    this.held = held
    this.deletesWritten = deletes
    // What the view wrote is in the database now.
    if (this.overlay.size > 0) this.overlay.clear()
    return true
  }

  // Whether the node keeps something besides its mappings that is not written yet.
  private changed(): boolean {
    const g = this.gossip
    if (g === null) return false
    const kept = g.persisted()
    return kept.held !== this.held || kept.record !== this.deletesWritten
  }

  // The record as last written (`Persisted.record`, from gossip.persisted()), for
  // a node built on the view: read from the database once.
  private recordRead = false
  private recordText(): string | undefined {
    if (this.closed) return undefined
    if (!this.recordRead) {
      this.recordRead = true
      if (this.deletesWritten === null) this.loadDeletes()
    }
    return this.deletesWritten ?? undefined
  }

  // ---- opening and loading ---------------------------------------------

  // Open state.db; damage is refused, or (repairing) salvaged and opened
  // again (`seq`: the last commit known, 0 at open).
  private openState(check: 'quick' | 'full' | 'none', seq: number): { sql: Database.Database; meta: Meta } {
    let opened: { sql: Database.Database; meta: Meta }
    try {
      opened = openDatabase(this.ctx, { created: this.created, known: this.known, check, reserved: this.reserved, held: this.held })
    } catch (err) {
      const e = asDamage(err, this.file, [])
      if (!(e instanceof StoreDamagedError) || !this.repair || this.created) throw e
      this.salvage(e.problems, seq)
      return this.openState('none', seq)
    }
    this.held = opened.meta.held
    if (opened.meta.reserved > this.reserved) this.reserved = opened.meta.reserved
    return opened
  }

  // Rebuild state.db from what can be read (`seq`: the last commit known).
  private salvage(problems: string[], seq: number): void {
    salvage(this.ctx, this.lock, problems, { reserved: this.reserved, seq })
    this.repaired = true
  }

  private load(): Snapshot {
    const { updates, version, problems } = readMappings(this.db.sql, this.file)
    if (problems.length > 0) {
      if (!this.repair) throw new StoreDamagedError(this.file, problems)
      this.db.close()
      const seq = this.commits.seq
      this.salvage(problems, seq)
      const opened = this.openState('none', seq)
      this.db = new StateDatabase(opened.sql, this.id)
      this.commits.resume(opened.meta.seq)
      return this.load()
    }
    // In the table's order, by key; each row checked above, as restore
    // would check it again.
    markChecked(updates)
    const held = this.held === null ? undefined : Math.min(this.held, version)
    return { version, reserved: this.reserved, updates, held, ...this.loadDeletes() }
  }

  // What the node collected of deletes (see Snapshot.collected).
  private loadDeletes(): RecordFields {
    const { fields, record } = readDeletes(this.db.sql, this.file, this.log)
    if (record !== null) this.deletesWritten = record
    return fields
  }
}
