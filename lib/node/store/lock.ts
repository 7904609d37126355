/**
 * The directory's lock and identity, in lock.db (a small SQLite database
 * of one row). Its exclusive lock, taken at open and held until close or
 * the process's death, keeps any other process (and any other store in this
 * one) out of the directory; its row remembers whose directory this is and
 * the highest version reserved, so that a lost state.db is noticed and a
 * restart never reuses a version.
 *
 * Invariants: lock.db keeps SQLite's rollback journal at synchronous =
 * FULL, so a reservation is durable once writeReserved returns; the row
 * carries a CRC-32, and a damaged lock.db (only a lock and a reminder) is
 * set aside, logged and made anew.
 */
import type Database from 'better-sqlite3'
import * as fs from 'fs'
import * as path from 'path'
import { identityCrc } from './checksum'
import { StoreError } from './damage'
import { LOCK, setAside } from './directory'
import { FORMAT, sqlite } from './schema'

export class DirectoryLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly id: string,
    /** lock.db knew this directory as the node's (it was opened before). */
    readonly known: boolean,
    /** The highest version it says was reserved (0 when it knew nothing). */
    readonly reserved: number,
  ) {}

  /**
   * Take `dir`'s lock for node `id`, and read what it remembers.
   * @throws when the directory is in use, or holds another node.
   */
  static take(dir: string, id: string, log: (line: string) => void): DirectoryLock {
    const file = path.join(dir, LOCK)
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
        if (row === undefined) db.prepare('INSERT INTO identity (one, id, format, reserved, crc) VALUES (1, ?, ?, 0, ?)').run(id, FORMAT, identityCrc(id, 0))
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
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new StoreError('store_in_use', `store: ${dir} is in use by another store: another process has it open (a node running on it?), or this one does: stop it, or give this node another --data`)
      if (code !== 'SQLITE_CORRUPT' && code !== 'SQLITE_NOTADB') throw err
      // Only a lock and a reminder: set it aside and start it again.
      const aside = setAside(dir, [LOCK, `${LOCK}-journal`])
      log(`store: ${file} was damaged (${(err as Error).message}); moved to ${aside} and made anew`)
      for (const f of [LOCK, `${LOCK}-journal`]) fs.rmSync(path.join(dir, f), { force: true })
      opened = open()
    }
    const { lock, row } = opened
    if (row === undefined) return new DirectoryLock(lock, id, false, 0)
    if (row.id !== id) {
      lock.close()
      throw new StoreError('store_other_node', `store: ${dir} holds node "${row.id}", not "${id}"`)
    }
    return new DirectoryLock(lock, id, true, Number.isSafeInteger(row.reserved) ? row.reserved : 0)
  }

  /** Remember `reserved` (or the higher reservation already there), durably. */
  writeReserved(reserved: number): void {
    const row = this.db.prepare('SELECT reserved FROM identity').get() as { reserved: number }
    const next = Math.max(row.reserved, reserved)
    this.db.prepare('UPDATE identity SET reserved = ?, crc = ?').run(next, identityCrc(this.id, next))
  }

  /** Release the directory. */
  close(): void {
    this.db.close()
  }
}
