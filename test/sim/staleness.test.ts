/**
 * Staleness (lib/sim/staleness.ts): how many rounds each replica is behind,
 * counted from the oldest write it misses.
 */
import { strict as assert } from 'assert'
import { Staleness } from '../../lib/sim'

describe('simulator: Staleness', () => {
  it('measures staleness in rounds from the oldest missing write', () => {
    const s = new Staleness(1, 2)
    s.write(0, 0, 10)
    assert.equal(s.stale, 2)
    assert.equal(s.maximum(1), 1)
    s.write(0, 3, 20)
    assert.equal(s.maximum(4), 4, 'the oldest missing write counts')
    s.receive(0, -Infinity, 10)
    assert.equal(s.maximum(4), 4)
    assert.equal(s.averageStale(4), 2.5)
    s.receive(0, -Infinity, 20)
    s.receive(0, 10, 20)
    assert.equal(s.stale, 0)
    assert.equal(s.maximum(9), 0)
    assert.equal(s.timeOf(0, 20), 3)
    assert.equal(s.timeOf(0, 15), undefined)
    const w = new Staleness(1, 1)
    w.write(0, 0)
    assert.equal(w.admit(0, 5), 0)
    const x = new Staleness(1, 1)
    x.write(0, 0)
    assert.throws(() => x.write(0, 1, 5), /ahead of a waiting one/)
  })
})
