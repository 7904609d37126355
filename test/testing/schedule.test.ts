/**
 * Schedules (lib/testing/schedule.ts): they print readably and as JSON that
 * reads back as is, refuse what is not a schedule, and are made as their
 * options ask; every kind of step runs.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { base } from '../../lib'
import {
  FULL,
  describe as describeSchedule,
  parseSchedule,
  replay,
  scheduleArbitrary,
  scheduleToJSON,
  type Schedule,
} from '../../lib/testing'

const { lww_vs_current_vers } = base.resolution

describe('simple-scuttle/testing', function () {
  this.timeout(120_000)

  describe('schedules', () => {
    const every: Schedule<number> = {
      nodes: 3,
      mtu: 2,
      max_history: 5,
      links: [
        [0, 1],
        [1, 2],
      ],
      persist: [0, 1, 0],
      skew: [0, 300_000, -1500],
      steps: [
        { t: 'set', n: 1, k: 'x', v: 1 },
        { t: 'del', n: 2, k: 0 },
        { t: 'add', n: 0, c: 'hits' },
        { t: 'x', a: 0, b: 1 },
        { t: 'x', a: 1, b: 2, cut: 3 },
        { t: 'dup', a: 1, b: 0 },
        { t: 'cross', a: 2, b: 1 },
        { t: 'part', mask: 1 },
        { t: 'heal' },
        { t: 'down', a: 0, b: 1 },
        { t: 'up', a: 1, b: 0 },
        { t: 'wait', ms: 65_000 },
        { t: 'run', ms: 250 },
        { t: 'split', mask: 1, ops: [[0, 'set', 'y', 7], [2, 'del', 'x', 0]], ms: 60_000 },
        { t: 'restart', n: 2, kind: 'nothing' },
      ],
      keep: [true, false],
    }

    it('describe prints every step readably', () => {
      assert.strictEqual(
        describeSchedule(every),
        '3 nodes, links n0-n1 n1-n2, mtu 2, max_history 5, n1 on store object, skew n1 +300s, n2 -1.5s: ' +
          'n1 set x=1 · n2 delete x · n0 add hits · exchange n0→n1 · exchange n1→n2 cut after 3 · exchange n1→n0 asked twice · ' +
          'exchange n2⇄n1 crossed · partition {n0} | {n1,n2} · heal · link n0-n1 down · link n1-n0 up · pause 65s · gossip 250ms · ' +
          'split {n0} | {n1,n2} (n0 set y=7, n2 delete x) 60s, heal · restart n2 (nothing)',
      )
    })

    it('prints as JSON that reads back as is (a cut of Infinity included)', () => {
      const text = scheduleToJSON(every)
      assert.deepStrictEqual(parseSchedule(text), every)
      const whole = parseSchedule<number>('{"nodes":2,"steps":[{"t":"x","a":0,"b":1,"cut":"Infinity"}]}')
      assert.deepStrictEqual(whole.steps[0], { t: 'x', a: 0, b: 1, cut: Infinity })
      assert.strictEqual(scheduleToJSON(whole), '{"nodes":2,"steps":[{"t":"x","a":0,"b":1,"cut":"Infinity"}]}')
    })

    it('refuses what is not a schedule, saying why', () => {
      assert.throws(() => parseSchedule('{"steps":[]}'), /nodes must be a positive integer/)
      assert.throws(() => parseSchedule('{"nodes":2}'), /steps must be an array/)
      assert.throws(() => parseSchedule('{"nodes":2,"steps":[{"t":"set","n":2,"k":"x","v":1}]}'), /step 1 names node 2 of 2/)
      assert.throws(() => parseSchedule('{"nodes":2,"steps":[{"t":"jump"}]}'), /step 1 is of no known kind/)
    })

    it('runs every kind of step, the printed form of one that FULL makes included', async () => {
      await replay({ resolve: lww_vs_current_vers }, scheduleToJSON(every), { counters: ['hits'], trace: () => undefined })
    })

    it('makes schedules as its options ask: nodes, steps, kinds, links, mtu and max_history', () => {
      const plain = fc.sample(scheduleArbitrary({ nodes: { min: 2, max: 4 }, steps: { min: 3, max: 9 }, weights: { restart: 0 } }), { numRuns: 300, seed: 1 })
      const full = fc.sample(scheduleArbitrary({ ...FULL, nodes: 5, steps: 30 }), { numRuns: 300, seed: 1 })
      for (const s of [...plain, ...full]) {
        checkNodes(s)
        const kinds = new Set(s.steps.map((st) => st.t))
        assert.ok(!kinds.has('add'), 'no counters, no adds')
      }
      for (const s of plain) {
        assert.ok(s.nodes >= 2 && s.nodes <= 4 && s.steps.length >= 3 && s.steps.length <= 9)
        assert.ok(!s.steps.some((st) => st.t === 'restart' || st.t === 'dup' || st.t === 'cross'))
        assert.ok(s.links === undefined && s.max_history === undefined)
      }
      assert.ok(full.every((s) => s.nodes === 5 && s.steps.length === 30))
      assert.ok(full.some((s) => s.links !== undefined) && full.some((s) => s.max_history !== undefined))
      assert.ok(full.some((s) => s.steps.some((st) => st.t === 'dup')) && full.some((s) => s.steps.some((st) => st.t === 'cross')))
      // Random links make a connected graph, and exchanges follow them.
      for (const s of full) {
        if (s.links === undefined) continue
        const reached = new Set([0])
        for (let grew = true; grew; ) {
          grew = false
          for (const [a, b] of s.links) if (reached.has(a) !== reached.has(b)) grew = reached.add(a).add(b) !== null
        }
        assert.strictEqual(reached.size, s.nodes, JSON.stringify(s.links))
        for (const st of s.steps) {
          if (st.t !== 'x' && st.t !== 'dup' && st.t !== 'cross') continue
          assert.ok(
            s.links.some(([a, b]) => (a === st.a && b === st.b) || (a === st.b && b === st.a)),
            `${JSON.stringify(st)} over ${JSON.stringify(s.links)}`,
          )
        }
      }
    })
  })
})

function checkNodes(s: Schedule<unknown>): void {
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 0 && n < s.nodes
  for (const st of s.steps) {
    if ('n' in st) assert.ok(ok(st.n), JSON.stringify(st))
    if ('a' in st) assert.ok(ok(st.a) && ok(st.b) && st.a !== st.b, JSON.stringify(st))
    if (st.t === 'split') assert.ok(st.ops.every(([n]) => ok(n)))
  }
  assert.ok((s.persist ?? []).length === 0 || s.persist?.length === s.nodes)
}
