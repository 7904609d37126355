/**
 * The grow-only counter over sources, stated as its users rely on it: over
 * random topologies, increments and exchange schedules, with any mtu and
 * max_history, every node's total never goes down and never passes the
 * increments made, and once the network is quiet every node's total is the
 * number of increments, whatever `resolve` kept in `state`.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base, counter } from '../lib'
import { Net, connectedEdges } from './net'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 150)

type Step = { add: number; by: number } | { gossip: number; side: boolean } | { settle: true }

const scenario = fc
  .record({
    n: fc.integer({ min: 2, max: 8 }),
    mtu: fc.integer({ min: 1, max: 10 }),
    max_history: fc.integer({ min: 1, max: 30 }),
    parents: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
    extra: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 6 }),
    // a resolve that keeps the lowest value: the counter must not care
    resolveLowest: fc.boolean(),
    raw: fc.array(
      fc.oneof(
        fc.record({ add: fc.nat(), by: fc.integer({ min: 1, max: 5 }) }),
        fc.record({ gossip: fc.nat(), side: fc.boolean() }),
        fc.constant({ settle: true as const }),
      ),
      { maxLength: 60 },
    ),
  })
  .map((s) => {
    const edges = connectedEdges(s.n, s.parents, s.extra)
    const steps = s.raw.map((x): Step => {
      if ('add' in x) return { add: x.add % s.n, by: x.by }
      if ('gossip' in x) return { gossip: x.gossip % edges.length, side: x.side }
      return x
    })
    return { ...s, edges, steps }
  })

describe('counter (grow-only, summed over sources)', function () {
  this.timeout(120_000)

  it('every total is monotone, bounded by the increments, and equal to them once quiet', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const resolve = s.resolveLowest
          ? (g: Parameters<typeof base.resolution.lww_vs_current_vers>[0], u: Parameters<typeof base.resolution.lww_vs_current_vers>[1]) =>
              g.get(u.key).version === -Infinity || (u.value as number) < (g.get(u.key).value as number)
          : base.resolution.lww_vs_current_vers
        const net = new Net(
          Array.from({ length: s.n }, (_, i) => `n${i}`),
          () => ({ resolve, mtu: s.mtu, max_history: s.max_history }),
        )
        for (const [a, b] of s.edges) net.connect(a, b)
        let made = 0
        const seen = net.nodes.map(() => 0)
        const check = (): void => {
          net.nodes.forEach((g, i) => {
            const t = counter.total(g, 'hits')
            assert.ok(t >= seen[i], `${g.id}'s total went down from ${seen[i]} to ${t}`)
            assert.ok(t <= made, `${g.id} counts ${t} of ${made} increments`)
            seen[i] = t
          })
        }
        for (const step of s.steps) {
          if ('add' in step) {
            counter.add(net.nodes[step.add], 'hits', step.by)
            made += step.by
          } else if ('gossip' in step) {
            const link = net.links[step.gossip]
            ;(step.side ? link.sa : link.sb).gossip()
          } else {
            await net.settle()
          }
          check()
        }
        await net.settle()
        // Each exchange carries at most mtu of the n counts: a bound, not a guess.
        const done = () => net.nodes.every((g) => counter.total(g, 'hits') === made)
        for (let round = 0; round < 4 * s.n * s.n + 8 && !done(); round++) {
          for (const l of net.links) {
            l.sa.gossip()
            l.sb.gossip()
          }
          await net.settle()
          check()
        }
        for (const g of net.nodes) assert.strictEqual(counter.total(g, 'hits'), made, `${g.id}'s total`)
      }),
      { numRuns: RUNS },
    )
  })

  it("adds to this node's own count only, and refuses what is not a positive integer", () => {
    const g = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
    counter.add(g, 'k')
    counter.add(g, 'k', 4)
    g.write({ key: 'k', value: 10, source_id: 'b', version: g.version + 1 })
    g.write({ key: 'k', value: 'junk', source_id: 'c', version: g.version + 2 })
    assert.strictEqual(counter.own(g, 'k'), 5)
    assert.strictEqual(counter.total(g, 'k'), 15)
    assert.throws(() => counter.add(g, 'k', 0), RangeError)
    assert.throws(() => counter.add(g, 'k', 1.5), RangeError)
    g.set('big', Number.MAX_SAFE_INTEGER)
    assert.throws(() => counter.add(g, 'big'), /2\^53/)
  })
})
