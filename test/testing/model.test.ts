/**
 * The reference model's own pieces (lib/testing/model.ts): last writer
 * wins, and the update an operation wrote. (The model checking runs:
 * properties/model.test.ts, testing/check.test.ts.)
 */
import * as assert from 'assert'
import { lwwBeats, lwwOrder, updateOf, type Op } from '../../lib/testing'

describe('simple-scuttle/testing: model', () => {
  it('lwwBeats: by version, then source id (or node); never itself', () => {
    assert.strictEqual(lwwBeats({ version: 2, source_id: 'a' }, { version: 1, source_id: 'b' }), true)
    assert.strictEqual(lwwBeats({ version: 1, source_id: 'b' }, { version: 2, source_id: 'a' }), false)
    assert.strictEqual(lwwBeats({ version: 1, source_id: 'b' }, { version: 1, source_id: 'a' }), true)
    assert.strictEqual(lwwBeats({ version: 1, node: 'b' }, { version: 1, source_id: 'a' }), true)
    assert.strictEqual(lwwBeats({ version: 1, source_id: 'a' }, { version: 1, source_id: 'a' }), false)
  })

  it('lwwOrder: lwwBeats as a comparator', () => {
    const u = (version: number, source_id: string) => ({ key: 'k', value: 0, source_id, version })
    const sorted = [u(2, 'a'), u(1, 'b'), u(1, 'a'), u(3, 'a')].sort(lwwOrder)
    assert.deepStrictEqual(sorted.map((x) => `${x.version}${x.source_id}`), ['1a', '1b', '2a', '3a'])
    assert.strictEqual(lwwOrder(u(1, 'a'), u(1, 'a')), 0)
  })

  it('updateOf: a set, a tombstone (value null) or a withdrawal', () => {
    const op = (kind: Op['kind']): Op => ({ kind, node: 'n1', key: 'x', value: 7, version: 4, lost: false })
    assert.deepStrictEqual(updateOf(op('set')), { key: 'x', value: 7, source_id: 'n1', version: 4 })
    assert.deepStrictEqual(updateOf(op('delete')), { key: 'x', value: null, source_id: 'n1', version: 4, deleted: true })
    assert.deepStrictEqual(updateOf(op('withdraw')), { key: 'x', value: null, source_id: 'n1', version: 4, withdrawn: true })
  })
})
