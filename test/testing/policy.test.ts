/**
 * checkPolicy (lib/testing/policy.ts): passes the shipped policies, and
 * catches ones that do not converge, keep state, change their arguments or
 * throw, shrunk to a few updates.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { base } from '../../lib'
import type { Resolve } from '../../lib'
import {
  PolicyError,
  checkPolicy,
  lehmer,
} from '../../lib/testing'

const { lww_vs_current_vers, lww_vs_clock, strictly_order_values } = base.resolution
const SHIPPED: [string, Resolve][] = [
  ['lww_vs_current_vers', lww_vs_current_vers],
  ['lww_vs_clock', lww_vs_clock],
  ['strictly_order_values', strictly_order_values],
]

/** "Keep the latest arrival": whatever reaches a node last wins there. */
const latestArrival: Resolve = () => true

describe('simple-scuttle/testing', function () {
  this.timeout(120_000)

  describe('checkPolicy', () => {
    for (const [name, resolve] of SHIPPED) {
      it(`passes ${name}, over numbers and over strings`, () => {
        assert.strictEqual(checkPolicy(resolve, fc.integer()).runs, 100)
        assert.strictEqual(checkPolicy(resolve, fc.string(), { runs: 50 }).runs, 50)
      })
    }

    it('catches "keep the latest arrival" within 100 runs, shrunk to at most 6 updates (10 seeds)', () => {
      for (let seed = 1; seed <= 10; seed++) {
        const err = catches(() => checkPolicy(latestArrival, fc.integer(), { seed }), PolicyError)
        assert.strictEqual(err.property, 'order independence')
        assert.ok(err.runs <= 100, `seed ${seed}: found after ${err.runs} runs`)
        assert.ok(err.counterexample.updates.length <= 6, `seed ${seed}: ${err.counterexample.updates.length} updates`)
        assert.match(err.message, /^checkPolicy failed: order independence\n {2}updates: .+\n {2}delivered .+\n {2}delivered .+\n\(\d updates?; found after \d+ runs?, shrunk \d+ times; seed -?\d+, path "[\d:]*"\)$/)
      }
    })

    it('catches "the greatest value, ties kept as they are" (arrival order decides ties)', () => {
      const greatest: Resolve = (gossip, update) => {
        const current = gossip.get(update.key)
        return current.version === -Infinity || base.resolution.compareValues(update.value, current.value) > 0
      }
      const err = catches(() => checkPolicy(greatest, fc.nat(3), { deletes: false, seed: 1 }), PolicyError)
      assert.strictEqual(err.property, 'order independence')
      assert.ok(err.counterexample.updates.length <= 3)
    })

    it('catches a policy that keeps state between calls (no side effects), or answers at random', () => {
      let calls = 0
      const counting: Resolve = (gossip, update) => lww_vs_current_vers(gossip, update) !== (++calls % 7 === 0)
      const err = catches(() => checkPolicy(counting, fc.integer(), { seed: 2 }), PolicyError)
      assert.strictEqual(err.property, 'no side effects')
      assert.match(err.message, /resolve answered (true|false), then (true|false), asked twice|calling resolve again changed the outcome/)
      // At random (seeded, so that the test is the same every time), any of
      // the properties may be the first to show it.
      const random = lehmer(9)
      assert.throws(() => checkPolicy(() => random() < 0.5, fc.integer(), { seed: 2 }), PolicyError)
    })

    it('catches a policy that changes its arguments (the node hands it frozen ones: it throws)', () => {
      const mutating: Resolve = (gossip, update) => {
        const v = update.value as { n?: number } | null
        if (v !== null && typeof v === 'object') v.n = (v.n ?? 0) + 1
        return lww_vs_current_vers(gossip, update)
      }
      const err = catches(() => checkPolicy(mutating, fc.record({ n: fc.nat(5) }), { seed: 3 }), PolicyError)
      assert.strictEqual(err.property, 'resolve threw')
      assert.match(err.message, /resolve threw: .*read[- ]only/)
    })

    it('reports a policy that throws', () => {
      const throwing: Resolve = (_gossip, update) => {
        if (update.deleted === true) throw new Error('no deletes here')
        return true
      }
      const err = catches(() => checkPolicy(throwing, fc.integer(), { seed: 4, keys: ['k'], sources: ['a', 'b'] }), PolicyError)
      assert.strictEqual(err.property, 'resolve threw')
      assert.match(err.message, /\n {2}resolve threw: no deletes here\n/)
      assert.strictEqual(err.counterexample.updates.length, 1)
    })

    it('refuses what is not a policy', () => {
      assert.throws(() => checkPolicy(null as unknown as Resolve, fc.integer()), TypeError)
    })
  })
})

function catches<E extends Error>(fn: () => unknown, type: new (...args: never[]) => E): E {
  try {
    fn()
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  assert.fail(`expected ${type.name}`)
}
