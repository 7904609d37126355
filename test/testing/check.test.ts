/**
 * checkConvergence (lib/testing/check.ts, run.ts): passes the shipped
 * policies over random schedules with deletes, partitions, pauses, skew and
 * restarts, checks the paper's invariant after every step, and catches
 * policies that do not converge (within 100 runs, shrunk to at most 6
 * operations), with a printed schedule that replays as is.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base } from '../../lib'
import type { Resolve, Update } from '../../lib'
import {
  FULL,
  ConvergenceError,
  ScheduleFailure,
  checkConvergence,
  checkPolicy,
  describe as describeSchedule,
  memory,
  operationCount,
  replay,
  storeObject,
  type Persistence,
  type Schedule,
} from '../../lib/testing'
import { rejects } from '../rejects'

const { lww_vs_current_vers, lww_vs_clock, strictly_order_values } = base.resolution

/** "Keep the latest arrival": whatever reaches a node last wins there. */
const latestArrival: Resolve = () => true

describe('simple-scuttle/testing', function () {
  this.timeout(120_000)

  describe('checkConvergence', () => {
    it('ranks a write issued again at its first version, as every node does (R2; outside attacker: a delete re-issued after a restart from nothing, rightly losing at its first version, was judged "a deleted value is back")', async () => {
      // n0 sets x, restarts from nothing 417 s behind n1's clock, and deletes
      // x: its past shows itself above, so the delete is issued again with
      // `first` and loses to n1's earlier-issued write where it was placed.
      const s = '{"nodes":2,"steps":[{"t":"split","mask":3,"ops":[[1,"set","x",0]],"ms":1000},{"t":"set","n":0,"k":"x","v":0},{"t":"x","a":0,"b":1},{"t":"restart","n":0,"kind":"nothing"},{"t":"del","n":0,"k":"x"}],"skew":[0,417221]}'
      await replay({ resolve: lww_vs_current_vers }, s)
    })

    it('passes last-writer-wins with deletes, partitions, pauses past the grace, skew and restarts of every kind', async () => {
      const seen = { nodes: 0, restarts: 0, collected: 0, late: 0 }
      const report = await checkConvergence(
        { resolve: lww_vs_current_vers },
        {
          runs: 100,
          seed: 1,
          counters: ['hits'],
          onNode: (g) => {
            seen.nodes++
            g.history.on('forget', () => seen.collected++)
            g.on('late', () => seen.late++)
          },
        },
      )
      assert.strictEqual(report.runs, 100)
      // What the schedules did: a property that reaches nothing proves nothing.
      assert.ok(seen.nodes > 100 * 4, `nodes started: ${seen.nodes}`)
      assert.ok(seen.collected > 100, `markers collected: ${seen.collected}`)
      assert.ok(seen.late > 0, `late writes: ${seen.late}`)
    })

    it('passes lww_vs_clock and strictly_order_values, each checked against its own order', async () => {
      for (const resolve of [lww_vs_clock, strictly_order_values]) await checkConvergence({ resolve }, { runs: 40, seed: 2 })
    })

    it('passes with everything FULL turns on, over fixed seeds', async () => {
      // Known core failures there are rare; these seeds miss them.
      const report = await checkConvergence({ resolve: lww_vs_current_vers }, { ...FULL, runs: 60, seed: 3 })
      assert.strictEqual(report.runs, 60)
    })

    it('catches "keep the latest arrival" within 100 runs, shrunk to at most 6 operations (5 seeds), and the printed schedule replays as is', async () => {
      for (let seed = 1; seed <= 5; seed++) {
        const err = await rejects(checkConvergence({ resolve: latestArrival }, { seed }), ConvergenceError)
        assert.ok(err.runs <= 100, `seed ${seed}: found after ${err.runs} runs`)
        assert.ok(operationCount(err.schedule) <= 6, `seed ${seed}: ${err.readable}`)
        assert.match(err.message, /^checkConvergence failed .*nodes disagree/)
        assert.ok(err.message.includes(`  ${err.readable}\n`))
        assert.ok(err.message.endsWith(`replay(config, '${err.json}')`))
        assert.match(err.readable, /^\d nodes.*: (.* · )?n\d set [xyz]=/)
        const again = await rejects(replay({ resolve: latestArrival }, err.json), ScheduleFailure)
        assert.strictEqual(again.when, err.failure.when)
        assert.deepStrictEqual(again.problems, err.failure.problems)
      }
    })

    it("checks a user's policy against the order it declares, and agreement only without one", async () => {
      // The longest string, ties by (version, source); a delete lowest of all.
      const rank = (u: Update): number => (u.deleted === true ? -1 : String(u.value).length)
      const order = (a: Update, b: Update): number => rank(a) - rank(b) || base.sort(a, b)
      const longest: Resolve = (gossip, update) => {
        const current = gossip.get(update.key)
        return current.version === -Infinity || order(update, current as Update) > 0
      }
      const values = fc.string({ maxLength: 3 })
      await checkConvergence({ resolve: longest }, { values, order, runs: 60, seed: 4 })
      await checkConvergence({ resolve: longest }, { values, runs: 30, seed: 4 })
      // Declared with the wrong order (the least write), a converging policy fails the model.
      const err = await rejects(
        checkConvergence({ resolve: lww_vs_current_vers }, { order: (a, b) => base.sort(b, a), runs: 100, seed: 5 }),
        ConvergenceError,
      )
      assert.match(err.failure.when, /miss the greatest write|a deleted value is back|a write withdrawn that no delete beat/)
      assert.ok(operationCount(err.schedule) <= 6, err.readable)
    })

    it('catches a policy that passes checkPolicy but lets a delete compete by its length (deletes assume a delete beats only what is older)', async () => {
      const draft: Resolve = (gossip, update) => {
        const current = gossip.get(update.key)
        if (current.version === -Infinity) return true
        const a = String(current.value).length
        const b = String(update.value).length
        return a !== b ? b > a : gossip.sort(current as Update, update) < 0
      }
      checkPolicy(draft, fc.string(), { seed: 1 })
      const err = await rejects(checkConvergence({ resolve: draft }, { values: fc.string({ maxLength: 3 }), seed: 1 }), ConvergenceError)
      assert.ok(err.runs <= 100 && operationCount(err.schedule) <= 6, err.message)
      assert.match(err.readable, /delete/)
    })

    it('runs nodes on a store of the user\'s (a store object made by `make`)', async () => {
      const made: string[] = []
      const mine = (): Persistence =>
        storeObject((id) => {
          made.push(id)
          return Object.create(null) as Record<string, Update>
        }, 'my store')
      await checkConvergence({ resolve: lww_vs_current_vers }, { stores: [mine], runs: 30, seed: 6 })
      assert.ok(made.length > 30, `stores made: ${made.length}`)
      const s: Schedule = { nodes: 2, persist: [2, 0], steps: [{ t: 'set', n: 0, k: 'x', v: 1 }, { t: 'restart', n: 0, kind: 'crash' }] }
      assert.strictEqual(describeSchedule(s, { persistences: ['snapshot', 'store object', 'my store'] }), '2 nodes, n0 on my store: n0 set x=1 · restart n0 (crash)')
      await replay({ resolve: lww_vs_current_vers }, s, { stores: [mine] })
    })

    it("checks the paper's invariant after every step: a store that loses a write but keeps its max is caught where it happens", async () => {
      // Restores the snapshot without its oldest update of another source,
      // while still claiming that source up to where it was.
      const lossy = (): Persistence => ({
        name: 'lossy',
        keeps: 'everything',
        open: memory.open,
        wipe: memory.wipe,
        reopen: async (node, config) => {
          const snap = node.snapshot()
          const others = snap.updates.filter((u) => u.source_id !== node.id).sort((a, b) => a.version - b.version)
          const maxes: Record<string, number> = {}
          for (const [id, log] of node.history.sources) maxes[id] = log.max
          return Gossip.restore(node.id, config, { ...snap, updates: snap.updates.filter((u) => u !== others[0]), maxes })
        },
      })
      const s: Schedule = {
        nodes: 2,
        persist: [2, 0],
        steps: [
          { t: 'set', n: 1, k: 'x', v: 1 },
          { t: 'set', n: 1, k: 'y', v: 2 },
          { t: 'x', a: 0, b: 1 },
          { t: 'restart', n: 0, kind: 'clean' },
        ],
      }
      const err = await rejects(replay({ resolve: lww_vs_current_vers }, s, { stores: [lossy] }), ScheduleFailure)
      assert.strictEqual(err.when, "after step 4 (restart n0 (clean)): the paper's invariant is broken")
      assert.match(err.problems[0], /^n0 lacks x=1 by n1@\d+, though its digest names n1 up to \d+$/)
    })
  })
})
