/**
 * The sample resolution policies are convergent: the same updates, in any
 * order and with any repetition, leave every node with the same state, and
 * that state is the one the policy promises of every source's current
 * mapping (the paper's mu: a source's newest update of a key replaces its
 * older ones, whatever resolve says).
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base, resolution } from '../lib'
import type { Resolve, Update } from '../lib'
import { stateOf } from './net'

const { compareValues, lww_vs_clock, lww_vs_current_vers, strictly_order_values } = resolution

/** Updates with (source_id, version) unique, as sources issue them. */
const updatesArb = fc
  .uniqueArray(
    fc.record({
      key: fc.constantFrom('a', 'b', 'c'),
      value: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('x', 'y', null, true)),
      source_id: fc.constantFrom('p', 'q', 'r'),
      version: fc.integer({ min: 0, max: 6 }),
    }),
    { selector: (u) => `${u.source_id}:${u.version}`, minLength: 1, maxLength: 14 },
  )
  .map((us) => us as Update[])

/** Several deliveries of the same updates: shuffled, some repeated. */
const deliveries = (us: Update[]) =>
  fc.array(
    fc.shuffledSubarray([...us, ...us], { minLength: us.length * 2, maxLength: us.length * 2 }),
    { minLength: 2, maxLength: 4 },
  )

function deliver(resolve: Resolve, order: Update[]): Gossip {
  const g = new Gossip('n', { resolve })
  for (const u of order) g.write({ ...u })
  return g
}

const policies: [string, Resolve, (winner: Update, u: Update) => boolean][] = [
  ['lww_vs_current_vers', lww_vs_current_vers, (w, u) => base.sort(w, u) >= 0],
  ['lww_vs_clock', lww_vs_clock, (w, u) => base.sort(w, u) >= 0],
  [
    'strictly_order_values',
    strictly_order_values,
    (w, u) => {
      const c = compareValues(w.value, u.value)
      return c > 0 || (c === 0 && base.sort(w, u) >= 0)
    },
  ],
]

describe('resolution policies', () => {
  for (const [name, resolve, beats] of policies) {
    it(`${name}: any order, any repetition, same state`, () => {
      fc.assert(
        fc.property(
          updatesArb.chain((us) => fc.tuple(fc.constant(us), deliveries(us))),
          ([us, orders]) => {
            const states = orders.map((o) => JSON.stringify(stateOf(deliver(resolve, o))))
            states.forEach((s) => assert.strictEqual(s, states[0]))
            // mu: each source's newest update of each key
            const mu = new Map<string, Update>()
            for (const u of us) {
              const at = `${u.source_id}/${u.key}`
              if ((mu.get(at)?.version ?? -1) < u.version) mu.set(at, u)
            }
            const g = deliver(resolve, orders[0])
            for (const key of new Set(us.map((u) => u.key))) {
              const current = [...mu.values()].filter((u) => u.key === key).sort(base.sort)
              const tuple = (u: Update) => [u.key, u.value, u.source_id, u.version]
              assert.deepStrictEqual(g.sources(key).map(tuple), current.map(tuple), `the node holds every source's newest mapping of ${key}`)
              const entry = g.get(key) as Update
              assert.ok(
                current.some((u) => u.source_id === entry.source_id && u.version === entry.version),
                `${name}: the entry of ${key} is a current mapping`,
              )
              for (const u of current) assert.ok(beats(entry, u), `${name} kept a loser of ${key}`)
            }
          },
        ),
        { numRuns: 300 },
      )
    })
  }

  it('lww_vs_clock follows config.sort', () => {
    // a sort that prefers source "primary" over any version
    const sort = (a: Update, b: Update) =>
      a.source_id === b.source_id ? a.version - b.version : a.source_id === 'primary' ? 1 : b.source_id === 'primary' ? -1 : base.sort(a, b)
    const g = new Gossip('n', { resolve: lww_vs_clock, sort })
    g.write({ key: 'k', value: 'primary says', source_id: 'primary', version: 1 })
    g.write({ key: 'k', value: 'later', source_id: 'other', version: 9 })
    assert.strictEqual(g.get('k').value, 'primary says')
  })

  it("strictly_order_values keeps the greatest of the sources' current values", () => {
    const g = new Gossip('n', { resolve: strictly_order_values })
    g.set('high', 5)
    // A source's newer write replaces its own older one (paper: only
    // current mappings exist), lower or not.
    g.set('high', 3)
    assert.strictEqual(g.get('high').value, 3)
    g.write({ key: 'high', value: 9, source_id: 'other', version: g.version + 1 })
    assert.strictEqual(g.get('high').value, 9)
    // Lower than another source's value: refused here, as at every peer.
    g.set('high', 4)
    assert.strictEqual(g.get('high').value, 9)
    assert.deepStrictEqual(g.sources('high').map((u) => [u.source_id, u.value]), [['other', 9], ['n', 4]])
    g.set('high', 12)
    assert.strictEqual(g.get('high').value, 12)
  })

  it('compareValues is a total order across types', () => {
    const values = [null, false, true, -1, NaN, 0, 2, 'a', 'b', { x: 1 }, [1]]
    for (const a of values) {
      assert.strictEqual(compareValues(a, a), 0)
      for (const b of values) {
        assert.strictEqual(Math.sign(compareValues(a, b)), -Math.sign(compareValues(b, a)) || 0)
      }
    }
    assert.ok(compareValues(null, false) < 0)
    assert.ok(compareValues(true, 0) < 0)
    assert.ok(compareValues(NaN, -1) < 0)
    assert.ok(compareValues(9, 'a') < 0)
    assert.ok(compareValues('z', {}) < 0)
    assert.ok(compareValues(Symbol('s'), {}) > 0)
  })

  it('base.sort orders by version, then source_id', () => {
    const u = (source_id: string, version: number): Update => ({ key: 'k', value: 0, source_id, version })
    assert.ok(base.sort(u('b', 1), u('a', 2)) < 0)
    assert.ok(base.sort(u('b', 2), u('a', 2)) > 0)
    assert.strictEqual(base.sort(u('a', 2), u('a', 2)), 0)
  })
})
