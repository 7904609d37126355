/**
 * Loading: what state.db holds, read back for `Gossip.restore` at a
 * restart: every mapping (each row checked as it is read) and the node's
 * record of deletes.
 *
 * Invariants: a mapping is loaded only when its row passes its checks
 * (a row that does not is a problem, never skipped silently); the record of
 * deletes is loaded only when its checksum matches, and a damaged one is
 * logged and dropped (it only guards against stale peers). Reads only.
 */
import type Database from 'better-sqlite3'
import { recordFields, type RecordFields } from '../../snapshot'
import type { Update } from '../../types'
import { crc32 } from './checksum'
import { asDamage, StoreDamagedError } from './damage'
import { ROW, type Row, rowUpdate } from './schema'

// Rows read at a time.
const PAGE = 4096

/**
 * Every mapping in the table, by key (the table's order: Gossip.restore
 * takes each key's mappings as they come, and sorts each source's log
 * once), the highest version among them, and the problems found (rows that
 * fail their checks, or SQLite's report of damage).
 * @throws SQLite's errors that are not damage.
 */
export function readMappings(sql: Database.Database, file: string): { updates: Update[]; version: number; problems: string[] } {
  const updates: Update[] = []
  const problems: string[] = []
  let version = 0
  try {
    // In pages of rows by key (the table's order): a page read whole costs
    // less than a row at a time through an iterator.
    const first = sql.prepare<[number], Row>(`${ROW} ORDER BY key, source_id LIMIT ?`).raw(true)
    const next = sql.prepare<[string, string, number], Row>(`${ROW} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id LIMIT ?`).raw(true)
    for (let rows = first.all(PAGE); rows.length > 0; ) {
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
      rows = next.all(last[0], last[1], PAGE)
    }
  } catch (err) {
    const e = asDamage(err, file, problems)
    if (!(e instanceof StoreDamagedError)) throw e
    problems.splice(0, problems.length, ...e.problems)
  }
  return { updates, version, problems }
}

/**
 * What the node collected of deletes (see Snapshot.collected), and the
 * record's text as written (null: none, or damaged).
 */
export function readDeletes(sql: Database.Database, file: string, log: (line: string) => void): { fields: RecordFields; record: string | null } {
  try {
    const row = sql.prepare('SELECT record, crc FROM deletes WHERE one = 1').get() as { record: unknown; crc: unknown } | undefined
    if (row === undefined) return { fields: {}, record: null }
    if (typeof row.record !== 'string' || crc32(row.record) !== row.crc) throw new Error('its checksum does not match')
    return { fields: recordFields(row.record), record: row.record }
  } catch (err) {
    log(`store: ${file}: the record of collected deletes is damaged (${(err as Error).message}): a peer behind those deletes could bring deleted keys back`)
    return { fields: {}, record: null }
  }
}
