/**
 * A store's directory (lib/node/store/directory.ts): files set aside when
 * damaged.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { setAside } from '../../../lib/node/store/directory'

describe('node/store: directory', () => {
  let dir = ''
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-dir-'))
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('setAside copies the named files that exist into a new damaged-<time>/ folder, and leaves them in place', () => {
    fs.writeFileSync(path.join(dir, 'state.db'), 'bytes')
    fs.writeFileSync(path.join(dir, 'other'), 'kept out')
    const aside = setAside(dir, ['state.db', 'state.db-wal'])
    assert.strictEqual(path.dirname(aside), dir)
    assert.match(path.basename(aside), /^damaged-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/)
    assert.deepStrictEqual(fs.readdirSync(aside), ['state.db'])
    assert.strictEqual(fs.readFileSync(path.join(aside, 'state.db'), 'utf8'), 'bytes')
    assert.strictEqual(fs.readFileSync(path.join(dir, 'state.db'), 'utf8'), 'bytes')
  })
})
