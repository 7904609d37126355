/**
 * The twin rule's own API (lib/node/twins.ts): the error a refused local
 * write carries, and the times its log lines name. Twins between live
 * nodes, and handovers: adversarial/twins.test.ts, adversarial/identity.test.ts.
 */
import * as assert from 'assert'
import { iso, TwinError } from '../../lib/node/twins'

describe('node/twins', () => {
  it("TwinError: code 'twin'; the newer twin says it stops, a node refused by every peer says it waits to be admitted", () => {
    const stops = new TwinError('a', 'a node started earlier has this id')
    assert.ok(stops instanceof Error)
    assert.deepStrictEqual([stops.name, stops.code], ['TwinError', 'twin'])
    assert.strictEqual(stops.message, 'write refused: a node started earlier has this id; this node (a) is the newer and stops, and acknowledged none of its writes. Give it another --id')
    const waits = new TwinError('b', 'every peer refuses it as a twin', false)
    assert.strictEqual(waits.code, 'twin')
    assert.match(waits.message, /^write refused: every peer refuses it as a twin; this node \(b\) acknowledges no write until a peer admits it/)
    assert.doesNotMatch(waits.message, /stops/)
  })

  it('iso: a start time as ISO 8601, or that it is unknown', () => {
    assert.strictEqual(iso(0), '1970-01-01T00:00:00.000Z')
    assert.strictEqual(iso(Date.UTC(2024, 1, 29, 12, 30)), '2024-02-29T12:30:00.000Z')
    assert.strictEqual(iso(null), 'at an unknown time')
  })
})
