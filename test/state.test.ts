/**
 * `gossip.state` (lib/state.ts): the resolved view as a plain-looking,
 * read-only object, over the history (memoryView) or a store object
 * (storeView).
 */
import * as assert from 'assert'
import { inspect } from 'util'
import { Gossip } from '../lib'
import type { StateStore, Update } from '../lib'
import { storeView } from '../lib/state'
import { lww } from './net'

describe('state', () => {
  it('memoryView: every live key, enumerable and JSON-serialisable, no prototype; a deleted key is absent', () => {
    const g = new Gossip('a', lww())
    g.set('x', 1)
    g.set('y', 2)
    g.delete('y')
    const s = g.state
    assert.deepStrictEqual(Object.keys(s), ['x'])
    assert.strictEqual(s.x.value, 1)
    assert.strictEqual(s.y, undefined)
    assert.strictEqual('y' in s, false)
    assert.strictEqual('x' in s, true)
    assert.strictEqual(Object.getPrototypeOf(s), null)
    assert.deepStrictEqual(JSON.parse(JSON.stringify(s)), { x: { key: 'x', value: 1, source_id: 'a', version: s.x.version } })
    assert.strictEqual((s as unknown as Record<symbol, unknown>)[Symbol.iterator], undefined)
    assert.match(inspect(s), /x: \{ key: 'x', value: 1/)
    // Live: a later write shows without asking again.
    g.set('z', 3)
    assert.deepStrictEqual(Object.keys(s).sort(), ['x', 'z'])
  })

  it('memoryView: read-only, and cannot be frozen', () => {
    const s = new Gossip('a', lww()).state as Record<string, unknown>
    assert.throws(() => {
      s.x = 1
    }, /gossip.state is read-only/)
    assert.throws(() => delete s.x, /read-only/)
    assert.throws(() => Object.defineProperty(s, 'x', { value: 1 }), /read-only/)
    assert.throws(() => Object.setPrototypeOf(s, {}), /read-only/)
    assert.throws(() => Object.freeze(s), /live and read-only: freeze a copy/)
  })

  it("storeView: the store's keys but the node's own (\\u0000...) and deleted ones, read-only", () => {
    const x: Update = { key: 'x', value: 1, source_id: 'a', version: 1 }
    const d: Update = { key: 'd', value: null, source_id: 'a', version: 2, deleted: true }
    const store: StateStore = { x, d, '\u0000record': { key: '\u0000record', value: 0, source_id: 'a', version: 3 } }
    const v = storeView(store)
    assert.deepStrictEqual(Object.keys(v), ['x'])
    assert.strictEqual(v.x, x)
    assert.strictEqual(v.d, undefined)
    assert.strictEqual('d' in v, false)
    assert.strictEqual(v['\u0000record'], undefined)
    assert.strictEqual('\u0000record' in v, false)
    assert.strictEqual(Object.getOwnPropertyDescriptor(v, 'd'), undefined)
    assert.throws(() => {
      ;(v as Record<string, unknown>).y = 1
    }, /read-only/)
    // The view reads the store as it is now.
    store.y = { key: 'y', value: 2, source_id: 'b', version: 4 }
    assert.deepStrictEqual(Object.keys(v), ['x', 'y'])
  })
})
