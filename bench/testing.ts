/**
 * The testing entry's two goals (issue 22), measured on one core:
 * 1. 1,000 schedules of 5 nodes × 50 operations in under 30 s: each
 *    schedule's steps cut after its 50th write, delete or counter add
 *    (exchanges, partitions, pauses and restarts between them), run and
 *    checked by `runSchedule` (checkConvergence's runner) with the shipped
 *    last-writer-wins policy, failures (the core's) counted and kept; and,
 *    for comparison, `checkConvergence` itself over 1,000 schedules of 50
 *    steps;
 * 2. a policy that does not converge ("keep the latest arrival") caught
 *    within 100 runs and shrunk to at most 6 operations in a few seconds,
 *    by `checkConvergence` and by `checkPolicy`, over SEEDS seeds.
 *
 *   npm run build && node dist/bench/testing.js
 *
 * BENCH_SCHEDULES sets the schedules of goal 1, BENCH_SEEDS the seeds of
 * goal 2. Prints a table and writes bench/testing-results.json.
 */
import fc from 'fast-check'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { base } from '../lib'
import type { Resolve } from '../lib'
import { checkConvergence, checkPolicy, ConvergenceError, PolicyError, operationCount, runSchedule, scheduleArbitrary, scheduleToJSON, ScheduleFailure, type Schedule, type Step } from '../lib/testing'

const SCHEDULES = Number(process.env.BENCH_SCHEDULES ?? 1000)
const SEEDS = Number(process.env.BENCH_SEEDS ?? 20)

async function main(): Promise<void> {
  // Goal 1.
  const fifty = scheduleArbitrary({ nodes: 5, steps: 160, size: 'max' }).map((s) => cut(s, 50))
  const one = await timed(fc.sample(fifty, { numRuns: SCHEDULES, seed: 42 }))
  const short = one.schedules.filter((s) => operationCount(s) < 50).length
  console.log(
    `goal 1: ${SCHEDULES} schedules of 5 nodes × 50 operations (${one.steps.toFixed(1)} steps each on average; ${short} had fewer than 50 operations) in ${one.cpu.toFixed(1)} s of CPU (${one.seconds.toFixed(1)} s wall; goal < 30 s): ${one.cpu < 30 ? 'met' : 'NOT met'}; ${one.failures.length} failed (the core's)`,
  )
  // For comparison: what checkConvergence draws for `{ nodes: 5, steps: 50 }`.
  const two = await timed(fc.sample(scheduleArbitrary({ nodes: 5, steps: 50 }), { numRuns: SCHEDULES, seed: 42 }))
  console.log(`   and ${SCHEDULES} schedules of 5 nodes × 50 steps (${two.operations.toFixed(1)} operations each on average) in ${two.cpu.toFixed(1)} s of CPU (${two.seconds.toFixed(1)} s wall); ${two.failures.length} failed`)

  // Goal 2.
  const latest: Resolve = () => true
  const caught: { seed: number; tool: string; runs: number; operations: number; seconds: number; readable: string }[] = []
  for (let seed = 1; seed <= SEEDS; seed++) {
    let t = process.hrtime.bigint()
    try {
      await checkConvergence({ resolve: latest }, { runs: 100, seed })
      caught.push({ seed, tool: 'checkConvergence', runs: Infinity, operations: Infinity, seconds: NaN, readable: 'not caught' })
    } catch (err) {
      if (!(err instanceof ConvergenceError)) throw err
      caught.push({ seed, tool: 'checkConvergence', runs: err.runs, operations: operationCount(err.schedule), seconds: Number(process.hrtime.bigint() - t) / 1e9, readable: err.readable })
    }
    t = process.hrtime.bigint()
    try {
      checkPolicy(latest, fc.integer(), { runs: 100, seed })
      caught.push({ seed, tool: 'checkPolicy', runs: Infinity, operations: Infinity, seconds: NaN, readable: 'not caught' })
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err
      caught.push({ seed, tool: 'checkPolicy', runs: err.runs, operations: err.counterexample.updates.length, seconds: Number(process.hrtime.bigint() - t) / 1e9, readable: err.message.split('\n')[1] })
    }
  }
  const summary = ['checkConvergence', 'checkPolicy'].map((tool) => {
    const rows = caught.filter((c) => c.tool === tool)
    const worst = {
      tool,
      seeds: rows.length,
      caught: rows.filter((r) => r.runs <= 100).length,
      maxRuns: Math.max(...rows.map((r) => r.runs)),
      maxOperations: Math.max(...rows.map((r) => r.operations)),
      maxSeconds: Math.max(...rows.map((r) => r.seconds)),
      medianSeconds: rows.map((r) => r.seconds).sort((a, b) => a - b)[Math.floor(rows.length / 2)],
    }
    const met = worst.caught === worst.seeds && worst.maxOperations <= 6 && worst.maxSeconds < 5
    console.log(
      `goal 2 (${tool}): caught on ${worst.caught} of ${worst.seeds} seeds within ${worst.maxRuns} runs, shrunk to at most ${worst.maxOperations} operations, in at most ${worst.maxSeconds.toFixed(2)} s (median ${worst.medianSeconds.toFixed(2)} s): ${met ? 'met' : 'NOT met'}`,
    )
    return { ...worst, met }
  })
  console.log(`for instance: ${caught[0].readable}`)
  const out = {
    when: new Date().toISOString(),
    node: process.version,
    load: os.loadavg(),
    goal1: {
      fiftyOperations: { schedules: SCHEDULES, nodes: 5, operations: 50, stepsPerSchedule: one.steps, seconds: one.seconds, cpuSeconds: one.cpu, met: one.cpu < 30, failures: one.failures },
      fiftySteps: { schedules: SCHEDULES, nodes: 5, steps: 50, opsPerSchedule: two.operations, seconds: two.seconds, cpuSeconds: two.cpu, failures: two.failures },
    },
    goal2: summary,
    cases: caught,
  }
  fs.writeFileSync(path.join(__dirname, '..', '..', 'bench', 'testing-results.json'), `${JSON.stringify(out, null, 2)}\n`)
}

// Run and check each of `schedules` in turn (runSchedule, checkConvergence's
// runner): a failure of the core is kept, not shrunk.
// `seconds` is wall-clock time, `cpu` the process's (user and system): on a
// shared machine the second is the one-core figure.
async function timed(schedules: Schedule<number>[]): Promise<{ schedules: Schedule<number>[]; seconds: number; cpu: number; steps: number; operations: number; failures: string[] }> {
  const config = { resolve: base.resolution.lww_vs_current_vers }
  const failures: string[] = []
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  for (const s of schedules) {
    try {
      await runSchedule(config, s)
    } catch (err) {
      if (!(err instanceof ScheduleFailure)) throw err
      failures.push(`${err.when}: ${scheduleToJSON(s)}`)
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(c0)
  const cpu = (c.user + c.system) / 1e6
  const per = (f: (s: Schedule<number>) => number): number => schedules.reduce((n, s) => n + f(s), 0) / schedules.length
  return { schedules, seconds, cpu, steps: per((s) => s.steps.length), operations: per(operationCount), failures }
}

// `s` cut after its `n`th operation (a split's writes counted one by one).
function cut<V>(s: Schedule<V>, n: number): Schedule<V> {
  const steps: Step<V>[] = []
  let left = n
  for (const st of s.steps) {
    if (left === 0) break
    if (st.t === 'split') {
      const ops = st.ops.slice(0, left)
      left -= ops.length
      steps.push({ ...st, ops })
    } else {
      if (st.t === 'set' || st.t === 'del' || st.t === 'add') left--
      steps.push(st)
    }
  }
  return { ...s, steps }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
