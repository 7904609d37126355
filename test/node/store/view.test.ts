/**
 * The resolved view in the database as a store object
 * (lib/node/store/view.ts): reads see every write made through it, writes
 * are checked, the node's record is the store's own. Over a ViewSource in
 * memory. (Over state.db: node/store/store.test.ts.)
 */
import * as assert from 'assert'
import type { Update } from '../../../lib'
import { RECORD_KEY } from '../../../lib/shape'
import { makeView, type ViewSource } from '../../../lib/node/store/view'

function source(rows: Record<string, Update>) {
  const overlay = new Map<string, Update | null>()
  const s = { closed: false, overlay, get: (k: string) => rows[k], keys: () => Object.keys(rows), write: (k: string, e: Update | null) => void overlay.set(k, e), record: () => 'the record' }
  return s satisfies ViewSource
}
const u = (key: string, version: number): Update => ({ key, value: version, source_id: 's', version })

describe('node/store: view', () => {
  it('reads the database under the overlay: written entries first, removed ones gone', () => {
    const src = source({ a: u('a', 1), b: u('b', 2) })
    const v = makeView(src)
    v.c = u('c', 3)
    delete v.a
    assert.deepStrictEqual(Object.keys(v).sort(), ['b', 'c'])
    assert.strictEqual(v.a, undefined)
    assert.strictEqual('a' in v, false)
    assert.deepStrictEqual(v.c, u('c', 3))
    assert.deepStrictEqual(src.overlay.get('a'), null)
    assert.strictEqual(Object.getPrototypeOf(v), null)
  })

  it("the record is the store's own; the node's other reserved keys are not written through the view", () => {
    const src = source({})
    const v = makeView(src)
    assert.strictEqual(v[RECORD_KEY] as unknown, 'the record')
    v['\u0000other'] = u('\u0000other', 1)
    delete v['\u0000other']
    assert.strictEqual(src.overlay.size, 0)
  })

  it('refuses what is not an update of its key, and writes once closed; reads nothing once closed', () => {
    const src = source({ a: u('a', 1) })
    const v = makeView(src)
    assert.throws(() => {
      v.x = { key: 'x', value: 1 } as Update
    }, /^TypeError: store: "x": /)
    assert.throws(() => {
      v.x = u('y', 1)
    }, /store: "x" must be set to an update of that key/)
    assert.throws(() => Object.defineProperty(v, 'x', { value: u('x', 1) }), TypeError)
    src.closed = true
    assert.strictEqual(v.a, undefined)
    assert.deepStrictEqual(Object.keys(v), [])
    assert.throws(() => {
      v.x = u('x', 1)
    }, (e: Error & { code?: string }) => e.code === 'store_closed')
  })
})
