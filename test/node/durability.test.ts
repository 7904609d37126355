/**
 * A TCP node's writes and its data directory (lib/node/durability.ts):
 * acknowledged once durable; once the directory fails, writes refused and
 * those not durable taken back. Over a Gossip and a store that only says
 * how far it is durable. (Whole nodes: node/metrics.test.ts,
 * adversarial/operator.test.ts.)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Gossip, base } from '../../lib'
import { Durability, StoreFailedError } from '../../lib/node/durability'
import type { Store } from '../../lib/node/store/store'

function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-durable-'))
  const gossip = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
  const store = { dir, id: 'a', durableTo: 0, flush: async () => undefined }
  const lines: string[] = []
  const failures: Error[] = []
  const d = new Durability(store as unknown as Store, gossip, (l, level) => lines.push(`${level}: ${l}`), (e) => failures.push(e))
  return { dir, gossip, store, d, lines, failures }
}

describe('node: Durability', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })

  it('a write not yet durable is unsettled; once durable it is settled and kept', () => {
    const { dir, gossip, store, d } = setup()
    dirs.push(dir)
    const u = d.write('x', () => gossip.set('x', 1))
    assert.ok(u !== undefined)
    assert.deepStrictEqual([...d.unsettled()], [u.version])
    store.durableTo = u.version
    d.settled(u)
    assert.deepStrictEqual([...d.unsettled()], [])
    assert.strictEqual(d.write('x', () => undefined), undefined, 'no write made')
  })

  it('once the directory fails: writes not durable are taken back, newest first, and later ones refused with store_failed', () => {
    const { dir, gossip, store, d, lines, failures } = setup()
    dirs.push(dir)
    const kept = d.write('x', () => gossip.set('x', 1)) as NonNullable<ReturnType<typeof d.write>>
    store.durableTo = kept.version
    d.write('x', () => gossip.set('x', 2))
    d.write('y', () => gossip.set('y', 3))
    d.fail(new Error('disk full'))
    assert.strictEqual(gossip.get('x').value, 1)
    assert.strictEqual(gossip.get('y').version, -Infinity)
    assert.strictEqual(failures.length, 1)
    assert.match(lines[0], /^warn: data directory .* cannot be written \(disk full\): local writes are refused from now on/)
    assert.throws(() => d.writable(), (e: StoreFailedError) => e.code === 'store_failed' && e.dir === dir && e.cause.message === 'disk full')
    assert.ok(d.refusal instanceof StoreFailedError)
    assert.throws(() => d.settled(undefined), StoreFailedError)
    assert.doesNotThrow(() => d.settled(kept), 'what was durable stays acknowledged')
    // A write made anyway is taken back at once.
    d.write('z', () => gossip.set('z', 4))
    assert.strictEqual(gossip.get('z').version, -Infinity)
    d.fail(new Error('again'))
    assert.strictEqual(failures.length, 1, 'told once')
  })

  it('check: a directory that vanished fails the node', () => {
    const { dir, d, failures } = setup()
    d.check()
    assert.strictEqual(d.failure, null)
    fs.rmSync(dir, { recursive: true })
    d.check()
    assert.strictEqual(failures[0]?.message, 'it vanished')
  })
})
