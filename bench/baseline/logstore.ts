/**
 * The log-and-snapshot store that lib/node/store.ts replaced (simple-scuttle
 * 2.0), kept unchanged as the baseline of bench/store.ts.
 *
 * Durable state for one node: an append log plus a snapshot, in a directory.
 *
 * Layout of the directory:
 * - `snapshot.json`: `{format, id, version, reserve, segment, updates}`,
 *   replaced atomically (write a temporary file, fsync, rename, fsync the
 *   directory), so it is always whole;
 * - `log-<segment>.ndjson`: one line per applied update (the update as
 *   JSON), and `{"reserve": N}` lines; only segments at or above the
 *   snapshot's `segment` count; a segment's name is fsynced into the
 *   directory when it is created, before anything in it is acknowledged;
 * - `LOCK`: the pid of the process using the directory.
 *
 * Acknowledgement: every applied update (the history's `'update'` event) is
 * appended; `flush()` resolves once everything appended so far is written
 * and fsynced, so a write acknowledged after `flush()` survives any crash.
 *
 * Versions are never reused. A version escapes the process only after the
 * `'update'` event of the write that used it; before that event returns,
 * the store makes sure a reservation `{"reserve": N}` with N at or above
 * the version is on disk (fsynced), reserving `reserve` versions ahead so
 * this costs one fsync per `reserve` local writes. On restart the clock
 * starts above every reservation, whatever the wall clock says, so a torn
 * log tail (lost lines after the last fsync) can lose unacknowledged writes
 * but never hands out a version that a peer may already hold.
 *
 * Restart: the snapshot's mappings, then the log replayed in order (each
 * line was the key's current mapping when it was appended, so the last line
 * of a key wins), give exactly the state, history and clock that were
 * acknowledged. A torn last line is cut off; damage anywhere else stops the
 * open with an error rather than silently dropping data.
 *
 * The log is folded into a new snapshot when it holds more lines than
 * `max(snapshotLines, state size)`, checked as the history compacts and
 * after each flush: the cost of snapshots stays proportional to the writes.
 *
 * @packageDocumentation
 */
import * as fs from 'fs'
import * as path from 'path'
import { Transform } from 'readable-stream'
import { Gossip } from '../../lib/gossip'
import { classify, Kind } from '../../lib/shape'
import type { Config, Snapshot, Update } from '../../lib/types'

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
  /** Least number of log lines before they are folded into a snapshot. Default 10000. */
  snapshotLines?: number
}

const FORMAT = 1
const SNAPSHOT = 'snapshot.json'
const LOCK = 'LOCK'
const SEGMENT = /^log-(\d+)\.ndjson$/

interface SnapshotFile {
  format: number
  id: string
  version: number
  reserve: number
  segment: number
  updates: readonly Update[]
  /** Snapshot.held of the node, when it was still fetching its own past. */
  held?: number
}

function segmentName(n: number): string {
  return `log-${String(n).padStart(8, '0')}.ndjson`
}

function fsyncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = fs.openSync(dir, 'r')
    fs.fsyncSync(fd)
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function checkUpdate(u: unknown, where: string): Update {
  const r = classify(u)
  if (r.kind !== Kind.Update) throw new Error(`${where}: not an update (${r.kind === Kind.Invalid ? r.reason : 'another shape'})`)
  const signature = (u as { signature?: unknown }).signature
  const { key, value, source_id, version } = r
  return typeof signature === 'string'
    ? { key, value, source_id, version, signature }
    : { key, value, source_id, version }
}

// One log line as an object, or undefined if it is not one.
function parseLine(text: string): object | undefined {
  try {
    const v: unknown = JSON.parse(text)
    return v !== null && typeof v === 'object' ? v : undefined
  } catch {
    return undefined
  }
}

function hasGoodLine(text: string, from: number): boolean {
  for (let nl = text.indexOf('\n', from); nl !== -1; from = nl + 1, nl = text.indexOf('\n', from)) {
    if (parseLine(text.slice(from, nl)) !== undefined) return true
  }
  return false
}

/**
 * The durable state of one node in a directory. Open it, build the node
 * from `store.state`, attach: `Store.open(dir, id)`, then
 * `store.attach(Gossip.restore(id, config, store.state))` (or `new Gossip`
 * for a new directory); or in one step
 * {@link openGossip}.
 */
export class Store {
  /** What the directory held: pass it to `Gossip.restore` (undefined for a new directory). */
  readonly state: Snapshot | undefined
  /** Highest version reserved on disk. */
  reserved: number
  // How far the restored state holds the node's past.
  private held = 0

  private readonly reserveAhead: number
  private readonly sync: boolean
  private readonly snapshotLines: number
  private fd: number
  private segment: number
  private lines = 0
  private pending: string[] = []
  private scheduled = false
  private written = 0
  private synced = 0
  // Our own versions whose lines are not yet known to be on disk, as
  // [line number, version] pairs in line order, and the highest own version
  // that is.
  private unsyncedOwn: number[] = []
  private ownSynced = -Infinity
  private syncing = false
  private waiters: { target: number; resolve: () => void; reject: (err: Error) => void }[] = []
  private gossip: Gossip | null = null
  private closed = false
  private snapshotWanted = false
  private failure: Error | null = null
  private readonly onUpdate = (u: Update): void => this.append(u)
  private readonly onCompaction = (): void => this.schedule()

  private constructor(
    readonly dir: string,
    readonly id: string,
    options: StoreOptions,
  ) {
    this.reserveAhead = options.reserve ?? 1_000_000
    if (!(Number.isSafeInteger(this.reserveAhead) && this.reserveAhead >= 1)) {
      throw new TypeError('store: reserve must be a positive integer')
    }
    this.sync = options.fsync ?? true
    this.snapshotLines = options.snapshotLines ?? 10_000
    if (!(Number.isSafeInteger(this.snapshotLines) && this.snapshotLines >= 1)) {
      throw new TypeError('store: snapshotLines must be a positive integer')
    }
    fs.mkdirSync(dir, { recursive: true })
    this.lock()
    try {
      const { state, reserved, segment, lines } = this.load()
      this.state = state
      this.held = state?.version ?? 0
      this.reserved = reserved
      this.segment = segment
      this.lines = lines
      this.fd = this.openSegment(segment)
      if (state === undefined) {
        // Bind the directory to this id before anything else is written.
        this.writeSnapshot({ format: FORMAT, id, version: 0, reserve: 0, segment, updates: [] })
      }
    } catch (err) {
      this.unlock()
      throw err
    }
  }

  /**
   * Open (creating if needed) the data directory of node `id`. Throws if
   * the directory belongs to another id, is in use by a live process, or is
   * damaged anywhere but in its last line.
   */
  static open(dir: string, id: string, options: StoreOptions = {}): Store {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('store: dir must be a path')
    return new Store(dir, id, options)
  }

  /** Start recording `gossip`'s applied updates. Its id must be the store's. */
  attach(gossip: Gossip): this {
    if (this.gossip !== null) throw new Error('store: already attached')
    if (gossip.id !== this.id) throw new Error(`store: directory of "${this.id}" cannot hold "${gossip.id}"`)
    this.gossip = gossip
    gossip.history.on('update', this.onUpdate)
    gossip.history.on('compaction', this.onCompaction)
    return this
  }

  /** True when every update applied so far is on disk. */
  get durable(): boolean {
    return this.pending.length === 0 && this.synced >= this.written
  }

  /**
   * A pass-through for what a node sends a peer that holds each of the
   * node's own writes back until it is on disk (writes waiting together
   * share one fsync; everything else passes at once). Put it between a
   * gossip stream and the wire, `stream.pipe(store.barrier()).pipe(serialize())`,
   * and no write of ours leaves the process that a crash could take back.
   * (Without it, a write that reached a peer but not the disk is fetched
   * back from peers after a restart; with it, that never has to happen.)
   */
  barrier(): Transform {
    const store = this
    return new Transform({
      objectMode: true,
      transform(chunk: { source_id?: unknown; version?: unknown; digest?: unknown }, _encoding, callback) {
        // Only our own writes wait (and share one fsync): what other sources
        // wrote, a crash cannot take from them, and digests promise nothing
        // a crash could break (versions are reserved).
        const own = chunk.source_id === store.id && chunk.digest !== true
        if (!own || (chunk.version as number) <= store.ownSynced) callback(null, chunk)
        else store.flush().then(() => callback(null, chunk), (err: Error) => callback(err))
      },
    })
  }

  /** Resolves once every update applied so far is on disk (fsynced). */
  flush(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.closed) return Promise.resolve()
    try {
      this.writePending()
    } catch (err) {
      return Promise.reject(this.fail(err as Error))
    }
    const target = this.written
    if (this.synced >= target) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.waiters.push({ target, resolve, reject })
      this.startSync()
    })
  }

  /** Flush, write a snapshot if due, detach and release the directory. */
  async close(): Promise<void> {
    if (this.closed) return
    if (this.gossip === null) {
      // Nothing was recorded: release at once (a failed open relies on it).
      this.closed = true
      fs.closeSync(this.fd)
      this.unlock()
      return
    }
    await this.flush().catch(() => undefined)
    while (this.syncing) await new Promise((resolve) => setImmediate(resolve))
    if (this.closed) return
    this.closed = true
    if (this.gossip !== null) {
      this.gossip.history.off('update', this.onUpdate)
      this.gossip.history.off('compaction', this.onCompaction)
    }
    try {
      this.writePending()
      if (this.sync) fs.fsyncSync(this.fd)
    } finally {
      fs.closeSync(this.fd)
      this.unlock()
    }
  }

  /** Fold the log into a new snapshot now. */
  snapshot(): void {
    const g = this.gossip
    if (g === null || this.closed) return
    // Never close the log under an fsync in flight: do it when that ends.
    if (this.syncing) {
      this.snapshotWanted = true
      return
    }
    this.snapshotWanted = false
    this.writePending()
    fs.fsyncSync(this.fd)
    this.setSynced(this.written)
    const next = this.segment + 1
    const { updates, held } = g.snapshot()
    // What the node holds of its past: the newest of its mappings (a
    // mapping replaced by another is held through the one that replaced it).
    let version = this.held
    for (const u of updates) if (u.version > version) version = u.version
    this.writeSnapshot({ format: FORMAT, id: this.id, version, reserve: this.reserved, segment: next, updates, held })
    fs.closeSync(this.fd)
    this.fd = this.openSegment(next)
    const old = this.segment
    this.segment = next
    this.lines = 0
    for (const name of fs.readdirSync(this.dir)) {
      const m = SEGMENT.exec(name)
      if (m !== null && Number(m[1]) <= old) fs.rmSync(path.join(this.dir, name), { force: true })
    }
    this.settle()
  }

  private setSynced(upTo: number): void {
    if (upTo <= this.synced) return
    this.synced = upTo
    const own = this.unsyncedOwn
    let i = 0
    while (i < own.length && own[i] <= upTo) {
      this.ownSynced = own[i + 1]
      i += 2
    }
    if (i > 0) own.splice(0, i)
  }

  // A line per update written to the history (every source's mappings; the
  // resolved view is what resolve makes of them again on restart).
  private append(u: Update): void {
    if (this.closed) return
    this.pending.push(JSON.stringify(u))
    if (u.source_id === this.id) this.unsyncedOwn.push(this.written + this.pending.length, u.version)
    if (u.source_id === this.id && u.version > this.reserved) this.reserve(u.version + this.reserveAhead)
    else this.schedule()
  }

  // Put a reservation on disk before the version that needs it can leave
  // this process (we are inside the 'update' event of its write).
  private reserve(upTo: number): void {
    this.pending.push(JSON.stringify({ reserve: upTo }))
    this.writePending()
    fs.fsyncSync(this.fd)
    this.reserved = upTo
    this.setSynced(this.written)
    this.settle()
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      if (this.closed) return
      try {
        this.writePending()
        if (this.lines > Math.max(this.snapshotLines, this.gossip?.history._resolvedCount ?? 0)) this.snapshot()
      } catch (err) {
        this.fail(err as Error)
      }
    })
  }

  private writePending(): void {
    const pending = this.pending
    if (pending.length === 0) return
    const text = `${pending.join('\n')}\n`
    this.pending = []
    const buf = Buffer.from(text)
    let off = 0
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off)
    this.written += pending.length
    this.lines += pending.length
  }

  private startSync(): void {
    if (this.syncing || this.waiters.length === 0) return
    const target = this.written
    if (!this.sync) {
      this.setSynced(target)
      this.settle()
      return
    }
    this.syncing = true
    fs.fsync(this.fd, (err) => {
      this.syncing = false
      if (err) {
        this.fail(err)
        return
      }
      this.setSynced(target)
      this.settle()
      try {
        if (this.snapshotWanted) this.snapshot()
      } catch (e) {
        this.fail(e as Error)
        return
      }
      this.startSync()
      this.schedule()
    })
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
    this.failure = err
    for (const w of this.waiters) w.reject(err)
    this.waiters = []
    return err
  }

  // Open segment `n` for appending. A segment this creates gets its name
  // fsynced into the directory before anything is written to it: an fsync
  // of a new file does not make its directory entry durable, and without it
  // a power cut could take the whole file, fsynced lines (acknowledged
  // writes, reservations) and all.
  private openSegment(n: number): number {
    const file = path.join(this.dir, segmentName(n))
    const created = !fs.existsSync(file)
    const fd = fs.openSync(file, 'a')
    if (created && this.sync) fsyncDir(this.dir)
    return fd
  }

  private writeSnapshot(s: SnapshotFile): void {
    const file = path.join(this.dir, SNAPSHOT)
    const tmp = `${file}.tmp`
    const fd = fs.openSync(tmp, 'w')
    try {
      const buf = Buffer.from(JSON.stringify(s))
      let off = 0
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
    fsyncDir(this.dir)
  }

  private load(): { state: Snapshot | undefined; reserved: number; segment: number; lines: number } {
    const dir = this.dir
    fs.rmSync(path.join(dir, `${SNAPSHOT}.tmp`), { force: true })
    let snap: SnapshotFile | undefined
    const file = path.join(dir, SNAPSHOT)
    if (fs.existsSync(file)) {
      try {
        snap = JSON.parse(fs.readFileSync(file, 'utf8')) as SnapshotFile
      } catch (err) {
        throw new Error(`store: ${file} is damaged: ${(err as Error).message}`)
      }
      if (snap === null || typeof snap !== 'object' || snap.format !== FORMAT || !Array.isArray(snap.updates)) {
        throw new Error(`store: ${file} is not a snapshot of this format`)
      }
      if (snap.id !== this.id) throw new Error(`store: ${dir} holds node "${snap.id}", not "${this.id}"`)
    }
    const first = snap?.segment ?? 1
    const segments: number[] = []
    for (const name of fs.readdirSync(dir)) {
      const m = SEGMENT.exec(name)
      if (m === null) continue
      const n = Number(m[1])
      if (n < first) fs.rmSync(path.join(dir, name), { force: true })
      else segments.push(n)
    }
    segments.sort((a, b) => a - b)

    // Every source's newest mapping of each key, by source and key.
    const mu = new Map<string, Update>()
    const keep = (u: Update): void => {
      const at = `${u.source_id.length}:${u.source_id}:${u.key}`
      const before = mu.get(at)
      if (before === undefined || before.version < u.version) mu.set(at, u)
    }
    let reserved = 0
    let version = 0
    if (snap !== undefined) {
      for (const raw of snap.updates) {
        const u = checkUpdate(raw, file)
        keep(u)
        if (u.version > version) version = u.version
      }
      reserved = Number.isSafeInteger(snap.reserve) ? snap.reserve : 0
      if (Number.isSafeInteger(snap.version) && snap.version > version) version = snap.version
    }
    let lines = 0
    for (let s = 0; s < segments.length; s++) {
      const name = path.join(dir, segmentName(segments[s]))
      const text = fs.readFileSync(name, 'utf8')
      const isLast = s === segments.length - 1
      let start = 0
      while (start < text.length) {
        const nl = text.indexOf('\n', start)
        const entry = nl === -1 ? undefined : parseLine(text.slice(start, nl))
        if (entry === undefined) {
          // A torn tail (the crash came before it was acknowledged) is cut
          // off; damage followed by good lines is not a crash's doing.
          const at = Buffer.byteLength(text.slice(0, start))
          if (!isLast || hasGoodLine(text, start)) throw new Error(`store: ${name} is damaged at byte ${at}`)
          fs.truncateSync(name, at)
          break
        }
        lines++
        const r = (entry as { reserve?: unknown }).reserve
        if (typeof r === 'number') {
          if (r > reserved) reserved = r
        } else {
          const u = checkUpdate(entry, name)
          keep(u)
          if (u.version > version) version = u.version
        }
        start = nl + 1
      }
    }
    const segment = segments.length > 0 ? segments[segments.length - 1] : first
    if (snap === undefined && segments.length === 0) return { state: undefined, reserved, segment, lines }
    // `version` is what the node holds of its past; versions up to
    // `reserved` may have been used too, so its clock starts above them.
    // A node that was still fetching its own past says how far it held it;
    // later log lines cannot raise that (the past may have gaps).
    const held = typeof snap?.held === 'number' ? Math.min(snap.held, version) : undefined
    return { state: { version, reserved, updates: [...mu.values()], held }, reserved, segment, lines }
  }

  private lock(): void {
    const file = path.join(this.dir, LOCK)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx' })
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        const pid = Number(fs.readFileSync(file, 'utf8'))
        if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new Error(`store: ${this.dir} is in use by process ${pid}`)
        }
        // Left behind by a process that died (or by this one): take it over.
        fs.rmSync(file, { force: true })
      }
    }
    throw new Error(`store: could not lock ${this.dir}`)
  }

  private unlock(): void {
    fs.rmSync(path.join(this.dir, LOCK), { force: true })
  }
}

/**
 * A node whose state lives in `dir`: restored from it if it holds any, and
 * recorded to it from now on. Await `store.flush()` before acknowledging a
 * write; `store.close()` when done.
 */
export function openGossip(
  id: string,
  config: Config,
  dir: string,
  options: StoreOptions = {},
): { gossip: Gossip; store: Store } {
  const store = Store.open(dir, id, options)
  try {
    const gossip = store.state === undefined ? new Gossip(id, config) : Gossip.restore(id, config, store.state)
    store.attach(gossip)
    return { gossip, store }
  } catch (err) {
    void store.close()
    throw err
  }
}

export { openGossip as openLogGossip, Store as LogStore }
