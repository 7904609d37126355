/**
 * runSchedule and replay (lib/testing/run.ts): a schedule run over
 * in-process nodes, and what it reports. (Schedules found and shrunk:
 * testing/check.test.ts.)
 */
import * as assert from 'assert'
import { base } from '../../lib'
import type { Resolve } from '../../lib'
import { ScheduleFailure, lehmer, orderOf, replay, runSchedule, type Schedule } from '../../lib/testing'
import { rejects } from '../rejects'

const { lww_vs_current_vers } = base.resolution

describe('simple-scuttle/testing: runSchedule', function () {
  this.timeout(120_000)

  it('reports what resolve throws as a failure of the schedule, at the step it came from', async () => {
    let calls = 0
    const failing: Resolve = (gossip, update) => {
      if (++calls > 3) throw new Error('resolve broke')
      return lww_vs_current_vers(gossip, update)
    }
    const s: Schedule = { nodes: 2, steps: [{ t: 'set', n: 0, k: 'x', v: 1 }, { t: 'set', n: 1, k: 'x', v: 2 }, { t: 'x', a: 0, b: 1 }] }
    const err = await rejects(replay({ resolve: failing }, s), ScheduleFailure)
    assert.strictEqual(err.when, 'after step 3 (exchange n0→n1): a node refused an update')
    assert.match(err.problems[0], /^n[01]: resolve threw: resolve broke$/)
    // A write of the node's own: the call throws, during the step.
    calls = 3
    const own = await rejects(replay({ resolve: failing }, s), ScheduleFailure)
    assert.strictEqual(own.when, 'during step 1 (n0 set x=1)')
    assert.match(own.problems[0], /threw Error: resolve broke/)
  })

  it('runs one schedule at a time (time is simulated)', async () => {
    const s: Schedule = { nodes: 2, steps: [{ t: 'run', ms: 60_000 }] }
    const first = runSchedule({ resolve: lww_vs_current_vers }, s)
    await assert.rejects(runSchedule({ resolve: lww_vs_current_vers }, s), /another run is under way/)
    await first
  })

  it("lehmer: Park and Miller's generator, seeded: the same run for the same seed, in [0, 1)", () => {
    // The first of seed 1 is 16807 / (2^31 - 1) shifted down by one step.
    assert.strictEqual(lehmer(1)(), (16807 - 1) / 2147483646)
    const a = lehmer(5)
    const b = lehmer(5)
    const xs = Array.from({ length: 500 }, () => a())
    assert.deepStrictEqual(Array.from({ length: 500 }, () => b()), xs)
    assert.ok(xs.every((x) => x >= 0 && x < 1))
    // A seed of 0 (or a multiple of the modulus) would stick at 0: it is taken as 1.
    assert.strictEqual(lehmer(0)(), lehmer(1)())
    assert.strictEqual(lehmer(-5.7)(), lehmer(5)())
  })

  it('orderOf: the order each shipped policy keeps the greatest of, null for any other', () => {
    const { lww_vs_clock, strictly_order_values } = base.resolution
    const u = (value: unknown, version: number, source_id = 's') => ({ key: 'k', value, source_id, version })
    const lww = orderOf({ resolve: lww_vs_current_vers })
    assert.ok(lww !== null && lww(u(1, 2), u(9, 1)) > 0 && lww(u(1, 2, 'b'), u(1, 2, 'a')) > 0)
    const bySort = (a: { version: number }, b: { version: number }) => b.version - a.version
    assert.strictEqual(orderOf({ resolve: lww_vs_clock, sort: bySort }), bySort)
    const values = orderOf({ resolve: strictly_order_values })
    assert.ok(values !== null && values(u(9, 1), u(1, 2)) > 0 && values(u(1, 2), u(1, 1)) > 0)
    assert.strictEqual(orderOf({ resolve: () => true }), null)
  })
})
