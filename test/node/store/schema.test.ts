/**
 * A store's rows (lib/node/store/schema.ts): each mapping's value column,
 * and a row read back as an update or the reason it is not one.
 */
import * as assert from 'assert'
import type { Update } from '../../../lib'
import { rowCrc } from '../../../lib/node/store/checksum'
import { rowUpdate, signatureColumn, valueColumn, type Row } from '../../../lib/node/store/schema'

// The row a store writes for `u`.
function rowOf(u: Update): Row {
  const value = valueColumn(u)
  const signature = signatureColumn(u)
  return [u.key, u.source_id, u.version, value, signature, rowCrc(u.key, u.source_id, u.version, value, signature)]
}

describe('node/store: schema', () => {
  it('valueColumn: JSON for a value, a mark for a delete and a withdrawal, the version a withdrawal names', () => {
    assert.strictEqual(valueColumn({ key: 'k', value: { a: [1] }, source_id: 's', version: 1 }), '{"a":[1]}')
    assert.strictEqual(valueColumn({ key: 'k', value: null, source_id: 's', version: 1, deleted: true }), '')
    assert.strictEqual(valueColumn({ key: 'k', value: null, source_id: 's', version: 2, withdrawn: true }), '-')
    assert.strictEqual(valueColumn({ key: 'k', value: 1, source_id: 's', version: 2, withdrawn: true }), '~1')
  })

  it('rowUpdate reads back every kind of update it was written from', () => {
    const updates: Update[] = [
      { key: 'k', value: { a: [1, 'x'] }, source_id: 's', version: 1 },
      { key: 'k', value: 'v', source_id: 's', version: 2, signature: 'sig' },
      { key: 'k', value: null, source_id: 's', version: 3, deleted: true },
      { key: 'k', value: null, source_id: 's', version: 4, withdrawn: true },
      { key: 'k', value: 2, source_id: 's', version: 5, withdrawn: true },
    ]
    for (const u of updates) assert.deepStrictEqual({ ...(rowUpdate(rowOf(u)) as Update) }, u)
  })

  it('rowUpdate: the reason a row is not an update, never a throw', () => {
    const good = rowOf({ key: 'k', value: 1, source_id: 's', version: 1 })
    const withCrc = (r: Row): Row => [r[0], r[1], r[2], r[3], r[4], rowCrc(r[0], r[1], r[2], r[3], r[4])]
    assert.strictEqual(rowUpdate([good[0], good[1], '1' as never, good[3], good[4], good[5]]), 'a column has the wrong type')
    assert.strictEqual(rowUpdate([good[0], good[1], good[2], '2', good[4], good[5]]), 'its checksum does not match')
    assert.strictEqual(rowUpdate(withCrc(['k', 's', 1, '{nope', null, 0])), 'its value is not JSON')
    assert.strictEqual(rowUpdate(withCrc(['k', 's', 1, '~x', null, 0])), 'its withdrawal names no version')
    // The limits of an update from a peer hold for a row too.
    assert.match(rowUpdate(withCrc(['', 's', 1, '1', null, 0])) as string, /key/)
  })
})
