/**
 * The store's data directory: the names of its files, an fsync of the
 * directory (which makes a new name durable), and copies of damaged files
 * set aside before a repair touches them.
 *
 * Invariant: setAside returns only once each copy, and the name of the
 * folder that holds them, is fsynced: a repair never destroys the only copy
 * of what it found.
 */
import * as fs from 'fs'
import * as path from 'path'

/** The database (with SQLite's `-wal` and `-shm` beside it). */
export const DB = 'state.db'
/** The directory's lock, which remembers its node id and reservation. */
export const LOCK = 'lock.db'
/** The witness of the commit count last acknowledged. */
export const ACKED = 'acked'

/** fsync a directory, so that the names made in it survive a power cut. */
export function fsyncDir(dir: string): void {
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

/** Copy `names` (those that exist) from `dir` into a new damaged-<time>/ folder in it, synced; returns the folder. */
export function setAside(dir: string, names: readonly string[]): string {
  const aside = path.join(dir, `damaged-${stamp()}`)
  fs.mkdirSync(aside, { recursive: true })
  for (const name of names) {
    const from = path.join(dir, name)
    if (!fs.existsSync(from)) continue
    const to = path.join(aside, name)
    fs.copyFileSync(from, to)
    const fd = fs.openSync(to, 'r')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
  }
  fsyncDir(aside)
  fsyncDir(dir)
  return aside
}
