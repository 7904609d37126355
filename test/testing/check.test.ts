/**
 * `simple-scuttle/testing`: checkPolicy and checkConvergence pass the
 * shipped policies and catch ones that do not converge (within 100 runs,
 * shrunk to at most 6 operations); schedules print and replay; the
 * core's failures it found still fail as recorded (and the fixed ones
 * pass); and the entry works from the packed tarball in a strict
 * TypeScript consumer and in plain JavaScript (require and import).
 * docs/testing.md's example is test/readme.test.ts's.
 */
import * as assert from 'assert'
import { execFileSync } from 'child_process'
import fc from 'fast-check'
import * as fs from 'fs'
import * as path from 'path'
import { Gossip, base } from '../../lib'
import type { Resolve, Update } from '../../lib'
import {
  FULL,
  ConvergenceError,
  PolicyError,
  ScheduleFailure,
  checkConvergence,
  checkPolicy,
  describe as describeSchedule,
  lehmer,
  memory,
  operationCount,
  parseSchedule,
  replay,
  runSchedule,
  scheduleArbitrary,
  scheduleToJSON,
  storeObject,
  type Persistence,
  type Schedule,
} from '../../lib/testing'
import { _digestPart } from '../../lib/digest'
import { ROOT, consumer, tsc } from '../consumer'

const { lww_vs_current_vers, lww_vs_clock, strictly_order_values } = base.resolution
const SHIPPED: [string, Resolve][] = [
  ['lww_vs_current_vers', lww_vs_current_vers],
  ['lww_vs_clock', lww_vs_clock],
  ['strictly_order_values', strictly_order_values],
]

/** "Keep the latest arrival": whatever reaches a node last wins there. */
const latestArrival: Resolve = () => true

// TypeScript compiles import() to require() under CommonJS; keep a real one.
const importESM = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Record<string, unknown>>

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

  describe('checkConvergence', () => {
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

  describe("the core's failures the entry found (docs/testing.md, 'Known failures')", () => {
    // `fails`: still fails, as recorded (once it passes, it was fixed: drop
    // `fails`); without: fixed, and must stay so.
    const known = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'testing-known-failures.json'), 'utf8')) as {
      why: string
      fails?: string
      digestPart?: number
      schedule: Schedule
    }[]
    for (const k of known) {
      it(k.why, async () => {
        if (k.digestPart !== undefined) _digestPart(k.digestPart)
        try {
          const run = replay({ resolve: lww_vs_current_vers }, parseSchedule(JSON.stringify(k.schedule)))
          if (k.fails === undefined) return await run
          const err = await rejects(run, ScheduleFailure)
          assert.match(`${err.when}: ${err.problems.join('\n')}`, new RegExp(k.fails))
        } finally {
          _digestPart(undefined)
        }
      })
    }
  })

  describe('from the packed tarball', () => {
    let dir = ''
    before(() => {
      dir = consumer()
    })

    it('a strict TypeScript consumer imports simple-scuttle/testing and runs checkPolicy and checkConvergence', () => {
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.ts'),
        [
          "import fc from 'fast-check'",
          "import { base } from 'simple-scuttle'",
          "import type { Resolve } from 'simple-scuttle'",
          "import { checkConvergence, checkPolicy, PolicyError, type ConvergenceOptions } from 'simple-scuttle/testing'",
          'const latest: Resolve = () => true',
          'const options: ConvergenceOptions<string> = { values: fc.string(), runs: 10 }',
          'async function main(): Promise<void> {',
          '  const { runs } = checkPolicy(base.resolution.lww_vs_current_vers, fc.integer())',
          '  try {',
          '    checkPolicy(latest, fc.integer())',
          '  } catch (err) {',
          "    if (err instanceof PolicyError) console.log('caught', err.property, err.counterexample.updates.length)",
          '  }',
          '  const report = await checkConvergence({ resolve: base.resolution.lww_vs_current_vers }, options)',
          "  console.log('passed', runs, report.runs)",
          '}',
          'void main()',
        ].join('\n'),
      )
      // The same as an ES module (.mts): its fast-check is fast-check's ESM
      // copy, whose classes TypeScript tells apart from the CommonJS one's
      // (a stranger's strict ESM project failed on it).
      fs.copyFileSync(path.join(dir, 'testing-consumer.ts'), path.join(dir, 'testing-consumer.mts'))
      tsc(dir, ['testing-consumer.ts', 'testing-consumer.mts'], false)
      tsc(dir, ['testing-consumer.ts', 'testing-consumer.mts'], true)
      for (const file of ['testing-consumer.js', 'testing-consumer.mjs']) {
        const out = execFileSync(process.execPath, [path.join(dir, 'out', file)], { cwd: dir, encoding: 'utf8' })
        assert.match(out, /^caught order independence [1-6]\npassed 100 10\n$/, file)
      }
    })

    it('plain JavaScript consumers require and import it, and run checkPolicy', () => {
      const body = [
        "const ok = checkPolicy(base.resolution.strictly_order_values, fc.integer()).runs",
        'let caught = null',
        'try { checkPolicy(() => true, fc.integer()) } catch (err) { caught = err.name }',
        'console.log(ok, caught)',
      ]
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.cjs'),
        ["const fc = require('fast-check')", "const { base } = require('simple-scuttle')", "const { checkPolicy } = require('simple-scuttle/testing')", ...body].join('\n'),
      )
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.mjs'),
        ["import fc from 'fast-check'", "import { base } from 'simple-scuttle'", "import { checkPolicy } from 'simple-scuttle/testing'", ...body].join('\n'),
      )
      for (const f of ['testing-consumer.cjs', 'testing-consumer.mjs']) {
        const out = execFileSync(process.execPath, [f], { cwd: dir, encoding: 'utf8' })
        assert.strictEqual(out, '100 PolicyError\n', f)
      }
    })
  })

  it('the ESM entry exports every name of the CommonJS one, the same objects', async () => {
    const esm = await importESM('simple-scuttle/testing')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cjs = require('simple-scuttle/testing') as Record<string, unknown>
    for (const name of Object.keys(cjs)) assert.strictEqual(esm[name], cjs[name], `import exports ${name}`)
    assert.strictEqual(esm.default, cjs)
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

function catches<E extends Error>(fn: () => unknown, type: new (...args: never[]) => E): E {
  try {
    fn()
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  assert.fail(`expected ${type.name}`)
}

async function rejects<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  assert.fail(`expected ${type.name}`)
}
