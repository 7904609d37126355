/**
 * Damage found at open (lib/node/store/damage.ts): the errors that refuse
 * it, a database cut short, a database gone. (Through Store.open, with
 * repair: node/store/store.test.ts.)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import Database from 'better-sqlite3'
import { StoreDamagedError, StoreError, asDamage, checkSize, lostDatabase, type OpenContext } from '../../../lib/node/store/damage'

describe('node/store: damage', () => {
  let dir = ''
  const lines: string[] = []
  const ctx = (repair: boolean): OpenContext => ({ dir, file: path.join(dir, 'state.db'), id: 'a', repair, log: (l) => lines.push(l) })
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-damage-'))
    lines.length = 0
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("StoreDamagedError names the file and at most five problems, with what to do; code store_damaged", () => {
    const e = new StoreDamagedError('/d/state.db', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'])
    assert.ok(e instanceof StoreError)
    assert.strictEqual(e.code, 'store_damaged')
    assert.strictEqual(e.name, 'StoreDamagedError')
    assert.deepStrictEqual(e.problems.length, 7)
    assert.match(e.message, /^store: \/d\/state\.db is damaged: p1; p2; p3; p4; p5; and 2 more\. Open with repair: true/)
  })

  it("asDamage: SQLite's corruption errors become damage of the file, after the problems found; any other error stays", () => {
    const corrupt = Object.assign(new Error('database disk image is malformed'), { code: 'SQLITE_CORRUPT' })
    const d = asDamage(corrupt, 'f', ['first'])
    assert.ok(d instanceof StoreDamagedError)
    assert.deepStrictEqual([d.file, d.problems], ['f', ['first', 'database disk image is malformed']])
    const format = Object.assign(new Error('unsupported file format'), { code: 'SQLITE_ERROR' })
    assert.ok(asDamage(format, 'f', []) instanceof StoreDamagedError)
    const other = Object.assign(new Error('no such table'), { code: 'SQLITE_ERROR' })
    assert.strictEqual(asDamage(other, 'f', []), other)
    assert.strictEqual(asDamage(d, 'g', ['x']), d)
  })

  it('checkSize: a database shorter than its header says is cut short; a whole one, or one with a log, is not', () => {
    const file = path.join(dir, 'state.db')
    const db = new Database(file)
    db.exec('CREATE TABLE t (v TEXT)')
    const insert = db.prepare('INSERT INTO t VALUES (?)')
    db.transaction(() => {
      for (let i = 0; i < 50; i++) insert.run('x'.repeat(500))
    })()
    const page = db.pragma('page_size', { simple: true }) as number
    db.close()
    assert.deepStrictEqual(checkSize(file), [])
    const size = fs.statSync(file).size
    fs.truncateSync(file, size - page)
    assert.deepStrictEqual(checkSize(file), [`the file is ${size - page} bytes, its header says ${size / page} pages of ${page} bytes (cut short)`])
    fs.writeFileSync(`${file}-wal`, 'a log to replay')
    assert.deepStrictEqual(checkSize(file), [])
  })

  it('lostDatabase: refused as damage without repair; repairing, the rest set aside and removed, and logged', () => {
    fs.writeFileSync(path.join(dir, 'state.db-wal'), 'log')
    fs.writeFileSync(path.join(dir, 'acked'), '7')
    assert.throws(() => lostDatabase(ctx(false), true, 9), (e: StoreDamagedError) => e.code === 'store_damaged' && e.problems[0] === 'the database file is missing (lock.db says this directory held node "a")')
    lostDatabase(ctx(true), false, 9)
    assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => !f.startsWith('damaged-')), [])
    const aside = fs.readdirSync(dir).find((f) => f.startsWith('damaged-')) as string
    assert.deepStrictEqual(fs.readdirSync(path.join(dir, aside)).sort(), ['acked', 'state.db-wal'])
    assert.strictEqual(lines.length, 1)
    assert.match(lines[0], /is missing: everything it held is lost here; .* above the reservation 9 \(copies in .*damaged-/)
  })
})
