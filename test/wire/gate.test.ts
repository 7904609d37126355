/**
 * The gate (lib/wire/gate.ts): the limits one peer's messages meet before
 * its exchange acts on them, read from the messages as classified.
 */
import * as assert from 'assert'
import { classify } from '../../lib/shape'
import { BURST, DIGEST_FLOOD, Gate, limitsFor } from '../../lib/wire/gate'

const update = (i: number) => classify({ key: `k${i}`, value: i, source_id: 'x', version: i + 1 })
const entry = classify({ digest: true, source_id: 'x', version: 3 })
const end = (reply = false) => classify({ digest: true, done: true, reply })

describe('gate', () => {
  it('defaults as a node: max(1000, 10 × mtu) updates, max(4, 4 per interval) digests a second', () => {
    assert.deepStrictEqual(limitsFor(50, 1000), { floodLimit: 1000, digestRate: 4 })
    assert.deepStrictEqual(limitsFor(500, 100), { floodLimit: 5000, digestRate: 40 })
    assert.deepStrictEqual(limitsFor(50, 1000, { floodLimit: 7 }), { floodLimit: 7, digestRate: 4 })
  })

  it('passes floodLimit updates in a row, and closes the peer at the next; a digest taken ends the run', () => {
    const exceeded: string[] = []
    const g = new Gate({ floodLimit: 3, digestRate: 100 }, {}, (r) => exceeded.push(r))
    for (let i = 0; i < 3; i++) assert.strictEqual(g.admit(update(i)), true)
    assert.strictEqual(g.admit(end()), true)
    for (let i = 0; i < 3; i++) assert.strictEqual(g.admit(update(i)), true)
    assert.deepStrictEqual(exceeded, [])
    assert.strictEqual(g.admit(update(9)), false)
    assert.deepStrictEqual(exceeded, ['flooding: more than 3 updates without a digest'])
    // Stopped: nothing more passes.
    assert.strictEqual(g.admit(end()), false)
  })

  it('answers BURST digests at once, then drops whole digests (entries and end) past the rate; a dropped end does not end a run', () => {
    let now = 0
    const seen: string[] = []
    const g = new Gate(
      { floodLimit: 2, digestRate: 1 },
      {
        entry: () => seen.push('entry'),
        done: (_r, taken) => seen.push(taken ? 'end' : 'end dropped'),
        dropped: (n) => seen.push(`dropped ${n}`),
      },
      () => seen.push('exceeded'),
      () => now,
    )
    for (let i = 0; i < BURST; i++) {
      assert.strictEqual(g.admit(entry), true)
      assert.strictEqual(g.admit(end(true)), true)
    }
    assert.strictEqual(g.admit(entry), false)
    assert.strictEqual(g.admit(end()), false)
    assert.deepStrictEqual(seen.slice(-2), ['dropped 1', 'end dropped'])
    // A second later one token came back.
    now += 1000
    assert.strictEqual(g.admit(end()), true)
    // Updates slipped between dropped digest ends still count as one run.
    assert.strictEqual(g.admit(update(1)), true)
    assert.strictEqual(g.admit(end()), false)
    assert.strictEqual(g.admit(update(2)), true)
    assert.strictEqual(g.admit(update(3)), false)
    assert.strictEqual(seen[seen.length - 1], 'exceeded')
  })

  it(`closes a peer ${DIGEST_FLOOD} digests past its rate in a row`, () => {
    const exceeded: string[] = []
    const g = new Gate({ floodLimit: 10, digestRate: 1 }, {}, (r) => exceeded.push(r), () => 0)
    for (let i = 0; i < BURST + DIGEST_FLOOD; i++) g.admit(end())
    assert.deepStrictEqual(exceeded, [])
    assert.strictEqual(g.admit(end()), false)
    assert.deepStrictEqual(exceeded, [`flooding: more than ${DIGEST_FLOOD} digests past 1/s in a row`])
  })

  it('asks the observer about each update: false holds it back', () => {
    const g = new Gate({ floodLimit: 10, digestRate: 1 }, { update: (r) => !('key' in r && r.key === 'k1') }, () => undefined)
    assert.deepStrictEqual([0, 1, 2].map((i) => g.admit(update(i))), [true, false, true])
  })
})
