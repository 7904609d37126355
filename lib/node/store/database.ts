/**
 * state.db, the database (SQLite in WAL mode): opened, checked at open,
 * and written one transaction per commit. Table `mappings` holds every
 * source's newest mapping of each key (the paper's mu), with a `resolved`
 * flag on the key's entry in the resolved view; `meta` the node id, the
 * reservation, how far the node holds its own past and the commit count;
 * `deletes` the node's record of deletes.
 *
 * Invariants: a commit is one transaction, meta's commit count included,
 * so the count names exactly what is in the database; SQLite runs at
 * synchronous = NORMAL with no automatic checkpoint, so a commit is durable
 * only once the store fsyncs the log (or a checkpoint completes); a new
 * database is checkpointed and its name fsynced before open returns.
 */
import type Database from 'better-sqlite3'
import { crc32, metaCrc, rowCrc } from './checksum'
import { checkSize, type OpenContext, StoreDamagedError, StoreError } from './damage'
import { fsyncDir } from './directory'
import { APPLICATION_ID, FORMAT, ROW, type Row, rowUpdate, SCHEMA, signatureColumn, sqlite, valueColumn } from './schema'
import type { Update } from '../../types'

/**
 * One queued write: an update of the history and the key's entry after it
 * (its source id; null: no entry; undefined: unchanged by this update),
 * or (update null) a new entry written through the view.
 */
export interface Op {
  u: Update | null
  key: string
  entry: string | null | undefined
  fix: boolean
  /** `u` left the history (a delete covered it, or it was a collected delete). */
  drop?: boolean
}

/** The row of table meta. */
export interface Meta {
  /** The last commit. */
  seq: number
  /** How far the node holds its own past (null: all of it). */
  held: number | null
  /** Versions reserved. */
  reserved: number
}

/** What opening state.db needs besides the context. */
export interface OpenRequest {
  /** The file is new: make the schema and the meta row. */
  created: boolean
  /** lock.db knows the directory: a foreign header is damage, not a stranger's file. */
  known: boolean
  check: 'quick' | 'full' | 'none'
  reserved: number
  held: number | null
}

/**
 * Open (or create) state.db and check it: the header, the file's size,
 * SQLite's own check and the meta row.
 * @throws StoreDamagedError for the damage found; SQLite's errors as they come (see asDamage).
 */
export function openDatabase(ctx: OpenContext, req: OpenRequest): { sql: Database.Database; meta: Meta } {
  let db: Database.Database | undefined
  try {
    db = new (sqlite())(ctx.file, { timeout: 0 })
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.pragma('wal_autocheckpoint = 0')
    db.pragma('cell_size_check = ON')
    db.pragma('trusted_schema = OFF')
    if (req.created) {
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.pragma(`user_version = ${FORMAT}`)
      const { reserved, held } = req
      db.prepare('INSERT INTO meta (one, id, reserved, held, seq, crc) VALUES (1, ?, ?, ?, 0, ?)').run(ctx.id, reserved, held, metaCrc(ctx.id, reserved, held, 0))
      // Make the new database durable under its name before anything else.
      db.pragma('wal_checkpoint(TRUNCATE)')
      fsyncDir(ctx.dir)
      return { sql: db, meta: { seq: 0, held, reserved } }
    }
    const app = db.pragma('application_id', { simple: true }) as number
    const version = db.pragma('user_version', { simple: true }) as number
    if (app !== APPLICATION_ID) {
      // Ours by lock.db's word: a damaged header, not a stranger's file.
      if (req.known) throw new StoreDamagedError(ctx.file, [`its header is not a simple-scuttle store's (application_id ${app})`])
      throw new StoreError('store_format', `store: ${ctx.file} is not a simple-scuttle store (application_id ${app})`)
    }
    if (version !== FORMAT) throw new StoreError('store_format', `store: ${ctx.file} has format ${version}; this version reads format ${FORMAT}`)
    const problems: string[] = checkSize(ctx.file)
    if (req.check !== 'none') {
      for (const line of db.pragma(req.check === 'full' ? 'integrity_check' : 'quick_check', { simple: false }) as Record<string, string>[]) {
        const text = Object.values(line)[0]
        if (text !== 'ok') problems.push(text)
      }
    }
    const meta = readMeta(ctx, db, problems)
    if (problems.length > 0) throw new StoreDamagedError(ctx.file, problems)
    return { sql: db, meta }
  } catch (err) {
    try {
      db?.close()
    } catch {
      // already closed
    }
    throw err
  }
}

function readMeta(ctx: OpenContext, db: Database.Database, problems: string[]): Meta {
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
  if (id !== ctx.id) throw new StoreError('store_other_node', `store: ${ctx.dir} holds node "${id}", not "${ctx.id}"`)
  return { seq, held: held as number | null, reserved }
}

/** An open state.db: its statements, a commit's transaction, and reads of the resolved view. */
export class StateDatabase {
  private readonly upsert: Database.Statement<[string, string, number, string, string | null, number, number]>
  private readonly fix: Database.Statement<[string | null, string, string | null]>
  private readonly drop: Database.Statement<[string, string, number]>
  private readonly deletes: Database.Statement<[string, number]>
  private readonly meta: Database.Statement<[number, number | null, number, number]>
  private readonly entryRow: Database.Statement<[string], Row>
  private readonly keys: Database.Statement<[], string>

  /** @param sql The connection, from openDatabase (closed by close()). */
  constructor(
    readonly sql: Database.Database,
    private readonly id: string,
  ) {
    this.upsert = sql.prepare(
      `INSERT INTO mappings (key, source_id, version, value, signature, resolved, crc) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (key, source_id) DO UPDATE SET version = excluded.version, value = excluded.value,
             signature = excluded.signature, resolved = excluded.resolved, crc = excluded.crc
           WHERE excluded.version > mappings.version`,
    )
    this.fix = sql.prepare('UPDATE mappings SET resolved = (source_id IS ?) WHERE key = ? AND resolved <> (source_id IS ?)')
    this.meta = sql.prepare('UPDATE meta SET reserved = ?, held = ?, seq = ?, crc = ? WHERE one = 1')
    this.drop = sql.prepare('DELETE FROM mappings WHERE key = ? AND source_id = ? AND version = ?')
    this.deletes = sql.prepare('INSERT INTO deletes (one, record, crc) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET record = excluded.record, crc = excluded.crc')
    this.entryRow = sql.prepare<[string], Row>(`${ROW} WHERE key = ? AND resolved = 1`).raw(true)
    // In version order: a Gossip built on the view records its own entries
    // in this order, into version-sorted logs (see Store.state).
    this.keys = sql.prepare<[], string>('SELECT key FROM mappings WHERE resolved = 1 ORDER BY version').pluck(true)
  }

  /**
   * Commit `ops`, the node's record of deletes when it changed (`record`,
   * else null) and the meta row (commit number `seq`) in one transaction.
   */
  write(ops: readonly Op[], record: string | null, reserved: number, held: number | null, seq: number): void {
    this.sql.transaction(() => {
      for (const op of ops) {
        const u = op.u
        if (op.drop === true && u !== null) this.drop.run(u.key, u.source_id, u.version)
        else if (u !== null) {
          const value = valueColumn(u)
          const signature = signatureColumn(u)
          this.upsert.run(u.key, u.source_id, u.version, value, signature, op.entry === u.source_id ? 1 : 0, rowCrc(u.key, u.source_id, u.version, value, signature))
        }
        if (op.fix) this.fix.run(op.entry ?? null, op.key, op.entry ?? null)
      }
      if (record !== null) this.deletes.run(record, crc32(record))
      this.meta.run(reserved, held, seq, metaCrc(this.id, reserved, held, seq))
    })()
  }

  /** The row of the key's entry in the resolved view. */
  entry(key: string): Row | undefined {
    return this.entryRow.get(key)
  }

  /** The keys that have an entry in the resolved view, in version order. */
  resolvedKeys(): string[] {
    return this.keys.all()
  }

  /** Mark each key's entry in `state` (a node's resolved view) as resolved, in one transaction. */
  markResolved(state: Readonly<Record<string, Update>>): void {
    const fix = this.fix
    this.sql.transaction(() => {
      for (const key of Object.keys(state)) fix.run(state[key].source_id, key, state[key].source_id)
    })()
  }

  /** SQLite's checkpoint, emptying the log; false when a reader kept it from completing. */
  checkpoint(): boolean {
    const [r] = this.sql.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[]
    return r.busy === 0
  }

  /**
   * SQLite's `integrity_check`, every row's checksum, and at most one
   * resolved entry per key: the problems found.
   */
  check(): string[] {
    const problems: string[] = []
    for (const line of this.sql.pragma('integrity_check', { simple: false }) as { integrity_check: string }[]) {
      if (line.integrity_check !== 'ok') problems.push(line.integrity_check)
    }
    if (problems.length > 0) return problems
    const rows = this.sql.prepare<[], Row>(ROW).raw(true)
    for (const row of rows.iterate()) {
      const u = rowUpdate(row)
      if (typeof u === 'string') problems.push(`row (${JSON.stringify(row[0])}, ${JSON.stringify(row[1])}): ${u}`)
    }
    const doubled = this.sql.prepare('SELECT key FROM mappings WHERE resolved = 1 GROUP BY key HAVING count(*) > 1').pluck(true).all() as string[]
    for (const key of doubled) problems.push(`key ${JSON.stringify(key)} has more than one resolved entry`)
    return problems
  }

  close(): void {
    this.sql.close()
  }
}
