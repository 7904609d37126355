/**
 * A restart's state besides the mappings (lib/restart.ts): the maxes held
 * back below mappings a node holds, kept by snapshot() and by the record
 * a store keeps, and put back by a restart. Restarts through a store are
 * in snapshot.test.ts and persistence.test.ts.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import type { Snapshot } from '../lib'
import { heldBack } from './deletes-cluster'

const lww = base.resolution.lww_vs_current_vers
const recordMaxes = (g: Gossip): unknown => (JSON.parse(g.persisted().record ?? '{}') as { maxes?: unknown }).maxes

/** b holds a's 'k' above a's max (held back). */
async function held(): Promise<Gossip> {
  const a = new Gossip('a', { resolve: lww })
  a.set('boom', 1)
  a.set('k', 2)
  const b = await heldBack(a)
  a.destroy()
  return b
}

describe('restart (lib/restart.ts)', () => {
  it('a node with nothing held back keeps no maxes in its record or its snapshot', () => {
    const g = new Gossip('a', { resolve: lww })
    g.set('k', 1)
    assert.strictEqual(recordMaxes(g), undefined)
    assert.strictEqual('maxes' in g.snapshot(), false)
    g.destroy()
  })

  it('a held-back max is kept by snapshot() and the record (-1 for none), and a restore from the snapshot holds it back again', async () => {
    const b = await held()
    const snap = b.snapshot()
    assert.deepStrictEqual(snap.maxes, { a: -1 })
    assert.deepStrictEqual(recordMaxes(b), { a: -1 })
    const again = Gossip.restore('b', { resolve: lww }, JSON.parse(JSON.stringify(snap)) as Snapshot)
    assert.strictEqual(again.get('k').value, 2)
    assert.strictEqual(again.history.sources.get('a')?.max, -Infinity)
    assert.deepStrictEqual(again.snapshot().maxes, { a: -1 })
    b.destroy()
    again.destroy()
  })

  it('restored without its maxes, the node takes its highest mapping of the source for its max', async () => {
    const b = await held()
    const { maxes: _, ...snap } = b.snapshot()
    const again = Gossip.restore('b', { resolve: lww }, snap)
    assert.strictEqual(again.history.sources.get('a')?.max, (again.history.mapping('a', 'k') as { version: number }).version)
    assert.strictEqual('maxes' in again.snapshot(), false)
    b.destroy()
    again.destroy()
  })

  it('maxes that are not a number below the max held are ignored on restore', async () => {
    const b = await held()
    const snap = b.snapshot()
    const top = (b.history.mapping('a', 'k') as { version: number }).version
    for (const maxes of [null, 'x', [], { a: 'y' }, { a: top }, { a: top + 1 }, { z: 1 }]) {
      const again = Gossip.restore('b', { resolve: lww }, { ...snap, maxes } as unknown as Snapshot)
      assert.strictEqual(again.history.sources.get('a')?.max, top, JSON.stringify(maxes))
      assert.strictEqual(recordMaxes(again), undefined, JSON.stringify(maxes))
      again.destroy()
    }
    b.destroy()
  })
})
