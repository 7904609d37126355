/**
 * The witness of acknowledged commits: the file `acked`, 16 bytes (the
 * commit count, big-endian in two 32-bit halves, and a CRC-32), which lets
 * an open notice a write-ahead log cut back or deleted rather than silently
 * lose acknowledged writes.
 *
 * Invariants: the file only ever names a commit already durable in the
 * database or its log (the log's fsync comes first); a count is written
 * before the acknowledgement it covers leaves (kill -9 keeps it), and
 * fsynced off the acknowledgement's path at most every WITNESS_MS, so after
 * a power cut it may name an earlier commit (by at most WITNESS_MS and one
 * fsync of acknowledgements), never a later one. Without fsync (the store's
 * `fsync: false`) nothing is written.
 */
import * as fs from 'fs'
import * as path from 'path'
import { crc32 } from './checksum'
import { ACKED, fsyncDir } from './directory'

// How long the witness may wait for its fsync after it is written.
const WITNESS_MS = 100

/** What the witness needs of the store's commits. */
export interface WitnessOwner {
  /** The store closed (or was abandoned). */
  readonly closed: boolean
  /** The store failed. */
  readonly failed: boolean
  /** A write or fsync of the witness failed: the store fails with it. */
  fail(err: Error): void
}

export class AckedWitness {
  /** The file's path. */
  readonly file: string
  // The commit the file durably names, and the one last written to it.
  private witnessed = 0
  private written = 0
  // An fsync of it is in flight, or waits on the timer.
  private syncing = false
  private timer: NodeJS.Timeout | null = null
  private fd: number | null = null

  /**
   * @param sync Whether the store fsyncs (without, the witness is not kept).
   * @param owner The store's commits: whether they closed or failed, and
   *   where a failed write or fsync of the witness goes.
   */
  constructor(
    private readonly dir: string,
    private readonly sync: boolean,
    private readonly owner: WitnessOwner,
  ) {
    this.file = path.join(dir, ACKED)
  }

  /** What the file names: a commit count, or that it is missing or damaged. */
  read(): number | 'missing' | 'damaged' {
    let buf: Buffer
    try {
      buf = fs.readFileSync(this.file)
    } catch {
      return 'missing'
    }
    const seq = buf.length >= 12 ? buf.readUInt32BE(0) * 2 ** 32 + buf.readUInt32BE(4) : -1
    if (buf.length < 12 || buf.readUInt32BE(8) !== crc32(`acked ${seq}`)) return 'damaged'
    return seq
  }

  /** The file, as read at open, names `seq` (durably). */
  names(seq: number): void {
    this.witnessed = this.written = seq
  }

  /** Whether commits up to `seq` are durable but the file does not durably name them yet. */
  lags(seq: number): boolean {
    return seq > this.witnessed || this.written > this.witnessed
  }

  /** An fsync of the file is in flight. */
  get busy(): boolean {
    return this.syncing
  }

  /** Write `seq` (durable in the database or its log) and fsync it before returning. */
  writeSync(seq: number): void {
    if (!this.sync) return
    const fd = this.open()
    fs.writeSync(fd, bytes(seq), 0, 16, 0)
    fs.fdatasyncSync(fd)
    if (seq > this.witnessed) this.witnessed = seq
    if (seq > this.written) this.written = seq
  }

  /**
   * Commits up to `seq` are durable (the log's fsync is done): write it at
   * once, fsync it within WITNESS_MS.
   */
  durable(seq: number): void {
    if (!this.sync || this.owner.closed || this.owner.failed || seq <= this.written) return
    try {
      fs.writeSync(this.open(), bytes(seq), 0, 16, 0)
    } catch (err) {
      this.owner.fail(err as Error)
      return
    }
    this.written = seq
    if (this.syncing || this.timer !== null) return
    this.later()
  }

  /** Drop the fsync waiting on the timer (the store is closing). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  /** Stop and close the file. */
  close(): void {
    this.stop()
    if (this.fd !== null) fs.closeSync(this.fd)
    this.fd = null
  }

  private later(): void {
    this.timer = setTimeout(() => this.syncNow(), WITNESS_MS)
    this.timer.unref()
  }

  private syncNow(): void {
    this.timer = null
    if (this.owner.closed || this.owner.failed || this.fd === null) return
    const seq = this.written
    this.syncing = true
    fs.fdatasync(this.fd, (err) => {
      this.syncing = false
      if (this.owner.closed) return
      if (err !== null) {
        this.owner.fail(err)
        return
      }
      if (seq > this.witnessed) this.witnessed = seq
      if (this.written > this.witnessed && this.timer === null) this.later()
    })
  }

  private open(): number {
    if (this.fd === null) {
      const created = !fs.existsSync(this.file)
      this.fd = fs.openSync(this.file, created ? 'w+' : 'r+')
      if (created && this.sync) fsyncDir(this.dir)
    }
    return this.fd
  }
}

// The file's bytes naming `seq`.
function bytes(seq: number): Buffer {
  const buf = Buffer.alloc(16)
  buf.writeUInt32BE(Math.floor(seq / 2 ** 32), 0)
  buf.writeUInt32BE(seq % 2 ** 32, 4)
  buf.writeUInt32BE(crc32(`acked ${seq}`), 8)
  return buf
}
