/**
 * The in-process cluster's pieces (lib/testing/cluster.ts): persistences,
 * and a node's view as plain data. (Clusters run: testing/check.test.ts,
 * properties/model.test.ts.)
 */
import * as assert from 'assert'
import { Gossip, base } from '../../lib'
import { entryOf, memory, storeObject, viewOf } from '../../lib/testing'

const config = { resolve: base.resolution.lww_vs_current_vers }

describe('simple-scuttle/testing: cluster', () => {
  it('viewOf and entryOf: the live keys as [value, source, version], sorted; a deleted key absent', () => {
    const g = new Gossip('a', config)
    g.set('y', 2)
    g.set('x', 'one')
    g.set('z', 3)
    g.delete('z')
    const v = viewOf(g)
    assert.deepStrictEqual(Object.keys(v), ['x', 'y'])
    assert.deepStrictEqual(v.x, ['one', 'a', g.get('x').version])
    assert.strictEqual(entryOf(g, 'z'), undefined)
    assert.strictEqual(entryOf(g, 'x')?.value, 'one')
  })

  it('memory: a restart restores the snapshot the node took', async () => {
    const a = await memory.open('a', config)
    a.set('x', 1)
    const again = await memory.reopen(a, config, true)
    assert.notStrictEqual(again, a)
    assert.deepStrictEqual(viewOf(again), viewOf(a))
  })

  it('storeObject: one store per node, kept across restarts, made anew after a wipe', async () => {
    const made: string[] = []
    const p = storeObject((id) => {
      made.push(id)
      return {}
    })
    const a = await p.open('a', config)
    a.set('x', 1)
    const store = p.store('a')
    assert.strictEqual(store?.x?.value, 1)
    const again = await p.reopen(a, config, true)
    assert.strictEqual(p.store('a'), store)
    assert.strictEqual(again.get('x').value, 1)
    await p.wipe('a')
    assert.strictEqual(p.store('a'), undefined)
    const fresh = await p.open('a', config)
    assert.strictEqual(fresh.get('x').version, -Infinity)
    assert.deepStrictEqual(made, ['a', 'a'])
  })
})
