/**
 * Damage found at open: what is checked before and after SQLite reads the
 * directory, and the error that refuses it. The write-ahead log is scanned
 * frame by frame before SQLite opens it (a damaged frame followed by whole
 * ones is damage, not a crash); the database file must be as long as its
 * header says; the commit count the `acked` witness names must be in the
 * database; a missing state.db in a directory lock.db knows is damage.
 *
 * Invariant: damage is refused with a {@link StoreDamagedError} naming the
 * file, unless the store repairs: then the damaged files are copied aside
 * first (setAside) and every loss is logged. Nothing acknowledged is
 * dropped silently.
 */
import * as fs from 'fs'
import * as path from 'path'
import { ACKED, DB, LOCK, setAside } from './directory'
import { scanWal } from './wal'
import type { AckedWitness } from './witness'

/** Why a store refused: one code each, for an operator's answer and for logs. */
export type StoreErrorCode = 'store_damaged' | 'store_in_use' | 'store_other_node' | 'store_format' | 'store_closed' | 'store_attached'

/** A store refused to open or to act; its message names the directory or file and what to do. */
export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

/** The directory holds damage the store refused to open (or repair could not mend). */
export class StoreDamagedError extends StoreError {
  /** The damaged file. */
  readonly file: string
  /** What is wrong with it, one line each. */
  readonly problems: string[]

  constructor(file: string, problems: string[]) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '')
    super('store_damaged', `store: ${file} is damaged: ${shown}. Open with repair: true (simple-scuttle node --repair) to keep what can be read; the damaged files are copied aside first`)
    this.name = 'StoreDamagedError'
    this.file = file
    this.problems = problems
  }
}

/** What the checks of one open know of it. */
export interface OpenContext {
  readonly dir: string
  /** state.db's path. */
  readonly file: string
  readonly id: string
  readonly repair: boolean
  readonly log: (line: string) => void
}

/** SQLite's corruption errors as damage of `file` (after `problems`); any other error as it is. */
export function asDamage(err: unknown, file: string, problems: string[]): Error {
  if (err instanceof StoreDamagedError) return err
  const code = String((err as { code?: string }).code)
  if (/^SQLITE_(CORRUPT|NOTADB|IOERR|CANTOPEN|FORMAT)/.test(code) || (code === 'SQLITE_ERROR' && /unsupported file format|malformed/.test((err as Error).message))) {
    return new StoreDamagedError(file, [...problems, (err as Error).message])
  }
  return err as Error
}

/**
 * The log, checked before SQLite reads it: damage refused, or (repairing)
 * the log cut before it; a torn tail (a crash mid-write) logged.
 */
export function checkLog(ctx: OpenContext): void {
  const file = `${ctx.file}-wal`
  const scan = scanWal(file)
  if (scan === undefined) return
  if (scan.damage !== null) {
    if (!ctx.repair) throw new StoreDamagedError(file, [scan.damage])
    const aside = setAside(ctx.dir, [DB, `${DB}-wal`, `${DB}-shm`, ACKED])
    const cut = scan.pageSize === 0 ? 0 : 32 + scan.applied * (24 + scan.pageSize)
    fs.truncateSync(file, scan.applied === 0 ? 0 : cut)
    ctx.log(
      `store: repair: ${file}: ${scan.damage}; kept its first ${scan.applied} frames (${scan.commits} commits), ` +
        `dropped ${scan.droppedCommits} later commit(s): the newest transactions; what they held of other nodes comes back from peers, ` +
        `and so do this node's own writes among them that peers hold (the damaged log is in ${aside})`,
    )
    return
  }
  if (scan.ignored > 0 && scan.pageSize > 0) {
    ctx.log(
      `store: ${file}: ignoring its last ${scan.ignored} bytes (${scan.droppedCommits} commit frame(s)): a write cut short by a crash` +
        (scan.droppedCommits > 0 ? ', or damage at the end of the log' : ''),
    )
  }
}

/**
 * state.db is gone, but the directory was ours (`known`: lock.db says so;
 * else its log is still there): refused, or (repairing) everything else
 * set aside and removed, to start empty above `reserved`.
 */
export function lostDatabase(ctx: OpenContext, known: boolean, reserved: number): void {
  const why = known ? `${LOCK} says this directory held node "${ctx.id}"` : 'its write-ahead log is still there'
  if (!ctx.repair) throw new StoreDamagedError(ctx.file, [`the database file is missing (${why})`])
  const aside = setAside(ctx.dir, [DB, `${DB}-wal`, `${DB}-shm`, ACKED, LOCK])
  for (const f of [DB, `${DB}-wal`, `${DB}-shm`, ACKED]) fs.rmSync(path.join(ctx.dir, f), { force: true })
  ctx.log(
    `store: repair: ${ctx.file} is missing: everything it held is lost here; starting empty, every mapping comes back from peers, this node's own writes too ` +
      `(it asks for all of them); versions stay above the reservation ${reserved} (copies in ${aside})`,
  )
}

/**
 * A database file cut short. (Only without a log to replay: a crash in
 * the middle of a checkpoint can leave the file short of its header's
 * page count, and the log, synced before, mends it.)
 */
export function checkSize(file: string): string[] {
  if ((fs.statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0) > 0) return []
  const header = Buffer.alloc(100)
  const fd = fs.openSync(file, 'r')
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

/**
 * The acknowledged commit count (the witness) must be in the database,
 * whose last commit is `seq`: a count above it means acknowledged
 * transactions were lost, refused or (repairing) logged. A missing or
 * damaged witness is logged and written anew.
 */
export function checkAcked(ctx: OpenContext, witness: AckedWitness, seq: number, created: boolean): void {
  const acked = witness.read()
  if (acked === 'missing') {
    if (!created) ctx.log(`store: ${witness.file} is missing: cannot tell whether acknowledged transactions were lost; it is written anew`)
    witness.writeSync(seq)
    return
  }
  if (acked === 'damaged') {
    ctx.log(`store: ${witness.file} is damaged; it is written anew at the next acknowledgement`)
    return
  }
  if (acked <= seq) {
    witness.names(acked)
    return
  }
  const lost = `transactions ${seq + 1} to ${acked} were acknowledged but are not in the database or its log (cut back or deleted)`
  if (!ctx.repair) throw new StoreDamagedError(`${ctx.file}-wal`, [lost])
  const aside = setAside(ctx.dir, [DB, `${DB}-wal`, ACKED])
  // Lost transactions are the newest: what they held of other nodes, the
  // node's digest no longer claims, and peers send it again; so are this
  // node's own writes that reached a peer.
  ctx.log(`store: repair: ${lost}; their updates come back from peers that hold them, the rest is lost (copies in ${aside})`)
  witness.writeSync(seq)
}
