/**
 * Loading state.db at a restart (lib/node/store/load.ts): every mapping,
 * each row checked, and the node's record of deletes. Over a database in
 * memory with the store's schema. (Restarts: node/store/store.test.ts.)
 */
import * as assert from 'assert'
import Database from 'better-sqlite3'
import type { Update } from '../../../lib'
import { crc32, rowCrc } from '../../../lib/node/store/checksum'
import { readDeletes, readMappings } from '../../../lib/node/store/load'
import { SCHEMA, valueColumn } from '../../../lib/node/store/schema'

function database(updates: Update[]): Database.Database {
  const sql = new Database(':memory:')
  sql.exec(SCHEMA)
  const insert = sql.prepare('INSERT INTO mappings (key, source_id, version, value, signature, crc) VALUES (?, ?, ?, ?, ?, ?)')
  for (const u of updates) {
    const value = valueColumn(u)
    insert.run(u.key, u.source_id, u.version, value, null, rowCrc(u.key, u.source_id, u.version, value, null))
  }
  return sql
}

describe('node/store: load', () => {
  it('readMappings: every row, in key order, with the highest version; a row that fails its checks is a problem, not a mapping', () => {
    // More than a page of rows (4,096): read in pages, none lost at the seams.
    const updates = Array.from({ length: 5000 }, (_, i): Update => ({ key: `k${String(i).padStart(5, '0')}`, value: i, source_id: i % 2 === 0 ? 'a' : 'b', version: i + 1 }))
    const sql = database(updates)
    sql.prepare("UPDATE mappings SET value = '2' WHERE key = 'k00001'").run()
    const { updates: read, version, problems } = readMappings(sql, 'state.db')
    assert.strictEqual(read.length, 4999)
    assert.deepStrictEqual(read[0], updates[0])
    assert.deepStrictEqual(read[read.length - 1], updates[4999])
    assert.strictEqual(version, 5000)
    assert.deepStrictEqual(problems, ['row ("k00001", "b"): its checksum does not match'])
    sql.close()
  })

  it('readDeletes: the record when its checksum matches; none, or a damaged one logged and dropped', () => {
    const sql = database([])
    const lines: string[] = []
    const log = (l: string) => void lines.push(l)
    assert.deepStrictEqual(readDeletes(sql, 'state.db', log), { fields: {}, record: null })
    const record = JSON.stringify({ horizon: 7, collected: { a: 3 } })
    sql.prepare('INSERT INTO deletes (one, record, crc) VALUES (1, ?, ?)').run(record, crc32(record))
    const read = readDeletes(sql, 'state.db', log)
    assert.strictEqual(read.record, record)
    assert.strictEqual(read.fields.horizon, 7)
    assert.strictEqual(lines.length, 0)
    sql.prepare('UPDATE deletes SET crc = crc + 1').run()
    assert.deepStrictEqual(readDeletes(sql, 'state.db', log), { fields: {}, record: null })
    assert.strictEqual(lines.length, 1)
    assert.match(lines[0], /^store: state\.db: the record of collected deletes is damaged \(its checksum does not match\)/)
    sql.close()
  })
})
