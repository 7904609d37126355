/**
 * openGossip (lib/node/store/open-gossip.ts): the store opened, the node
 * restored from it (or built on its resolved view) and attached, in one
 * step. (Crashes, damage, group commit: node/store/store.test.ts.)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { base } from '../../../lib'
import { openGossip } from '../../../lib/node/sqlite'

const config = { resolve: base.resolution.lww_vs_current_vers }

// A first run in `dir` that writes x = 1 durably; its version.
async function writeX(dir: string): Promise<number> {
  const first = openGossip('a', config, dir)
  first.gossip.set('x', 1)
  await first.store.flush()
  await first.store.close()
  return first.gossip.get('x').version
}

describe('node/store: openGossip', () => {
  let dir = ''
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-open-'))
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('a new directory gives a new node, attached: what it writes is there at the next open, restored', async () => {
    const version = await writeX(dir)
    const again = openGossip('a', config, dir)
    try {
      assert.strictEqual(again.gossip.get('x').value, 1)
      assert.strictEqual(again.gossip.get('x').version, version)
      again.gossip.set('y', 2)
      assert.ok(again.gossip.get('y').version > version, 'the clock goes on above what was written')
    } finally {
      await again.store.close()
    }
  })

  it("view: the node is built on the database's resolved view, its clock above the reservation", async () => {
    const version = await writeX(dir)
    const viewed = openGossip('a', config, dir, { view: true })
    try {
      assert.strictEqual(viewed.gossip.state.x?.value, 1)
      viewed.gossip.set('y', 2)
      assert.ok(viewed.gossip.get('y').version > version)
    } finally {
      await viewed.store.close()
    }
  })

  it('a failure on the way closes the store: the directory can be opened again', async () => {
    assert.throws(() => openGossip('a', { resolve: null }, dir), /config\.resolve is required/)
    // (Closing is asynchronous: the lock goes within a turn or two.)
    let opened: ReturnType<typeof openGossip> | null = null
    const t0 = Date.now()
    while (opened === null && Date.now() - t0 < 5000) {
      try {
        opened = openGossip('a', config, dir)
      } catch (err) {
        if ((err as { code?: string }).code !== 'store_in_use') throw err
        await new Promise((r) => setTimeout(r, 10))
      }
    }
    assert.ok(opened !== null)
    await opened.store.close()
  })
})
