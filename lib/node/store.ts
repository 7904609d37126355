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
 * @packageDocumentation
 */
import type Database from 'better-sqlite3'
import * as fs from 'fs'
import * as path from 'path'
import type { Transform } from 'readable-stream'
import * as zlib from 'zlib'
import { barrier } from '../barrier'
import { Clock } from '../clock'
import { Gossip } from '../gossip'
import { checkedUpdate, RECORD_KEY } from '../shape'
import { markChecked, recordFields, type RecordFields } from '../snapshot'
import type { Config, Snapshot, StateStore, Update } from '../types'
import type { PersistentStore } from '../persistence'
import { scanWal } from './wal'
import { loadPeer } from './peer'

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

/** The directory holds damage the store refused to open (or repair could not mend). */
export class StoreDamagedError extends Error {
  /** The damaged file. */
  readonly file: string
  /** What is wrong with it, one line each. */
  readonly problems: string[]

  constructor(file: string, problems: string[]) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '')
    super(`store: ${file} is damaged: ${shown}. Open with repair: true (simple-scuttle node --repair) to keep what can be read; the damaged files are copied aside first`)
    this.name = 'StoreDamagedError'
    this.file = file
    this.problems = problems
  }
}

// better-sqlite3 is an optional peer dependency: loaded when a store opens.
const sqlite = (): typeof Database => loadPeer<typeof Database>('better-sqlite3', 'The SQLite store (simple-scuttle/sqlite, a node with data)')

const FORMAT = 1
// The value column of a delete and of a withdrawal (no JSON text is empty or "-").
const DELETED = ''
const WITHDRAWN = '-'
// A withdrawal naming the version it withdraws (R6): '~' and the version ('~' starts no JSON).
const WITHDRAWN_OF = '~'
const APPLICATION_ID = 0x53637574 // "Scut"
const DB = 'state.db'
const LOCK = 'lock.db'
const ACKED = 'acked'

// Rows read at a time when loading.
const PAGE = 4096

// How long the witness (acked) may wait for its fsync after it is written.
const WITNESS_MS = 100

// Directories open in this process (SQLite's lock also refuses a second
// store here; this names the reason).
const OPEN = new Set<string>()

const SCHEMA = `
CREATE TABLE meta (
  one      INTEGER PRIMARY KEY CHECK (one = 1),
  id       TEXT    NOT NULL,
  reserved INTEGER NOT NULL,
  held     INTEGER,
  seq      INTEGER NOT NULL,
  crc      INTEGER NOT NULL
);
CREATE TABLE mappings (
  key       TEXT    NOT NULL,
  source_id TEXT    NOT NULL,
  version   INTEGER NOT NULL,
  value     TEXT    NOT NULL,
  signature TEXT,
  resolved  INTEGER NOT NULL DEFAULT 0,
  crc       INTEGER NOT NULL,
  PRIMARY KEY (key, source_id)
) WITHOUT ROWID;
CREATE INDEX mappings_by_source ON mappings (source_id, version);
CREATE TABLE deletes (
  one      INTEGER PRIMARY KEY CHECK (one = 1),
  record   TEXT    NOT NULL,
  crc      INTEGER NOT NULL
);
CREATE VIEW state AS
  SELECT key, value, source_id, version, signature FROM mappings WHERE resolved = 1 AND value <> '';
`

const crc32: (text: string) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (text) => (zlib as unknown as { crc32(t: string): number }).crc32(text)
    : slowCrc32

let table: Int32Array | undefined
function slowCrc32(text: string): number {
  if (table === undefined) {
    table = new Int32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
      table[n] = c
    }
  }
  let crc = -1
  for (const b of Buffer.from(text)) crc = table[(crc ^ b) & 0xff] ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

// CRC-32 (the zlib polynomial, reflected) of a string's UTF-8, one byte at a
// time, continuing from `crc` (start at -1, end with (crc ^ -1) >>> 0): the
// same bytes Buffer.from(text) gives, a lone surrogate written as U+FFFD.
const CRC_TABLE = ((): Int32Array => {
  const t = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c
  }
  return t
})()

function crcOf(crc: number, text: string): number {
  const t = CRC_TABLE
  const n = text.length
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i)
    if (c < 0x80) {
      crc = t[(crc ^ c) & 0xff] ^ (crc >>> 8)
      continue
    }
    if (c < 0x800) {
      crc = t[(crc ^ (0xc0 | (c >> 6))) & 0xff] ^ (crc >>> 8)
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < n ? text.charCodeAt(i + 1) : 0
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          // A pair: one code point of four bytes.
          i++
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
          crc = t[(crc ^ (0xf0 | (c >> 18))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | ((c >> 12) & 0x3f))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | ((c >> 6) & 0x3f))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | (c & 0x3f))) & 0xff] ^ (crc >>> 8)
          continue
        }
        c = 0xfffd
      }
      crc = t[(crc ^ (0xe0 | (c >> 12))) & 0xff] ^ (crc >>> 8)
      crc = t[(crc ^ (0x80 | ((c >> 6) & 0x3f))) & 0xff] ^ (crc >>> 8)
    }
    crc = t[(crc ^ (0x80 | (c & 0x3f))) & 0xff] ^ (crc >>> 8)
  }
  return crc
}

// A zero byte, between columns.
function crcZero(crc: number): number {
  return CRC_TABLE[crc & 0xff] ^ (crc >>> 8)
}

// The decimal digits of a version (String(version)), for crcVersion.
const DIGITS = new Uint8Array(24)

// crcOf(crc, String(version)) without building the string, for the integers
// a version is (others go through String()).
function crcVersion(crc: number, version: number): number {
  if (!(Number.isSafeInteger(version) && version >= 0)) return crcOf(crc, String(version))
  // Two int32 halves of eight digits each (a double's division may be one off: mended).
  let hi = Math.floor(version / 1e8)
  let lo = version - hi * 1e8
  if (lo < 0) {
    hi--
    lo += 1e8
  } else if (lo >= 1e8) {
    hi++
    lo -= 1e8
  }
  let at = DIGITS.length
  const digits = DIGITS
  if (hi > 0) {
    for (let k = 0; k < 8; k++) {
      const q = (lo / 10) | 0
      digits[--at] = 48 + lo - q * 10
      lo = q
    }
    lo = hi
  }
  do {
    const q = (lo / 10) | 0
    digits[--at] = 48 + lo - q * 10
    lo = q
  } while (lo > 0)
  const t = CRC_TABLE
  for (; at < digits.length; at++) crc = t[(crc ^ digits[at]) & 0xff] ^ (crc >>> 8)
  return crc
}

/**
 * The CRC-32 a mappings row carries (over every column but `resolved`):
 * of `key NUL source_id NUL version NUL value NUL signature` in UTF-8.
 * Small rows are summed here column by column (no string is built, no call
 * into zlib: at a restart this runs once per row); large ones by zlib.
 */
export function rowCrc(key: string, source_id: string, version: number, value: string, signature: string | null): number {
  if (value.length > 256) return crc32(`${key}\u0000${source_id}\u0000${version}\u0000${value}\u0000${signature ?? ''}`)
  let crc = crcOf(-1, key)
  crc = crcOf(crcZero(crc), source_id)
  crc = crcVersion(crcZero(crc), version)
  crc = crcOf(crcZero(crc), value)
  crc = crcZero(crc)
  if (signature !== null) crc = crcOf(crc, signature)
  return (crc ^ -1) >>> 0
}

function identityCrc(id: string, reserved: number): number {
  return crc32(`identity\u0000${id}\u0000${reserved}`)
}

function metaCrc(id: string, reserved: number, held: number | null, seq: number): number {
  return crc32(`${id}\u0000${reserved}\u0000${held ?? ''}\u0000${seq}`)
}

function fsyncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = fs.openSync(dir, 'r')
    fs.fsyncSync(fd)
  } catch {
    // Some platforms cannot fsync a directory.
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-')
}

type Row = [key: string, source_id: string, version: number, value: string, signature: string | null, crc: number]

// A row read back as an update, or the reason it is not one.
function rowUpdate(row: Row): Update | string {
  const [key, source_id, version, value, signature, crc] = row
  if (typeof key !== 'string' || typeof source_id !== 'string' || typeof value !== 'string' || typeof version !== 'number') {
    return 'a column has the wrong type'
  }
  if (rowCrc(key, source_id, version, value, signature) !== crc) return 'its checksum does not match'
  let parsed: unknown = null
  // A delete (a tombstone) is stored with an empty value, which no JSON is.
  const of = value.startsWith(WITHDRAWN_OF)
  if (of) {
    parsed = /^[0-9]+$/.test(value.slice(1)) ? Number(value.slice(1)) : null
    if (parsed === null) return 'its withdrawal names no version'
  } else if (value !== DELETED && value !== WITHDRAWN) {
    try {
      parsed = JSON.parse(value)
    } catch {
      return 'its value is not JSON'
    }
  }
  // The same checks and limits as an update from a peer (checkedUpdate
  // copies what it checks: the row's fields go in through one object).
  const u = scratch
  u.key = key
  u.value = parsed
  u.source_id = source_id
  u.version = version
  u.signature = typeof signature === 'string' ? signature : undefined
  u.deleted = value === DELETED ? true : undefined
  u.withdrawn = value === WITHDRAWN || of ? true : undefined
  try {
    return checkedUpdate(u, 'the row')
  } catch (err) {
    return (err as Error).message
  } finally {
    u.value = null
  }
}

const scratch: { key: string; value: unknown; source_id: string; version: number; signature: string | undefined; deleted: true | undefined; withdrawn: true | undefined } = {
  key: '',
  value: null,
  source_id: '',
  version: 0,
  signature: undefined,
  deleted: undefined,
  withdrawn: undefined,
}

// One queued write: an update of the history and the key's entry after it
// (its source id; null: no entry; undefined: unchanged by this update),
// or (update null) a new entry written through the view.
interface Op {
  u: Update | null
  key: string
  entry: string | null | undefined
  fix: boolean
  /** `u` left the history (a delete covered it, or it was a collected delete). */
  drop?: boolean
}

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
  private readonly sync: boolean
  private readonly checkpointBytes: number
  private readonly repair: boolean
  private db: Database.Database
  private lock: Database.Database
  private created: boolean
  private held: number | null = null
  private seq = 0
  private committed = 0
  private synced = 0
  private ops: Op[] = []
  private overlay = new Map<string, Update | null>()
  private scheduled = false
  private syncing = false
  // A flush is waiting for the next commit: it is made even with nothing
  // queued (so that the commit number it waits for comes).
  private forced = false
  // The witness (acked): the commit it last made durable, and whether a
  // write of it is in flight.
  private witnessed = 0
  private witnessWritten = 0
  private witnessing = false
  private witnessTimer: NodeJS.Timeout | null = null
  private walFd: number | null = null
  private walIno = -1
  private ackFd: number | null = null
  private waiters: { target: number; resolve: () => void; reject: (err: Error) => void }[] = []
  private ownUnsynced: number[] = []
  private ownSynced = -Infinity
  private gossip: Gossip | null = null
  private viewMode = false
  private closed = false
  private failure: Error | null = null
  /** Called once, the first time a write to the directory fails (the node then refuses local writes). */
  onFail: ((err: Error) => void) | null = null
  private cached: Snapshot | undefined | null = null
  private proxy: StateStore | null = null
  // A repair rebuilt the database: its resolved flags are made again from
  // the node at attach.
  private repaired = false
  // lock.db knew this directory as the node's.
  private known = false
  private readonly statements: {
    upsert: Database.Statement<[string, string, number, string, string | null, number, number]>
    fix: Database.Statement<[string | null, string, string | null]>
    drop: Database.Statement<[string, string, number]>
    deletes: Database.Statement<[string, number]>
    meta: Database.Statement<[number, number | null, number, number]>
    entry: Database.Statement<[string], Row>
    keys: Database.Statement<[], string>
  }
  private readonly onUpdate = (u: Update, resolved: boolean): void => this.record(u, resolved)
  private readonly onForget = (u: Update): void => this.forgot(u)
  // The record last written (`Persisted.record`, from gossip.persisted()).
  private deletesWritten: string | null = null

  private constructor(dir: string, id: string, options: StoreOptions) {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('store: dir must be a path')
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('store: id must be a non-empty string')
    this.reserveAhead = options.reserve ?? 1_000_000
    if (!(Number.isSafeInteger(this.reserveAhead) && this.reserveAhead >= 1)) throw new TypeError('store: reserve must be a positive integer')
    this.checkpointBytes = options.checkpointBytes ?? 16 << 20
    if (!(this.checkpointBytes > 0)) throw new TypeError('store: checkpointBytes must be positive')
    const check = options.check ?? 'full'
    if (check !== 'quick' && check !== 'full' && check !== 'none') throw new TypeError("store: check must be 'quick', 'full' or 'none'")
    this.sync = options.fsync ?? true
    this.repair = options.repair ?? false
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`))
    this.dir = dir
    this.id = id
    this.file = path.join(dir, DB)
    sqlite() // a missing better-sqlite3 says so here, before any catch below reads it as damage
    fs.mkdirSync(dir, { recursive: true })
    this.real = fs.realpathSync(dir)
    if (OPEN.has(this.real)) throw new Error(`store: ${dir} is already open in this process (two stores on one directory would be two writers)`)
    OPEN.add(this.real)
    let lock: Database.Database | undefined
    let db: Database.Database | undefined
    try {
      const locked = this.takeLock()
      lock = locked.lock
      this.lock = lock
      this.reserved = locked.reserved
      this.checkWal()
      // An empty file is what SQLite would take for a new database.
      const existed = fs.existsSync(this.file) && fs.statSync(this.file).size > 0
      if (!existed && (locked.known || fs.existsSync(`${this.file}-wal`))) this.lostDatabase(locked.known)
      this.known = locked.known
      this.created = !fs.existsSync(this.file)
      db = this.openDb(check)
      this.db = db
      this.statements = {
        upsert: db.prepare(
          `INSERT INTO mappings (key, source_id, version, value, signature, resolved, crc) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (key, source_id) DO UPDATE SET version = excluded.version, value = excluded.value,
             signature = excluded.signature, resolved = excluded.resolved, crc = excluded.crc
           WHERE excluded.version > mappings.version`,
        ),
        fix: db.prepare('UPDATE mappings SET resolved = (source_id IS ?) WHERE key = ? AND resolved <> (source_id IS ?)'),
        meta: db.prepare('UPDATE meta SET reserved = ?, held = ?, seq = ?, crc = ? WHERE one = 1'),
        drop: db.prepare('DELETE FROM mappings WHERE key = ? AND source_id = ? AND version = ?'),
        deletes: db.prepare('INSERT INTO deletes (one, record, crc) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET record = excluded.record, crc = excluded.crc'),
        entry: db.prepare<[string], Row>('SELECT key, source_id, version, value, signature, crc FROM mappings WHERE key = ? AND resolved = 1').raw(true) as unknown as Database.Statement<[string], Row>,
        // In version order: a Gossip built on the view records its own entries
        // in this order, into version-sorted logs (see load()).
        keys: db.prepare<[], string>('SELECT key FROM mappings WHERE resolved = 1 ORDER BY version').pluck(true),
      }
      this.checkAcked()
      if (this.created) {
        this.writeLockReserved(this.reserved)
        this.writeAckedSync(this.seq)
        fsyncDir(dir)
      }
    } catch (err) {
      try {
        db?.close()
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
    if (this.proxy === null) this.proxy = this.makeView()
    return this.proxy
  }

  /** Start recording `gossip`'s applied updates. Its id must be the store's. */
  attach(gossip: Gossip): this {
    if (this.closed) throw new Error('store: closed')
    if (this.gossip !== null) throw new Error('store: already attached')
    if (gossip.id !== this.id) throw new Error(`store: directory of "${this.id}" cannot hold "${gossip.id}"`)
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
    const fix = this.statements.fix
    this.db.transaction(() => {
      for (const key of Object.keys(state)) fix.run(state[key].source_id, key, state[key].source_id)
    })()
    this.repaired = false
  }

  /** @internal True when this open repaired the directory (see {@link StoreOptions.repair}). */
  get wasRepaired(): boolean {
    return this.repaired
  }

  /** True when every update applied so far is on disk. */
  get durable(): boolean {
    return this.ops.length === 0 && this.synced >= this.committed
  }

  /**
   * The key's entry in the resolved view, read from the database (what the
   * node's last transaction left there; `flush()` first to include what is
   * queued). Undefined when the key has none.
   * @throws StoreDamagedError when the row fails its checksum.
   */
  get(key: string): Update | undefined {
    const row = this.statements.entry.get(key)
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
    return this.ownSynced
  }

  /**
   * Resolves once every update applied so far is on disk (fsynced); rejects
   * once the disk failed. Group commit: flushes made while an fsync is in
   * flight share the next transaction and the next fsync, so a stream of
   * writes each awaiting its own flush costs one fsync per group, and a
   * lone write one transaction and one fsync.
   */
  flush(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.closed) return Promise.resolve()
    // What is queued goes into the next commit.
    const target = this.dirty() ? this.seq + 1 : this.committed
    if (this.synced >= target) return Promise.resolve()
    if (target > this.committed) this.forced = true
    return new Promise((resolve, reject) => {
      this.waiters.push({ target, resolve, reject })
      this.kick()
    })
  }

  /**
   * Copy the write-ahead log into the database file (SQLite's checkpoint)
   * and empty it. Runs by itself when the log passes `checkpointBytes`.
   * Returns false when a reader (such as the sqlite3 shell) kept it from
   * completing.
   */
  checkpoint(): boolean {
    if (this.closed || this.syncing) return false
    this.commit()
    const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[]
    if (r.busy !== 0) return false
    // A completed checkpoint syncs the log and the database file.
    if (this.sync) this.setSynced(this.committed)
    this.settle()
    this.witness()
    return true
  }

  /**
   * Check the whole database now: SQLite's `integrity_check`, every row's
   * checksum, and at most one resolved entry per key. Returns the problems
   * found (none: an empty array).
   */
  check(): string[] {
    const problems: string[] = []
    for (const line of this.db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[]) {
      if (line.integrity_check !== 'ok') problems.push(line.integrity_check)
    }
    if (problems.length > 0) return problems
    const rows = this.db.prepare<[], Row>('SELECT key, source_id, version, value, signature, crc FROM mappings').raw(true)
    for (const row of rows.iterate() as IterableIterator<Row>) {
      const u = rowUpdate(row)
      if (typeof u === 'string') problems.push(`row (${JSON.stringify(row[0])}, ${JSON.stringify(row[1])}): ${u}`)
    }
    const doubled = this.db.prepare('SELECT key FROM mappings WHERE resolved = 1 GROUP BY key HAVING count(*) > 1').pluck(true).all() as string[]
    for (const key of doubled) problems.push(`key ${JSON.stringify(key)} has more than one resolved entry`)
    return problems
  }

  /** Flush, detach and release the directory. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.gossip !== null) {
      await this.flush().catch(() => undefined)
    }
    while (this.syncing || this.witnessing) await new Promise((resolve) => setImmediate(resolve))
    if (this.closed) return
    this.closed = true
    if (this.witnessTimer !== null) clearTimeout(this.witnessTimer)
    this.witnessTimer = null
    this.gossip?.history.off('update', this.onUpdate)
    this.gossip?.history.off('forget', this.onForget)
    try {
      if (this.failure === null) {
        this.commit()
        if (this.synced > this.witnessed || this.witnessWritten > this.witnessed) this.writeAckedSync(this.synced)
      }
    } finally {
      for (const w of this.waiters) w.reject(new Error('store: closed'))
      this.waiters = []
      if (this.walFd !== null) fs.closeSync(this.walFd)
      if (this.ackFd !== null) fs.closeSync(this.ackFd)
      this.walFd = this.ackFd = null
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
    if (this.witnessTimer !== null) clearTimeout(this.witnessTimer)
    this.witnessTimer = null
    this.gossip?.history.off('update', this.onUpdate)
    this.gossip?.history.off('forget', this.onForget)
    this.waiters = []
    if (this.walFd !== null) fs.closeSync(this.walFd)
    if (this.ackFd !== null) fs.closeSync(this.ackFd)
    this.walFd = this.ackFd = null
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

  // ---- recording -------------------------------------------------------

  private record(u: Update, resolved: boolean): void {
    // (After a failure nothing is written again: nothing is queued.)
    if (this.closed || this.failure !== null) return
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
    this.ops.push({ u, key: u.key, entry, fix })
    if (u.source_id === this.id) {
      this.ownUnsynced.push(this.seq + 1, u.version)
      if (u.version > this.reserved) {
        // A store that cannot reserve has failed: said by flush(), never
        // thrown into the write that is under way.
        try {
          this.reserve(u.version + this.reserveAhead)
        } catch (err) {
          this.fail(err as Error)
        }
        return
      }
    }
    this.schedule()
  }

  // The key's entry as the node resolved it, deletes included.
  private entryOf(g: Gossip, key: string): Update | undefined {
    const e = this.viewMode ? (g.state as StateStore)[key] : g.history.entry(key)
    return typeof e === 'object' && e !== null ? e : undefined
  }

  private forgot(u: Update): void {
    if (this.closed || this.failure !== null) return
    const e = this.entryOf(this.gossip as Gossip, u.key)
    this.ops.push({ u, key: u.key, entry: e === undefined ? null : e.source_id, fix: true, drop: true })
    this.schedule()
  }

  // Put a reservation on disk before the version that needs it can leave
  // this process (we are inside the 'update' event of its write).
  private reserve(upTo: number): void {
    this.reserved = upTo
    this.commit()
    if (this.sync) {
      this.openWal()
      fs.fdatasyncSync(this.walFd as number)
      this.writeAckedSync(this.committed)
    }
    this.writeLockReserved(upTo)
    this.setSynced(this.committed)
    this.settle()
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      if (this.closed || this.failure !== null) return
      try {
        this.commit()
        this.maybeCheckpoint()
      } catch (err) {
        this.fail(err as Error)
      }
    })
  }

  // Write every queued op in one transaction.
  private commit(): void {
    const ops = this.ops
    const gossip = this.gossip
    const kept = gossip === null ? null : gossip.persisted()
    const held = kept === null ? this.held : kept.held
    const deletes = kept === null ? this.deletesWritten : kept.record
    if (ops.length === 0 && !this.forced && held === this.held && deletes === this.deletesWritten) return
    this.ops = []
    this.forced = false
    const s = this.statements
    const seq = this.seq + 1
    this.db.transaction(() => {
      for (const op of ops) {
        const u = op.u
        if (op.drop === true && u !== null) s.drop.run(u.key, u.source_id, u.version)
        else if (u !== null) {
          const value =
            u.deleted === true ? DELETED : u.withdrawn === true ? (typeof u.value === 'number' ? `${WITHDRAWN_OF}${u.value}` : WITHDRAWN) : JSON.stringify(u.value)
          const signature = u.signature ?? null
          s.upsert.run(u.key, u.source_id, u.version, value, signature, op.entry === u.source_id ? 1 : 0, rowCrc(u.key, u.source_id, u.version, value, signature))
        }
        if (op.fix) s.fix.run(op.entry ?? null, op.key, op.entry ?? null)
      }
      if (deletes !== this.deletesWritten && deletes !== null) s.deletes.run(deletes, crc32(deletes))
      s.meta.run(this.reserved, held, seq, metaCrc(this.id, this.reserved, held, seq))
    })()
    this.seq = seq
    this.held = held
    this.deletesWritten = deletes
    this.committed = seq
    if (this.overlay.size > 0 && this.ops.length === 0) this.overlay.clear()
    if (!this.sync) {
      this.setSynced(seq)
      this.settle()
    }
  }

  // Whether a commit now would write anything.
  private dirty(): boolean {
    if (this.ops.length > 0 || this.forced) return true
    const g = this.gossip
    if (g === null) return false
    const kept = g.persisted()
    return kept.held !== this.held || kept.record !== this.deletesWritten
  }

  // The leader of a group: unless an fsync is in flight (its end calls this
  // again), commit what is queued and fsync it for whoever waits. Without
  // fsync, the commit at the next turn settles them.
  private kick(): void {
    if (this.syncing || this.closed || this.failure !== null) return
    if (!this.sync) {
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
    if (this.syncing || this.closed) return
    this.settle()
    if (this.waiters.length === 0) return
    const target = this.committed
    this.syncing = true
    const done = (err: Error | null): void => {
      this.syncing = false
      if (this.closed) return
      if (err !== null) {
        this.fail(err)
        return
      }
      this.setSynced(target)
      this.settle()
      // The witness follows, off the acknowledgement's path.
      this.witness()
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

  // The witness of what is durable (the log's fsync is done): written at
  // once (a process crash keeps it: kill -9 leaves nothing acknowledged
  // that it does not name), fsynced off the acknowledgement's path, at
  // most once every WITNESS_MS. It only ever names commits already
  // durable; a power cut can leave it naming an earlier one (by at most
  // WITNESS_MS and one fsync of acknowledgements), never a later one.
  private witness(): void {
    if (!this.sync || this.closed || this.failure !== null || this.synced <= this.witnessWritten) return
    try {
      fs.writeSync(this.ackedFd(), this.ackedBytes(this.synced), 0, 16, 0)
    } catch (err) {
      this.fail(err as Error)
      return
    }
    this.witnessWritten = this.synced
    if (this.witnessing || this.witnessTimer !== null) return
    this.witnessTimer = setTimeout(() => this.syncWitness(), WITNESS_MS)
    this.witnessTimer.unref()
  }

  private syncWitness(): void {
    this.witnessTimer = null
    if (this.closed || this.failure !== null || this.ackFd === null) return
    const seq = this.witnessWritten
    this.witnessing = true
    fs.fdatasync(this.ackFd, (err) => {
      this.witnessing = false
      if (this.closed) return
      if (err !== null) {
        this.fail(err)
        return
      }
      if (seq > this.witnessed) this.witnessed = seq
      if (this.witnessWritten > this.witnessed && this.witnessTimer === null) {
        this.witnessTimer = setTimeout(() => this.syncWitness(), WITNESS_MS)
        this.witnessTimer.unref()
      }
    })
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

  private fail(err: Error): Error {
    const first = this.failure === null
    this.failure = err
    if (first) this.onFail?.(err)
    for (const w of this.waiters) w.reject(err)
    this.waiters = []
    return err
  }

  private maybeCheckpoint(): void {
    if (this.syncing) return
    const size = this.walFd !== null ? fs.fstatSync(this.walFd).size : (fs.statSync(`${this.file}-wal`, { throwIfNoEntry: false })?.size ?? 0)
    if (size > this.checkpointBytes) this.checkpoint()
  }

  // The log's descriptor, for fsyncs of our own (SQLite, at synchronous =
  // NORMAL, does not sync at commit). Its name is fsynced into the
  // directory the first time, and again if SQLite ever made it anew.
  private openWal(): void {
    const file = `${this.file}-wal`
    const ino = fs.statSync(file).ino
    if (this.walFd !== null && ino === this.walIno) return
    if (this.walFd !== null) fs.closeSync(this.walFd)
    this.walFd = fs.openSync(file, 'r')
    this.walIno = ino
    if (this.sync) fsyncDir(this.dir)
  }

  // The witness: `seq` (durable in the database or its log) is acknowledged.
  private ackedBytes(seq: number): Buffer {
    const buf = Buffer.alloc(16)
    buf.writeUInt32BE(Math.floor(seq / 2 ** 32), 0)
    buf.writeUInt32BE(seq % 2 ** 32, 4)
    buf.writeUInt32BE(crc32(`acked ${seq}`), 8)
    return buf
  }

  private ackedFd(): number {
    if (this.ackFd === null) {
      const file = path.join(this.dir, ACKED)
      const created = !fs.existsSync(file)
      this.ackFd = fs.openSync(file, created ? 'w+' : 'r+')
      if (created && this.sync) fsyncDir(this.dir)
    }
    return this.ackFd
  }

  private writeAckedSync(seq: number): void {
    if (!this.sync) return
    const fd = this.ackedFd()
    fs.writeSync(fd, this.ackedBytes(seq), 0, 16, 0)
    fs.fdatasyncSync(fd)
    if (seq > this.witnessed) this.witnessed = seq
    if (seq > this.witnessWritten) this.witnessWritten = seq
  }

  // ---- the view --------------------------------------------------------

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

  private makeView(): StateStore {
    const store = this
    const read = (key: string | symbol): Update | undefined => {
      if (typeof key !== 'string' || store.closed) return undefined
      const o = store.overlay.get(key)
      if (o !== undefined) return o ?? undefined
      return store.get(key)
    }
    const write = (key: string, entry: Update | null): void => {
      if (store.closed) throw new Error('store: closed')
      store.overlay.set(key, entry)
      store.ops.push({ u: entry, key, entry: entry === null ? null : entry.source_id, fix: true })
      store.schedule()
    }
    return new Proxy(Object.create(null) as StateStore, {
      // The node's record of deletes: the store keeps it itself (see
      // Gossip.persisted) and gives it back at start. The node's other
      // reserved keys (its mappings that are not entries) the database
      // holds already: every mapping is a row.
      get: (_t, key) => (key === RECORD_KEY ? store.recordText() : read(key)),
      has: (_t, key) => read(key) !== undefined,
      set: (_t, key, value: unknown) => {
        if (typeof key !== 'string') return false
        if (key.charCodeAt(0) === 0) return true
        let u: Update
        try {
          u = checkedUpdate(value, 'the entry')
        } catch (err) {
          throw new TypeError(`store: ${JSON.stringify(key)}: ${(err as Error).message}`)
        }
        if (u.key !== key) throw new TypeError(`store: ${JSON.stringify(key)} must be set to an update of that key`)
        write(key, u)
        return true
      },
      deleteProperty: (_t, key) => {
        if (typeof key === 'string' && key.charCodeAt(0) !== 0) write(key, null)
        return true
      },
      ownKeys: () => {
        const keys = new Set<string>(store.closed ? [] : (store.statements.keys.all() as string[]))
        for (const [k, v] of store.overlay) {
          if (v === null) keys.delete(k)
          else keys.add(k)
        }
        return [...keys]
      },
      getOwnPropertyDescriptor: (_t, key) => {
        const value = read(key)
        return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true }
      },
      defineProperty: () => false,
      getPrototypeOf: () => null,
    })
  }

  // ---- opening -----------------------------------------------------------

  // Take the directory's lock (an exclusive lock on lock.db, held until
  // close or the process dies), and read what it remembers.
  private takeLock(): { lock: Database.Database; known: boolean; reserved: number } {
    const file = path.join(this.dir, LOCK)
    const open = (): { lock: Database.Database; row: { id: string; reserved: number } | undefined } => {
      const db = new (sqlite())(file, { timeout: 0 })
      try {
        db.pragma('locking_mode = EXCLUSIVE')
        db.exec('BEGIN EXCLUSIVE')
        db.exec(
          'CREATE TABLE IF NOT EXISTS identity (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL, format INTEGER NOT NULL, reserved INTEGER NOT NULL, crc INTEGER NOT NULL)',
        )
        const ok = db.pragma('quick_check', { simple: true }) === 'ok'
        const row = db.prepare('SELECT id, reserved, crc FROM identity').get() as { id: string; reserved: number; crc: number } | undefined
        if (!ok || (row !== undefined && (typeof row.id !== 'string' || typeof row.reserved !== 'number' || identityCrc(row.id, row.reserved) !== row.crc))) {
          throw Object.assign(new Error('its identity row is damaged'), { code: 'SQLITE_CORRUPT' })
        }
        if (row === undefined) db.prepare('INSERT INTO identity (one, id, format, reserved, crc) VALUES (1, ?, ?, 0, ?)').run(this.id, FORMAT, identityCrc(this.id, 0))
        db.exec('COMMIT')
        return { lock: db, row }
      } catch (err) {
        db.close()
        throw err
      }
    }
    let opened: ReturnType<typeof open>
    try {
      opened = open()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new Error(`store: ${this.dir} is in use by another store (another process, or this one)`)
      if (code !== 'SQLITE_CORRUPT' && code !== 'SQLITE_NOTADB') throw err
      // Only a lock and a reminder: set it aside and start it again.
      const aside = this.setAside([LOCK, `${LOCK}-journal`])
      this.log(`store: ${file} was damaged (${(err as Error).message}); moved to ${aside} and made anew`)
      for (const f of [LOCK, `${LOCK}-journal`]) fs.rmSync(path.join(this.dir, f), { force: true })
      opened = open()
    }
    const { lock, row } = opened
    if (row === undefined) return { lock, known: false, reserved: 0 }
    if (row.id !== this.id) {
      lock.close()
      throw new Error(`store: ${this.dir} holds node "${row.id}", not "${this.id}"`)
    }
    return { lock, known: true, reserved: Number.isSafeInteger(row.reserved) ? row.reserved : 0 }
  }

  private writeLockReserved(reserved: number): void {
    const row = this.lock.prepare('SELECT reserved FROM identity').get() as { reserved: number }
    const next = Math.max(row.reserved, reserved)
    this.lock.prepare('UPDATE identity SET reserved = ?, crc = ?').run(next, identityCrc(this.id, next))
  }

  // The log, checked before SQLite reads it.
  private checkWal(): void {
    const file = `${this.file}-wal`
    const scan = scanWal(file)
    if (scan === undefined) return
    if (scan.damage !== null) {
      if (!this.repair) throw new StoreDamagedError(file, [scan.damage])
      const aside = this.setAside([DB, `${DB}-wal`, `${DB}-shm`, ACKED])
      const cut = scan.pageSize === 0 ? 0 : 32 + scan.applied * (24 + scan.pageSize)
      fs.truncateSync(file, scan.applied === 0 ? 0 : cut)
      this.log(
        `store: repair: ${file}: ${scan.damage}; kept its first ${scan.applied} frames (${scan.commits} commits), ` +
          `dropped ${scan.droppedCommits} later commit(s): the newest transactions; what they held of other nodes comes back from peers, ` +
          `and so do this node's own writes among them that peers hold (the damaged log is in ${aside})`,
      )
      return
    }
    if (scan.ignored > 0 && scan.pageSize > 0) {
      this.log(
        `store: ${file}: ignoring its last ${scan.ignored} bytes (${scan.droppedCommits} commit frame(s)): a write cut short by a crash` +
          (scan.droppedCommits > 0 ? ', or damage at the end of the log' : ''),
      )
    }
  }

  // state.db is gone, but the directory was ours.
  private lostDatabase(known: boolean): void {
    const why = known ? `${LOCK} says this directory held node "${this.id}"` : 'its write-ahead log is still there'
    if (!this.repair) throw new StoreDamagedError(this.file, [`the database file is missing (${why})`])
    const aside = this.setAside([DB, `${DB}-wal`, `${DB}-shm`, ACKED, LOCK])
    for (const f of [DB, `${DB}-wal`, `${DB}-shm`, ACKED]) fs.rmSync(path.join(this.dir, f), { force: true })
    this.log(
      `store: repair: ${this.file} is missing: everything it held is lost here; starting empty, every mapping comes back from peers, this node's own writes too ` +
        `(it asks for all of them); versions stay above the reservation ${this.reserved} (copies in ${aside})`,
    )
    this.held = -1
  }

  private openDb(check: 'quick' | 'full' | 'none'): Database.Database {
    const created = this.created
    let db: Database.Database | undefined
    try {
      db = new (sqlite())(this.file, { timeout: 0 })
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      db.pragma('wal_autocheckpoint = 0')
      db.pragma('cell_size_check = ON')
      db.pragma('trusted_schema = OFF')
      if (created) {
        db.exec(SCHEMA)
        db.pragma(`application_id = ${APPLICATION_ID}`)
        db.pragma(`user_version = ${FORMAT}`)
        const held = this.held
        db.prepare('INSERT INTO meta (one, id, reserved, held, seq, crc) VALUES (1, ?, ?, ?, 0, ?)').run(this.id, this.reserved, held, metaCrc(this.id, this.reserved, held, 0))
        // Make the new database durable under its name before anything else.
        db.pragma('wal_checkpoint(TRUNCATE)')
        fsyncDir(this.dir)
        return db
      }
      const app = db.pragma('application_id', { simple: true }) as number
      const version = db.pragma('user_version', { simple: true }) as number
      if (app !== APPLICATION_ID) {
        // Ours by lock.db's word: a damaged header, not a stranger's file.
        if (this.known) throw new StoreDamagedError(this.file, [`its header is not a simple-scuttle store's (application_id ${app})`])
        throw new Error(`store: ${this.file} is not a simple-scuttle store (application_id ${app})`)
      }
      if (version !== FORMAT) throw new Error(`store: ${this.file} has format ${version}; this version reads format ${FORMAT}`)
      const problems: string[] = this.checkSize()
      if (check !== 'none') {
        for (const line of db.pragma(check === 'full' ? 'integrity_check' : 'quick_check', { simple: false }) as Record<string, string>[]) {
          const text = Object.values(line)[0]
          if (text !== 'ok') problems.push(text)
        }
      }
      const meta = this.readMeta(db, problems)
      if (problems.length > 0) throw new StoreDamagedError(this.file, problems)
      this.seq = this.committed = this.synced = meta.seq
      this.held = meta.held
      if (meta.reserved > this.reserved) this.reserved = meta.reserved
      return db
    } catch (err) {
      try {
        db?.close()
      } catch {
        // already closed
      }
      const e = this.damaged(err, [])
      if (!(e instanceof StoreDamagedError) || !this.repair || created) throw e
      this.salvage(e.problems)
      return this.openDb('none')
    }
  }

  // A database file cut short. (Only without a log to replay: a crash in
  // the middle of a checkpoint can leave the file short of its header's
  // page count, and the log, synced before, mends it.)
  private checkSize(): string[] {
    if ((fs.statSync(`${this.file}-wal`, { throwIfNoEntry: false })?.size ?? 0) > 0) return []
    const header = Buffer.alloc(100)
    const fd = fs.openSync(this.file, 'r')
    let size: number
    try {
      size = fs.fstatSync(fd).size
      fs.readSync(fd, header, 0, 100, 0)
    } finally {
      fs.closeSync(fd)
    }
    const raw = header.readUInt16BE(16)
    const pageSize = raw === 1 ? 65536 : raw
    const pages = header.readUInt32BE(28)
    // The page count is valid when its version matches the change counter.
    if (header.readUInt32BE(92) !== header.readUInt32BE(24) || pageSize < 512) return []
    if (size % pageSize !== 0 || size < pages * pageSize) {
      return [`the file is ${size} bytes, its header says ${pages} pages of ${pageSize} bytes (cut short)`]
    }
    return []
  }

  // SQLite's corruption errors as damage of the database file.
  private damaged(err: unknown, problems: string[]): Error {
    if (err instanceof StoreDamagedError) return err
    const code = String((err as { code?: string }).code)
    if (/^SQLITE_(CORRUPT|NOTADB|IOERR|CANTOPEN|FORMAT)/.test(code) || (code === 'SQLITE_ERROR' && /unsupported file format|malformed/.test((err as Error).message))) {
      return new StoreDamagedError(this.file, [...problems, (err as Error).message])
    }
    return err as Error
  }

  private readMeta(db: Database.Database, problems: string[]): { seq: number; held: number | null; reserved: number } {
    let row: { id: unknown; reserved: unknown; held: unknown; seq: unknown; crc: unknown } | undefined
    try {
      row = db.prepare('SELECT id, reserved, held, seq, crc FROM meta WHERE one = 1').get() as typeof row
    } catch (err) {
      problems.push(`table meta cannot be read: ${(err as Error).message}`)
      return { seq: 0, held: null, reserved: 0 }
    }
    if (row === undefined) {
      problems.push('table meta is empty')
      return { seq: 0, held: null, reserved: 0 }
    }
    const { id, reserved, held, seq, crc } = row
    if (
      typeof id !== 'string' ||
      typeof reserved !== 'number' ||
      typeof seq !== 'number' ||
      !(held === null || typeof held === 'number') ||
      metaCrc(id, reserved, held as number | null, seq) !== crc
    ) {
      problems.push('the row of table meta does not match its checksum')
      return { seq: 0, held: null, reserved: 0 }
    }
    if (id !== this.id) throw new Error(`store: ${this.dir} holds node "${id}", not "${this.id}"`)
    return { seq, held: held as number | null, reserved }
  }

  // The acknowledged commit count must be in the database.
  private checkAcked(): void {
    const file = path.join(this.dir, ACKED)
    let buf: Buffer
    try {
      buf = fs.readFileSync(file)
    } catch {
      if (!this.created) this.log(`store: ${file} is missing: cannot tell whether acknowledged transactions were lost; it is written anew`)
      this.writeAckedSync(this.seq)
      return
    }
    const seq = buf.length >= 12 ? buf.readUInt32BE(0) * 2 ** 32 + buf.readUInt32BE(4) : -1
    if (buf.length < 12 || buf.readUInt32BE(8) !== crc32(`acked ${seq}`)) {
      this.log(`store: ${file} is damaged; it is written anew at the next acknowledgement`)
      return
    }
    if (seq <= this.seq) {
      this.witnessed = this.witnessWritten = seq
      return
    }
    const lost = `transactions ${this.seq + 1} to ${seq} were acknowledged but are not in the database or its log (cut back or deleted)`
    if (!this.repair) throw new StoreDamagedError(`${this.file}-wal`, [lost])
    const aside = this.setAside([DB, `${DB}-wal`, ACKED])
    // Lost transactions are the newest: what they held of other nodes, the
    // node's digest no longer claims, and peers send it again; so are this
    // node's own writes that reached a peer.
    this.log(`store: repair: ${lost}; their updates come back from peers that hold them, the rest is lost (copies in ${aside})`)
    this.writeAckedSync(this.seq)
  }

  // Copy `names` (those that exist) into a new damaged-<time>/ folder, synced.
  private setAside(names: string[]): string {
    const aside = path.join(this.dir, `damaged-${stamp()}`)
    fs.mkdirSync(aside, { recursive: true })
    for (const name of names) {
      const from = path.join(this.dir, name)
      if (!fs.existsSync(from)) continue
      const to = path.join(aside, name)
      fs.copyFileSync(from, to)
      const fd = fs.openSync(to, 'r')
      fs.fsyncSync(fd)
      fs.closeSync(fd)
    }
    fsyncDir(aside)
    fsyncDir(this.dir)
    return aside
  }

  // ---- loading and repair ------------------------------------------------

  private load(): Snapshot {
    const updates: Update[] = []
    const problems: string[] = []
    let version = 0
    try {
      // In pages of rows by key (the table's order): a page read whole costs
      // less than a row at a time through an iterator.
      const columns = 'SELECT key, source_id, version, value, signature, crc FROM mappings'
      const first = this.db.prepare<[number], Row>(`${columns} ORDER BY key, source_id LIMIT ?`).raw(true)
      const next = this.db.prepare<[string, string, number], Row>(`${columns} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id LIMIT ?`).raw(true)
      for (let rows = first.all(PAGE) as Row[]; rows.length > 0; ) {
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i]
          const u = rowUpdate(row)
          if (typeof u === 'string') {
            problems.push(`row (${JSON.stringify(row[0])}, ${JSON.stringify(row[1])}): ${u}`)
            continue
          }
          updates.push(u)
          if (u.version > version) version = u.version
        }
        if (rows.length < PAGE) break
        // (Whatever a damaged row holds there, the rows after it follow it.)
        const last = rows[rows.length - 1]
        rows = next.all(last[0], last[1], PAGE) as Row[]
      }
    } catch (err) {
      const e = this.damaged(err, problems)
      if (!(e instanceof StoreDamagedError)) throw e
      problems.splice(0, problems.length, ...e.problems)
    }
    if (problems.length > 0) {
      if (!this.repair) throw new StoreDamagedError(this.file, problems)
      this.db.close()
      this.salvage(problems)
      this.db = this.openDb('none')
      this.rebindStatements()
      return this.load()
    }
    // In the table's order, by key (Gossip.restore takes each key's mappings
    // as they come, and sorts each source's log once); each row checked
    // above, as restore would check it again.
    markChecked(updates)
    const held = this.held === null ? undefined : Math.min(this.held, version)
    return { version, reserved: this.reserved, updates, held, ...this.loadDeletes() }
  }

  // What the node collected of deletes (see Snapshot.collected): a damaged
  // record is logged and dropped (it only guards against stale peers).
  private loadDeletes(): RecordFields {
    let row: { record: string; crc: number } | undefined
    try {
      row = this.db.prepare('SELECT record, crc FROM deletes WHERE one = 1').get() as typeof row
    } catch {
      return {}
    }
    if (row === undefined) return {}
    try {
      if (typeof row.record !== 'string' || crc32(row.record) !== row.crc) throw new Error('its checksum does not match')
      const d = recordFields(row.record)
      this.deletesWritten = row.record
      return d
    } catch (err) {
      this.log(`store: ${this.file}: the record of collected deletes is damaged (${(err as Error).message}): a peer behind those deletes could bring deleted keys back`)
      return {}
    }
  }

  private rebindStatements(): void {
    const db = this.db
    const s = this.statements as unknown as Record<string, Database.Statement>
    for (const [name, st] of Object.entries(s)) {
      let next = db.prepare(st.source)
      if (name === 'entry') next = next.raw(true)
      if (name === 'keys') next = next.pluck(true)
      s[name] = next
    }
  }

  // Rebuild state.db from what can be read of it: the damaged files are
  // copied aside first, every loss is logged, and the new database claims
  // nothing it lost (see docs/operations.md, "Damage and --repair").
  private salvage(problems: string[]): void {
    const aside = this.setAside([DB, `${DB}-wal`, `${DB}-shm`, ACKED, LOCK])
    const log = (line: string): void => this.log(`store: repair: ${line}`)
    log(`${this.file} is damaged: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}; copies in ${aside}`)
    const kept = new Map<string, Update>() // by key \0 source
    const known = new Map<string, { key: string; source_id: string; version: number }>()
    const at = (key: string, source_id: string): string => `${key}\u0000${source_id}`
    let unknown = false
    let meta: { reserved: number; held: number | null; seq: number } | null = null
    let db: Database.Database
    try {
      db = new (sqlite())(this.file, { timeout: 0 })
    } catch {
      // Not even a database any more: nothing to read.
      db = new (sqlite())(':memory:')
      db.exec(SCHEMA)
      unknown = true
    }
    try {
      db.pragma('cell_size_check = ON')
      db.pragma('trusted_schema = OFF')
      const m = db.prepare('SELECT id, reserved, held, seq, crc FROM meta WHERE one = 1').get() as { id: string; reserved: number; held: number | null; seq: number; crc: number } | undefined
      if (m !== undefined && metaCrc(m.id, m.reserved, m.held, m.seq) === m.crc && m.id === this.id) meta = m
    } catch {
      // meta unreadable: handled below
    }
    // The table, in key order, resuming past what cannot be read.
    const columns = 'SELECT key, source_id, version, value, signature, crc FROM mappings'
    let all: Database.Statement
    let after: Database.Statement
    try {
      all = db.prepare(`${columns} ORDER BY key, source_id`).raw(true)
      after = db.prepare(`${columns} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id`).raw(true)
    } catch {
      // The schema itself cannot be read.
      unknown = true
      db.close()
      db = new (sqlite())(':memory:')
      db.exec(SCHEMA)
      all = db.prepare(`${columns} ORDER BY key, source_id`).raw(true)
      after = db.prepare(`${columns} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id`).raw(true)
    }
    let cursor: [string, string] | null = null
    for (let attempt = 0; attempt < 1000; attempt++) {
      let progressed = false
      try {
        const rows = (cursor === null ? all.iterate() : after.iterate(cursor[0], cursor[1])) as IterableIterator<Row>
        for (const row of rows) {
          progressed = true
          cursor = [String(row[0]), String(row[1])]
          const u = rowUpdate(row)
          if (typeof u !== 'string') {
            kept.set(at(u.key, u.source_id), u)
            continue
          }
          if (typeof row[0] === 'string' && typeof row[1] === 'string') {
            known.set(at(row[0], row[1]), { key: row[0], source_id: row[1], version: typeof row[2] === 'number' ? row[2] : -Infinity })
          } else {
            unknown = true
          }
        }
        break
      } catch {
        unknown = true
        if (!progressed) break // no way past this point
      }
    }
    // The index names rows the table may have lost; read each one alone.
    try {
      for (const r of db.prepare('SELECT key, source_id, version FROM mappings INDEXED BY mappings_by_source').raw(true).iterate() as IterableIterator<[string, string, number]>) {
        const [key, source_id, version] = r
        if (typeof key !== 'string' || typeof source_id !== 'string') continue
        const k = at(key, source_id)
        const was = known.get(k)
        if (was !== undefined) {
          if (typeof version === 'number' && version < was.version) was.version = version
          continue
        }
        if (kept.has(k)) continue
        let row: Row | undefined
        try {
          row = db.prepare('SELECT key, source_id, version, value, signature, crc FROM mappings WHERE key = ? AND source_id = ?').raw(true).get(key, source_id) as Row | undefined
        } catch {
          row = undefined
        }
        const u = row === undefined ? 'it cannot be read' : rowUpdate(row)
        if (typeof u === 'string') known.set(k, { key, source_id, version: typeof version === 'number' ? version : -Infinity })
        else kept.set(k, u)
      }
    } catch {
      unknown = true
    }
    try {
      db.close()
    } catch {
      // a damaged database may fail to close cleanly
    }
    // What was lost, per source: the lowest version lost (-Infinity when
    // not known); with unknown losses, every source lost something.
    const lowest = new Map<string, number>()
    for (const l of known.values()) {
      log(`lost the mapping of ${JSON.stringify(l.key)} by ${JSON.stringify(l.source_id)}${Number.isFinite(l.version) ? ` at version ${l.version}` : ''}`)
      lowest.set(l.source_id, Math.min(lowest.get(l.source_id) ?? Infinity, l.version))
    }
    if (unknown) log('parts of the table could not be read at all: how much they held is not known')
    let held: number | null = meta?.held ?? null
    let setAside = 0
    for (const [k, u] of kept) {
      if (u.source_id === this.id) continue
      const low = unknown ? -Infinity : lowest.get(u.source_id)
      // A source's digest entry claims every version up to its newest: keep
      // none of its versions above one that was lost, so the node asks for
      // them again.
      if (low !== undefined && u.version >= low) {
        kept.delete(k)
        setAside++
      }
    }
    if (setAside > 0) log(`set aside ${setAside} mapping(s) of other nodes above a lost version of theirs: peers send them again`)
    const ownLow = unknown ? -Infinity : lowest.get(this.id)
    if (ownLow !== undefined) {
      held = Number.isFinite(ownLow) ? Math.min(held ?? Infinity, ownLow - 1) : -1
      log(`this node asks peers for its own writes above version ${held}`)
    }
    let reserved = Math.max(meta?.reserved ?? 0, this.reserved)
    if (meta === null) {
      for (const u of kept.values()) if (u.source_id === this.id && u.version > reserved) reserved = u.version
      log(`table meta was lost: the reservation is taken from ${LOCK} and the rows (${reserved}); a version above it that an earlier run used is noticed by peers and written again`)
      if (held === null) held = -1
    }
    this.rebuild([...kept.values()], reserved, held, Math.max(meta?.seq ?? 0, this.seq))
    log(`kept ${kept.size} mapping(s)`)
  }

  // Write a new state.db holding `updates` (resolved flags are made again
  // when the node restores), and put it in place of the damaged one.
  private rebuild(updates: Update[], reserved: number, held: number | null, seq: number): void {
    const tmp = `${this.file}.repair`
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) fs.rmSync(f, { force: true })
    const db = new (sqlite())(tmp)
    db.exec(SCHEMA)
    db.pragma(`application_id = ${APPLICATION_ID}`)
    db.pragma(`user_version = ${FORMAT}`)
    db.transaction(() => {
      db.prepare('INSERT INTO meta (one, id, reserved, held, seq, crc) VALUES (1, ?, ?, ?, ?, ?)').run(this.id, reserved, held, seq, metaCrc(this.id, reserved, held, seq))
      const insert = db.prepare('INSERT INTO mappings (key, source_id, version, value, signature, resolved, crc) VALUES (?, ?, ?, ?, ?, 0, ?)')
      for (const u of updates) {
        const value = JSON.stringify(u.value)
        const signature = u.signature ?? null
        insert.run(u.key, u.source_id, u.version, value, signature, rowCrc(u.key, u.source_id, u.version, value, signature))
      }
    })()
    db.close()
    const fd = fs.openSync(tmp, 'r')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    for (const f of [`${DB}-wal`, `${DB}-shm`]) fs.rmSync(path.join(this.dir, f), { force: true })
    fs.renameSync(tmp, this.file)
    fsyncDir(this.dir)
    this.writeLockReserved(reserved)
    this.repaired = true
  }
}

/** Options of {@link openGossip}: the store's, and how the node keeps its resolved view. */
export interface OpenGossipOptions extends StoreOptions {
  /**
   * Build the node on the database's resolved view (`new Gossip(id,
   * config, store.view)`, the original API's store object) instead of
   * restoring every mapping into memory (`Gossip.restore`, the default).
   */
  view?: boolean
}

/**
 * A node whose state lives in `dir`: restored from it if it holds any, and
 * recorded to it from now on. Await `store.flush()` before acknowledging a
 * write; `store.close()` when done. `T` types the node's values, as in
 * `Gossip<T>` (unknown by default; not checked at run time).
 */
export function openGossip<T = unknown>(id: string, config: Config, dir: string, options: OpenGossipOptions = {}): { gossip: Gossip<T>; store: Store } {
  const store = Store.open(dir, id, options)
  try {
    let gossip: Gossip<T>
    if (options.view === true) {
      // A repaired database lost its resolved flags: make them again once.
      if (store.wasRepaired) store.writeResolved(Gossip.restore(id, config, store.state as Snapshot).state)
      // The view knows no reservation: the clock starts above it all the same.
      const now = Clock.now
      Clock.now = () => Math.max(now(), store.reserved)
      try {
        gossip = new Gossip<T>(id, config, store.view)
      } finally {
        Clock.now = now
      }
    } else {
      const state = store.state
      gossip = state === undefined ? new Gossip<T>(id, config) : Gossip.restore<T>(id, config, state)
    }
    store.attach(gossip)
    return { gossip, store }
  } catch (err) {
    void store.close()
    throw err
  }
}
