/**
 * The reader of SQLite's write-ahead log (lib/node/store/wal.ts): a crash's
 * torn tail told from damage, before SQLite opens the database.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import Database from 'better-sqlite3'
import { scanWal } from '../../../lib/node/store/wal'

describe('node/store: scanWal', () => {
  let dir = ''
  let wal = ''
  // A log of three commits, copied while the database holds it (no checkpoint).
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-wal-'))
    const db = new Database(path.join(dir, 'x.db'))
    db.pragma('journal_mode = WAL')
    db.pragma('wal_autocheckpoint = 0')
    db.exec('CREATE TABLE t (v TEXT)')
    for (let i = 0; i < 2; i++) db.prepare('INSERT INTO t VALUES (?)').run('x'.repeat(100))
    wal = path.join(dir, 'copy-wal')
    fs.copyFileSync(path.join(dir, 'x.db-wal'), wal)
    db.close()
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('a whole log: every frame applied, its commits counted, nothing ignored', () => {
    const s = scanWal(wal)
    assert.ok(s !== undefined)
    assert.strictEqual(s.commits, 3)
    assert.strictEqual(s.applied, (s.bytes - 32) / (24 + s.pageSize))
    assert.deepStrictEqual([s.ignored, s.droppedCommits, s.damage], [0, 0, null])
    assert.strictEqual(scanWal(path.join(dir, 'none')), undefined)
  })

  it('a torn tail is ignored, not damage', () => {
    const whole = scanWal(wal)!
    fs.truncateSync(wal, whole.bytes - 100)
    const s = scanWal(wal)!
    assert.strictEqual(s.commits, 2)
    assert.ok(s.ignored > 0)
    assert.strictEqual(s.damage, null)
  })

  it('a flipped byte in an early frame, with whole frames after it, is damage; SQLite would drop the commits after it', () => {
    const s0 = scanWal(wal)!
    const bytes = fs.readFileSync(wal)
    bytes[32 + 24 + 10] ^= 0xff
    fs.writeFileSync(wal, bytes)
    const s = scanWal(wal)!
    assert.strictEqual(s.applied, 0)
    assert.strictEqual(s.droppedCommits, s0.commits)
    assert.match(s.damage ?? '', /^frame 1 \(byte 32\) is damaged, and frames after it are whole$/)
  })

  it('a damaged header over frames is damage; a short file is only ignored', () => {
    const bytes = fs.readFileSync(wal)
    bytes[26] ^= 0xff
    fs.writeFileSync(wal, bytes)
    assert.match(scanWal(wal)!.damage ?? '', /its header is damaged/)
    fs.writeFileSync(wal, bytes.subarray(0, 20))
    assert.deepStrictEqual(scanWal(wal), { bytes: 20, pageSize: 0, applied: 0, commits: 0, ignored: 20, droppedCommits: 0, damage: null })
  })
})
