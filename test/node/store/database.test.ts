/**
 * state.db (lib/node/store/database.ts): opened and checked, a commit's
 * transaction, the resolved view's rows. (The store over it:
 * node/store/store.test.ts.)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import Database from 'better-sqlite3'
import type { Update } from '../../../lib'
import type { OpenContext } from '../../../lib/node/store/damage'
import { StateDatabase, openDatabase, type OpenRequest } from '../../../lib/node/store/database'

describe('node/store: database', () => {
  let dir = ''
  const ctx = (id = 'a'): OpenContext => ({ dir, file: path.join(dir, 'state.db'), id, repair: false, log: () => undefined })
  const request = (o: Partial<OpenRequest> = {}): OpenRequest => ({ created: false, known: true, check: 'quick', reserved: 0, held: null, ...o })
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-db-'))
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("a commit's writes, record and meta row are there at the next open; entries are the resolved rows, in version order", () => {
    const made = openDatabase(ctx(), request({ created: true, reserved: 10, held: 3 }))
    assert.deepStrictEqual(made.meta, { seq: 0, held: 3, reserved: 10 })
    const db = new StateDatabase(made.sql, 'a')
    const x: Update = { key: 'x', value: 1, source_id: 'b', version: 5 }
    const y: Update = { key: 'y', value: 2, source_id: 'a', version: 2 }
    const older: Update = { key: 'x', value: 0, source_id: 'c', version: 1 }
    db.write(
      [
        { u: x, key: 'x', entry: 'b', fix: true },
        { u: older, key: 'x', entry: undefined, fix: false },
        { u: y, key: 'y', entry: 'a', fix: true },
      ],
      '{"horizon":1}',
      20,
      null,
      1,
    )
    assert.deepStrictEqual(db.resolvedKeys(), ['y', 'x'])
    assert.deepStrictEqual(db.entry('x')?.slice(0, 4), ['x', 'b', 5, '1'])
    assert.deepStrictEqual(db.check(), [])
    // A write below what a row holds does not replace it.
    db.write([{ u: { ...x, version: 4, value: 9 }, key: 'x', entry: undefined, fix: false }], null, 20, null, 2)
    assert.strictEqual(db.entry('x')?.[2], 5)
    db.close()
    const again = openDatabase(ctx(), request())
    assert.deepStrictEqual(again.meta, { seq: 2, held: null, reserved: 20 })
    again.sql.close()
  })

  it('refuses another node (store_other_node), a stranger\'s file (store_format), and a damaged meta row', () => {
    openDatabase(ctx(), request({ created: true })).sql.close()
    assert.throws(() => openDatabase(ctx('b'), request()), (e: Error & { code?: string }) => e.code === 'store_other_node')
    const raw = new Database(path.join(dir, 'state.db'))
    raw.prepare('UPDATE meta SET reserved = reserved + 1').run()
    raw.close()
    assert.throws(() => openDatabase(ctx(), request()), (e: Error & { code?: string; problems?: string[] }) => e.code === 'store_damaged' && e.problems?.[0] === 'the row of table meta does not match its checksum')
    const other = path.join(dir, 'other')
    fs.mkdirSync(other)
    const theirs = new Database(path.join(other, 'state.db'))
    theirs.exec('CREATE TABLE t (v)')
    theirs.close()
    const stranger: OpenContext = { ...ctx(), dir: other, file: path.join(other, 'state.db') }
    assert.throws(() => openDatabase(stranger, request({ known: false })), (e: Error & { code?: string }) => e.code === 'store_format' && /is not a simple-scuttle store \(application_id 0\)/.test(e.message))
    assert.throws(() => openDatabase(stranger, request({ known: true })), (e: Error & { code?: string }) => e.code === 'store_damaged')
  })

  it('check: a row whose checksum fails, and a key with two resolved entries', () => {
    const made = openDatabase(ctx(), request({ created: true }))
    const db = new StateDatabase(made.sql, 'a')
    const u = (source_id: string): Update => ({ key: 'k', value: 1, source_id, version: 1 })
    db.write([{ u: u('a'), key: 'k', entry: 'a', fix: false }, { u: u('b'), key: 'k', entry: 'b', fix: false }], null, 0, null, 1)
    made.sql.prepare("UPDATE mappings SET value = '2' WHERE source_id = 'a'").run()
    assert.deepStrictEqual(db.check(), ['row ("k", "a"): its checksum does not match', 'key "k" has more than one resolved entry'])
    db.markResolved({ k: u('b') })
    assert.deepStrictEqual(db.check(), ['row ("k", "a"): its checksum does not match'])
    db.close()
  })
})
