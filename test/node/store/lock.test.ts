/**
 * The directory's lock and identity (lib/node/store/lock.ts): one store per
 * directory, whose node it is, and the highest version reserved.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { DirectoryLock } from '../../../lib/node/store/lock'

describe('node/store: DirectoryLock', () => {
  let dir = ''
  const lines: string[] = []
  const log = (l: string) => lines.push(l)
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-lock-'))
    lines.length = 0
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("a new directory is not known; once taken it is the node's, and remembers the highest reservation", () => {
    const first = DirectoryLock.take(dir, 'a', log)
    assert.deepStrictEqual([first.known, first.reserved], [false, 0])
    first.writeReserved(50)
    first.writeReserved(20)
    first.close()
    const again = DirectoryLock.take(dir, 'a', log)
    assert.deepStrictEqual([again.known, again.reserved], [true, 50])
    again.close()
    assert.deepStrictEqual(lines, [])
  })

  it('refuses a second taker while held (store_in_use), and another node (store_other_node)', () => {
    const held = DirectoryLock.take(dir, 'a', log)
    try {
      assert.throws(() => DirectoryLock.take(dir, 'a', log), (err: Error & { code?: string }) => err.code === 'store_in_use' && /is in use by another store/.test(err.message))
    } finally {
      held.close()
    }
    assert.throws(() => DirectoryLock.take(dir, 'b', log), (err: Error & { code?: string }) => err.code === 'store_other_node' && err.message.includes('holds node "a", not "b"'))
  })

  it('a damaged lock.db is set aside, logged and made anew', () => {
    fs.writeFileSync(path.join(dir, 'lock.db'), 'not a database, not at all'.repeat(40))
    const lock = DirectoryLock.take(dir, 'a', log)
    assert.deepStrictEqual([lock.known, lock.reserved], [false, 0])
    lock.close()
    assert.strictEqual(lines.length, 1)
    assert.match(lines[0], /lock\.db was damaged .*; moved to .*damaged-.* and made anew/)
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('damaged-'))
    assert.strictEqual(aside.length, 1)
    assert.ok(fs.readFileSync(path.join(dir, aside[0], 'lock.db'), 'utf8').startsWith('not a database'))
  })
})
