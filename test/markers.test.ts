/**
 * What the parts of the delete logic share (lib/markers.ts): markers, and
 * each stream's Link.
 */
import * as assert from 'assert'
import { Link, Links, isMarker, unnamed } from '../lib/markers'
import type { Update } from '../lib'

describe('markers', () => {
  it('isMarker: a tombstone or a withdrawal, not a value', () => {
    assert.strictEqual(isMarker({ key: 'k', value: null, source_id: 'a', version: 2, deleted: true }), true)
    assert.strictEqual(isMarker({ key: 'k', value: 1, source_id: 'a', version: 2, withdrawn: true }), true)
    assert.strictEqual(isMarker({ key: 'k', value: null, source_id: 'a', version: 2 }), false)
  })

  it('unnamed: a withdrawal naming a version below a value that is itself below the withdrawal (R6)', () => {
    const u: Update = { key: 'k', value: 1, source_id: 'a', version: 5 }
    const w = (of: unknown, version: number): Update => ({ key: 'k', value: of, source_id: 'a', version, withdrawn: true })
    assert.strictEqual(unnamed(u, w(3, 9)), true)
    assert.strictEqual(unnamed(u, w(5, 9)), false, 'it names u itself')
    assert.strictEqual(unnamed(u, w(3, 4)), false, 'it is older than u')
    assert.strictEqual(unnamed(u, w(3, 5)), false)
    assert.strictEqual(unnamed(u, w('3', 9)), false, 'it names no version')
  })

  it("Links: one Link per stream, made on first need; peek makes none", () => {
    const links = new Links()
    const s = {}
    assert.strictEqual(links.peek(s), undefined)
    const l = links.link(s)
    assert.ok(l instanceof Link)
    assert.strictEqual(links.link(s), l)
    assert.strictEqual(links.peek(s), l)
    assert.notStrictEqual(links.link({}), l)
    assert.deepStrictEqual([l.stale, l.told, l.late, l.pass, l.nonces], [null, null, null, null, [undefined, undefined]])
  })
})
