/**
 * runSchedule and replay (lib/testing/run.ts): a schedule run over
 * in-process nodes, and what it reports. (Schedules found and shrunk:
 * testing/check.test.ts.)
 */
import * as assert from 'assert'
import { base } from '../../lib'
import type { Resolve } from '../../lib'
import { ScheduleFailure, replay, runSchedule, type Schedule } from '../../lib/testing'
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
})
