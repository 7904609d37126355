/**
 * The witness of acknowledged commits (lib/node/store/witness.ts): the
 * file `acked`, read back, written at once, fsynced later. (A log cut back
 * under it: node/store/store.test.ts.)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { AckedWitness, type WitnessOwner } from '../../../lib/node/store/witness'

describe('node/store: AckedWitness', () => {
  let dir = ''
  const owner = (): WitnessOwner & { closed: boolean; errors: Error[] } => {
    const o = { closed: false, failed: false, errors: [] as Error[], fail: (e: Error) => o.errors.push(e) }
    return o
  }
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-witness-'))
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('reads back what it wrote, above 2^32 too; missing, or damaged when its checksum fails', () => {
    const w = new AckedWitness(dir, true, owner())
    assert.strictEqual(w.read(), 'missing')
    w.writeSync(7)
    assert.strictEqual(w.read(), 7)
    w.writeSync(2 ** 32 + 5)
    assert.strictEqual(w.read(), 2 ** 32 + 5)
    w.close()
    const bytes = fs.readFileSync(w.file)
    bytes[7] ^= 1
    fs.writeFileSync(w.file, bytes)
    assert.strictEqual(new AckedWitness(dir, true, owner()).read(), 'damaged')
    fs.writeFileSync(w.file, 'short')
    assert.strictEqual(new AckedWitness(dir, true, owner()).read(), 'damaged')
  })

  it('durable: written at once, lagging until its fsync, never backwards; nothing without fsync or once closed', async () => {
    const o = owner()
    const w = new AckedWitness(dir, true, o)
    w.names(3)
    assert.strictEqual(w.lags(3), false)
    assert.strictEqual(w.lags(4), true)
    w.durable(5)
    assert.strictEqual(w.read(), 5, 'written at once')
    assert.strictEqual(w.lags(5), true, 'not yet fsynced')
    w.durable(4)
    assert.strictEqual(w.read(), 5)
    const t0 = Date.now()
    // Polled until the fsync (due within WITNESS_MS) is done.
    while (w.lags(5) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10))
    assert.strictEqual(w.lags(5), false)
    w.close()
    assert.deepStrictEqual(o.errors, [])
    o.closed = true
    w.durable(9)
    assert.strictEqual(w.read(), 5)
    const unsynced = new AckedWitness(fs.mkdtempSync(path.join(dir, 'n')), false, owner())
    unsynced.writeSync(3)
    unsynced.durable(4)
    assert.strictEqual(unsynced.read(), 'missing')
  })
})
