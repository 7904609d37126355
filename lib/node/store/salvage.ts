/**
 * Repair of a damaged state.db: what can be read of it is kept, in a new
 * database put in its place (see docs/operations.md, "Damage and
 * --repair").
 *
 * Invariants: the damaged files are copied aside before anything is
 * changed, and every loss is logged; the new database claims nothing it
 * lost: a source with a lost mapping has its max held back below the
 * lowest lost version (a digest entry claims every version up to its
 * newest, so the node asks for them again), and a lost mapping of the
 * node's own lowers how far it holds its own past; the reservation never
 * goes down (it is taken from lock.db too), and the new file and its name
 * are fsynced before it replaces the old one. The record of deletes is
 * kept when it reads whole (its loss, logged, would let a peer behind the
 * node's collected deletes bring deleted keys back).
 */
import type Database from 'better-sqlite3'
import * as fs from 'fs'
import * as path from 'path'
import type { Update } from '../../types'
import { crc32, metaCrc, rowCrc } from './checksum'
import type { OpenContext } from './damage'
import { ACKED, DB, fsyncDir, LOCK, setAside } from './directory'
import { readDeletes } from './load'
import type { DirectoryLock } from './lock'
import { APPLICATION_ID, FORMAT, ROW, type Row, rowUpdate, SCHEMA, signatureColumn, sqlite, valueColumn } from './schema'

/**
 * Rebuild state.db from what can be read of it, given the `problems` found,
 * the reservation and the last commit the store knows (`reserved`, `seq`).
 */
export function salvage(ctx: OpenContext, lock: DirectoryLock, problems: string[], current: { reserved: number; seq: number }): void {
  const aside = setAside(ctx.dir, [DB, `${DB}-wal`, `${DB}-shm`, ACKED, LOCK])
  const log = (line: string): void => ctx.log(`store: repair: ${line}`)
  log(`${ctx.file} is damaged: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}; copies in ${aside}`)
  const kept = new Map<string, Update>() // by key \0 source
  const lost = new Map<string, { key: string; source_id: string; version: number }>()
  const at = (key: string, source_id: string): string => `${key}\u0000${source_id}`
  let unknown = false
  let record: string | null = null
  let meta: { reserved: number; held: number | null; seq: number } | null = null
  let db: Database.Database
  try {
    db = new (sqlite())(ctx.file, { timeout: 0 })
  } catch {
    // Not even a database any more: nothing to read.
    db = new (sqlite())(':memory:')
    db.exec(SCHEMA)
    unknown = true
    log('the record of collected deletes could not be read: a peer behind those deletes could bring deleted keys back')
  }
  try {
    db.pragma('cell_size_check = ON')
    db.pragma('trusted_schema = OFF')
    const m = db.prepare('SELECT id, reserved, held, seq, crc FROM meta WHERE one = 1').get() as { id: string; reserved: number; held: number | null; seq: number; crc: number } | undefined
    if (m !== undefined && metaCrc(m.id, m.reserved, m.held, m.seq) === m.crc && m.id === ctx.id) meta = m
  } catch {
    // meta unreadable: handled below
  }
  // (A record that does not read whole is logged there.)
  if (!unknown) record = readDeletes(db, ctx.file, log).record
  // The table, in key order, resuming past what cannot be read.
  let all: Database.Statement
  let after: Database.Statement
  try {
    all = db.prepare(`${ROW} ORDER BY key, source_id`).raw(true)
    after = db.prepare(`${ROW} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id`).raw(true)
  } catch {
    // The schema itself cannot be read.
    unknown = true
    db.close()
    db = new (sqlite())(':memory:')
    db.exec(SCHEMA)
    all = db.prepare(`${ROW} ORDER BY key, source_id`).raw(true)
    after = db.prepare(`${ROW} WHERE (key, source_id) > (?, ?) ORDER BY key, source_id`).raw(true)
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
          lost.set(at(row[0], row[1]), { key: row[0], source_id: row[1], version: typeof row[2] === 'number' ? row[2] : -Infinity })
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
      const was = lost.get(k)
      if (was !== undefined) {
        if (typeof version === 'number' && version < was.version) was.version = version
        continue
      }
      if (kept.has(k)) continue
      let row: Row | undefined
      try {
        row = db.prepare(`${ROW} WHERE key = ? AND source_id = ?`).raw(true).get(key, source_id) as Row | undefined
      } catch {
        row = undefined
      }
      const u = row === undefined ? 'it cannot be read' : rowUpdate(row)
      if (typeof u === 'string') lost.set(k, { key, source_id, version: typeof version === 'number' ? version : -Infinity })
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
  for (const l of lost.values()) {
    log(`lost the mapping of ${JSON.stringify(l.key)} by ${JSON.stringify(l.source_id)}${Number.isFinite(l.version) ? ` at version ${l.version}` : ''}`)
    lowest.set(l.source_id, Math.min(lowest.get(l.source_id) ?? Infinity, l.version))
  }
  if (unknown) log('parts of the table could not be read at all: the mappings they held are lost, how many is not known')
  let held: number | null = meta?.held ?? null
  // A source's digest entry claims every version up to its newest: of a
  // source with a lost version, the record holds its max back below it
  // (Snapshot.maxes), so the node asks for everything above again. What it
  // still holds there is kept: dropped, a value at or below the horizon of
  // collected deletes would be refused when it came back (rule 5).
  const maxes = new Map<string, number>()
  let above = 0
  for (const u of kept.values()) {
    if (u.source_id === ctx.id) continue
    const low = unknown ? -Infinity : lowest.get(u.source_id)
    if (low === undefined || u.version < low) continue
    above++
    // (-1 for none: the record is JSON.)
    maxes.set(u.source_id, Number.isFinite(low) ? low - 1 : -1)
  }
  if (above > 0) {
    record = withMaxes(record, maxes)
    log(`holds ${above} mapping(s) of other nodes above a lost version of theirs out of its digest: peers send them again`)
  }
  const horizon = horizonOf(record)
  let late = 0
  if (horizon !== -Infinity) for (const l of lost.values()) if (l.version <= horizon) late++
  if (late > 0 || (unknown && horizon !== -Infinity)) {
    log(`${unknown ? 'lost mappings' : `${late} lost mapping(s)`} at or below the horizon of collected deletes (${horizon}) will be refused when peers send them back (a delete collected since may have beaten them): their writers are told they are late`)
  }
  const ownLow = unknown ? -Infinity : lowest.get(ctx.id)
  if (ownLow !== undefined) {
    held = Number.isFinite(ownLow) ? Math.min(held ?? Infinity, ownLow - 1) : -1
    // Its lost writes come back as its past: a record naming them issued
    // would take each for a write it replaced (Snapshot.issued, R9).
    record = withoutIssued(record)
    log(`this node asks peers for its own writes above version ${held}`)
  }
  let reserved = Math.max(meta?.reserved ?? 0, current.reserved)
  if (meta === null) {
    for (const u of kept.values()) if (u.source_id === ctx.id && u.version > reserved) reserved = u.version
    log(`table meta was lost: the reservation is taken from ${LOCK} and the rows (${reserved}); a version above it that an earlier run used is noticed by peers and written again`)
    if (held === null) held = -1
  }
  rebuild(ctx, [...kept.values()], record, reserved, held, Math.max(meta?.seq ?? 0, current.seq))
  lock.writeReserved(reserved)
  log(`kept ${kept.size} mapping(s)`)
}

// Write a new state.db holding `updates` (resolved flags are made again
// when the node restores) and the record of deletes, and put it in place of
// the damaged one.
function rebuild(ctx: OpenContext, updates: Update[], record: string | null, reserved: number, held: number | null, seq: number): void {
  const tmp = `${ctx.file}.repair`
  for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) fs.rmSync(f, { force: true })
  const db = new (sqlite())(tmp)
  db.exec(SCHEMA)
  db.pragma(`application_id = ${APPLICATION_ID}`)
  db.pragma(`user_version = ${FORMAT}`)
  db.transaction(() => {
    db.prepare('INSERT INTO meta (one, id, reserved, held, seq, crc) VALUES (1, ?, ?, ?, ?, ?)').run(ctx.id, reserved, held, seq, metaCrc(ctx.id, reserved, held, seq))
    const insert = db.prepare('INSERT INTO mappings (key, source_id, version, value, signature, resolved, crc) VALUES (?, ?, ?, ?, ?, 0, ?)')
    for (const u of updates) {
      const value = valueColumn(u)
      const signature = signatureColumn(u)
      insert.run(u.key, u.source_id, u.version, value, signature, rowCrc(u.key, u.source_id, u.version, value, signature))
    }
    if (record !== null) db.prepare('INSERT INTO deletes (one, record, crc) VALUES (1, ?, ?)').run(record, crc32(record))
  })()
  db.close()
  const fd = fs.openSync(tmp, 'r')
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  for (const f of [`${DB}-wal`, `${DB}-shm`]) fs.rmSync(path.join(ctx.dir, f), { force: true })
  fs.renameSync(tmp, ctx.file)
  fsyncDir(ctx.dir)
}

// `record` (the record of deletes' text, or null) with each source's max
// held back to `maxes` (lowered only, as Snapshot.maxes).
function withMaxes(record: string | null, maxes: Map<string, number>): string {
  const parsed: unknown = record === null ? null : JSON.parse(record)
  const r = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>
  const had = typeof r.maxes === 'object' && r.maxes !== null ? (r.maxes as Record<string, unknown>) : {}
  const out: Record<string, number> = {}
  for (const [source, v] of Object.entries(had)) if (typeof v === 'number') out[source] = v
  for (const [source, v] of maxes) out[source] = Math.min(out[source] ?? Infinity, v)
  return JSON.stringify({ ...r, maxes: out })
}

// `record` without the versions its lives issued (Snapshot.issued).
function withoutIssued(record: string | null): string | null {
  const parsed: unknown = record === null ? null : JSON.parse(record)
  if (typeof parsed !== 'object' || parsed === null || !('issued' in parsed)) return record
  const r = { ...(parsed as Record<string, unknown>) }
  delete r.issued
  return JSON.stringify(r)
}

// The horizon a record of deletes names (Snapshot.horizon), or -Infinity.
function horizonOf(record: string | null): number {
  const r: unknown = record === null ? null : JSON.parse(record)
  const h = typeof r === 'object' && r !== null ? (r as { horizon?: unknown }).horizon : undefined
  return typeof h === 'number' ? h : -Infinity
}
