/**
 * A reader of SQLite's write-ahead log format (https://sqlite.org/fileformat2.html#walformat),
 * used before SQLite opens a database to tell a crash's torn tail from
 * damage. SQLite itself stops at the first frame whose checksum fails and
 * silently ignores everything after it: right for a write cut short by a
 * crash (nothing after it was ever made durable), wrong for a flipped byte
 * in the middle of a log whose later commits were fsynced and acknowledged.
 *
 * Each frame's header carries the running checksum of the log up to and
 * including that frame, so a frame can be checked from its predecessor's
 * stored checksum even when the predecessor is damaged: a log whose bad
 * frame is followed by frames that check out from their predecessors is
 * damaged, not torn.
 *
 * @packageDocumentation
 */
import * as fs from 'fs'

/** What {@link scanWal} found in a write-ahead log. */
export interface WalScan {
  /** Bytes in the file. */
  bytes: number
  /** Page size the log was written with (0 when the header is unreadable). */
  pageSize: number
  /** Frames SQLite will apply: those up to the last valid commit frame. */
  applied: number
  /** Commits among them. */
  commits: number
  /**
   * Bytes after the applied frames that SQLite will ignore: a tail torn by
   * a crash, frames of a transaction that never committed, or left from an
   * older generation of the log. 0 when the log ends cleanly.
   */
  ignored: number
  /** Frames with a commit mark among the ignored bytes whose salts are current (commits SQLite will drop). */
  droppedCommits: number
  /** Why the log is damaged (a bad frame followed by good ones, or a bad header over frames), or null. */
  damage: string | null
}

const MAGIC = 0x377f0682
const HEADER = 32
const FRAME_HEADER = 24

// SQLite's checksum (walChecksumBytes): pairs of 32-bit words, in the byte
// order the log's magic number names, summed Fibonacci-style.
function checksum(buf: Buffer, from: number, to: number, seed: [number, number], bigEndian: boolean): [number, number] {
  let s0 = seed[0]
  let s1 = seed[1]
  for (let i = from; i < to; i += 8) {
    const x0 = bigEndian ? buf.readUInt32BE(i) : buf.readUInt32LE(i)
    const x1 = bigEndian ? buf.readUInt32BE(i + 4) : buf.readUInt32LE(i + 4)
    s0 = (s0 + x0 + s1) >>> 0
    s1 = (s1 + x1 + s0) >>> 0
  }
  return [s0, s1]
}

/**
 * Scan the write-ahead log `file` (undefined if there is none). Reads the
 * whole log once; never throws for what the file holds.
 */
export function scanWal(file: string): WalScan | undefined {
  let data: Buffer
  try {
    data = fs.readFileSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const scan: WalScan = { bytes: data.length, pageSize: 0, applied: 0, commits: 0, ignored: 0, droppedCommits: 0, damage: null }
  if (data.length < HEADER) {
    scan.ignored = data.length
    return scan
  }
  const magic = data.readUInt32BE(0)
  const pageSize = data.readUInt32BE(8)
  const bigEndian = (magic & 1) === 1
  const sound =
    (magic & ~1) === MAGIC &&
    data.readUInt32BE(4) === 3007000 &&
    pageSize >= 512 &&
    pageSize <= 65536 &&
    (pageSize & (pageSize - 1)) === 0
  const headerSum = sound ? checksum(data, 0, 24, [0, 0], bigEndian) : [0, 0]
  if (!sound || headerSum[0] !== data.readUInt32BE(24) || headerSum[1] !== data.readUInt32BE(28)) {
    scan.ignored = data.length
    // A header is one sector, written before any frame: a bad one over a
    // log long enough to hold frames is damage, not a crash.
    if (data.length >= HEADER + FRAME_HEADER + 512) scan.damage = 'its header is damaged (SQLite would ignore the whole log)'
    return scan
  }
  scan.pageSize = pageSize
  const salt1 = data.readUInt32BE(16)
  const salt2 = data.readUInt32BE(20)
  const frameSize = FRAME_HEADER + pageSize
  const frames = Math.floor((data.length - HEADER) / frameSize)
  const at = (i: number): number => HEADER + i * frameSize
  const salted = (i: number): boolean => data.readUInt32BE(at(i) + 8) === salt1 && data.readUInt32BE(at(i) + 12) === salt2
  const stored = (i: number): [number, number] => [data.readUInt32BE(at(i) + 16), data.readUInt32BE(at(i) + 20)]
  // Frame i checks out from `seed`, the running checksum before it.
  const checks = (i: number, seed: [number, number]): boolean => {
    if (!salted(i) || data.readUInt32BE(at(i)) === 0) return false
    let sum = checksum(data, at(i), at(i) + 8, seed, bigEndian)
    sum = checksum(data, at(i) + FRAME_HEADER, at(i) + frameSize, sum, bigEndian)
    const s = stored(i)
    return sum[0] === s[0] && sum[1] === s[1]
  }
  let seed: [number, number] = headerSum as [number, number]
  let valid = 0
  let frames_ok = 0
  let commits = 0
  for (let i = 0; i < frames; i++) {
    if (!checks(i, seed)) break
    seed = stored(i)
    frames_ok = i + 1
    if (data.readUInt32BE(at(i) + 4) !== 0) {
      valid = i + 1
      commits++
    }
  }
  scan.applied = valid
  scan.commits = commits
  scan.ignored = data.length - at(valid)
  // After the first bad frame: current frames that check out from their
  // predecessor's stored checksum mean the log was whole there once.
  for (let i = frames_ok + 1; i < frames; i++) {
    if (salted(i - 1) && checks(i, stored(i - 1))) {
      scan.damage = `frame ${frames_ok + 1} (byte ${at(frames_ok)}) is damaged, and frames after it are whole`
      break
    }
  }
  for (let i = valid; i < frames; i++) if (salted(i) && data.readUInt32BE(at(i) + 4) !== 0) scan.droppedCommits++
  return scan
}
