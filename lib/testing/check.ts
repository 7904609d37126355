/**
 * `checkConvergence`: random schedules over in-process nodes running your
 * configuration, each checked by {@link runSchedule}; a failure shrunk by
 * fast-check and reported as a readable schedule that replays as printed.
 */
import * as fc from 'fast-check'
import type { Config } from '../types'
import { ScheduleFailure, runSchedule, type RunOptions } from './run'
import { DEFAULT_KEYS, describe, operationCount, scheduleArbitrary, scheduleToJSON, type Schedule, type ScheduleOptions, type Step } from './schedule'

/** Options of {@link checkConvergence}: the schedules, the checks, and fast-check's run. */
export interface ConvergenceOptions<V = number> extends RunOptions, ScheduleOptions<V> {
  /** How many random schedules. Default 100. */
  runs?: number
  /** fast-check's seed, to run again what a failure reported. Default: random. */
  seed?: number
  /** fast-check's path (with `seed`), to go straight to a reported counterexample. */
  path?: string
  /** Schedules run before the random ones (kept counterexamples). */
  examples?: readonly Schedule<V>[]
  /** Whether to shrink a failing schedule. Default true. */
  shrink?: boolean
}

/** What a passing {@link checkConvergence} ran. */
export interface ConvergenceReport {
  /** Schedules run. */
  readonly runs: number
  /** fast-check's seed. */
  readonly seed: number
}

/**
 * A schedule on which the nodes did not converge (or broke another
 * guarantee): the shrunk schedule, readable and as JSON, and how to find it
 * again.
 */
export class ConvergenceError extends Error {
  constructor(
    /** The shrunk schedule. */
    readonly schedule: Schedule<unknown>,
    /** Which guarantee broke, and when. */
    readonly failure: ScheduleFailure,
    /** fast-check's seed. */
    readonly seed: number,
    /** fast-check's path to the counterexample. */
    readonly path: string,
    /** Schedules run until the first failure. */
    readonly runs: number,
    /** Shrinks that led from the first failure to this schedule. */
    readonly shrinks: number,
    /** The schedule readable (see `describe`). */
    readonly readable: string,
    /** The schedule as JSON, for `replay`. */
    readonly json: string,
  ) {
    super(
      [
        `checkConvergence failed ${failure.when}:`,
        ...failure.problems.slice(0, 8).map((p) => `  ${p}`),
        `on this schedule (${operationCount(schedule)} operations; found after ${runs} run${runs === 1 ? '' : 's'}, shrunk ${shrinks} times; seed ${seed}, path "${path}"):`,
        `  ${readable}`,
        'replay it with:',
        `  replay(config, '${json.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}')`,
      ].join('\n'),
    )
    this.name = 'ConvergenceError'
  }
}

/**
 * Run random schedules (writes from `options.values`, deletes, exchanges
 * cut mid-flight, repeated and crossing, partitions, pauses past the grace,
 * clock skew, restarts of every kind, random links, mtu and max_history)
 * over in-process nodes built from `config`, and check each as
 * {@link runSchedule} does. Resolves when every schedule passes.
 *
 * @throws {@link ConvergenceError} with the shrunk schedule, readable and as
 *   JSON that `replay` runs as is, and the seed.
 */
export async function checkConvergence<V = number>(config: Config | ((id: string) => Config), options: ConvergenceOptions<V> = {}): Promise<ConvergenceReport> {
  const available = 2 + (options.stores?.length ?? 0)
  const persistences = Math.max(1, Math.min(options.persistences ?? available, available))
  const grace = options.grace ?? (typeof config === 'function' ? config('n0') : config).tombstone_grace ?? 60_000
  const schedules = scheduleArbitrary<V>({ ...options, persistences, grace })
  const property = fc.asyncProperty(schedules, async (s) => {
    await runSchedule(config, s, { ...options, grace })
  })
  const details = await fc.check(property, {
    numRuns: options.runs ?? 100,
    seed: options.seed,
    path: options.path,
    endOnFailure: options.shrink === false,
    examples: (options.examples ?? []).map((e) => [e] as [Schedule<V>]),
  })
  if (!details.failed) return { runs: details.numRuns, seed: details.seed }
  let schedule = (details.counterexample?.[0] ?? { nodes: 0, steps: [] }) as Schedule<unknown>
  const err = details.errorInstance
  let failure = err instanceof ScheduleFailure ? err : new ScheduleFailure(schedule, 'a run', [`threw ${String(err)}`])
  let shrinks = details.numShrinks
  if (options.shrink !== false && err instanceof ScheduleFailure) {
    const done = await simplify(schedule, failure, (s) => runSchedule(config, s as Schedule<V>, { ...options, grace }))
    schedule = done.schedule
    failure = done.failure
    shrinks += done.steps
  }
  const names = failure.names ?? { keys: options.keys ?? DEFAULT_KEYS, counters: options.counters }
  throw new ConvergenceError(
    schedule,
    failure,
    details.seed,
    details.counterexamplePath ?? '',
    details.numRuns,
    shrinks,
    describe(schedule, names),
    scheduleToJSON(schedule),
  )
}

// The guarantee a failure broke, whenever it broke it: 'nodes disagree', ...
function guarantee(f: ScheduleFailure): string {
  const parts = f.when.split(': ')
  return parts[parts.length - 1]
}

/**
 * What fast-check's shrinking leaves behind, simplified further: steps and
 * split operations removed one at a time, splits replaced by their writes
 * without the partition, then skews, persistences, mtu, max_history,
 * links, how late writes are settled and the seed reset, each kept when
 * the same guarantee still breaks. Returns the simplest schedule, its failure, and how many
 * simplifications were kept.
 */
export async function simplify(
  schedule: Schedule<unknown>,
  failure: ScheduleFailure,
  run: (s: Schedule<unknown>) => Promise<unknown>,
): Promise<{ schedule: Schedule<unknown>; failure: ScheduleFailure; steps: number }> {
  const kind = guarantee(failure)
  let best = schedule
  let bestFailure = failure
  let kept = 0
  const tryOne = async (candidate: Schedule<unknown>): Promise<boolean> => {
    try {
      await run(candidate)
      return false
    } catch (err) {
      if (!(err instanceof ScheduleFailure) || guarantee(err) !== kind) return false
      best = candidate
      bestFailure = err
      kept++
      return true
    }
  }
  for (let changed = true; changed; ) {
    changed = false
    for (let i = best.steps.length - 1; i >= 0; i--) {
      if (best.steps.length > 1 && (await tryOne({ ...best, steps: best.steps.filter((_, j) => j !== i) }))) changed = true
      const st = best.steps[i]
      if (st?.t === 'split') {
        // The split's writes without the partition, as plain steps.
        const plain: Step<unknown>[] = st.ops.map(([n, kind, k, v]) => (kind === 'set' ? { t: 'set', n, k, v } : { t: 'del', n, k }))
        if (await tryOne({ ...best, steps: [...best.steps.slice(0, i), ...plain, ...best.steps.slice(i + 1)] })) {
          changed = true
          continue
        }
        for (let k = st.ops.length - 1; k >= 0; k--) {
          const cur = best.steps[i]
          if (cur?.t !== 'split') break
          const ops = cur.ops.filter((_, m) => m !== k)
          if (await tryOne({ ...best, steps: best.steps.map((x, j) => (j === i ? { ...cur, ops } : x)) })) changed = true
        }
      }
    }
    for (const field of ['skew', 'persist'] as const) {
      const values = best[field] ?? []
      for (let i = 0; i < values.length; i++) {
        const now = best[field] ?? []
        if (now[i] === 0) continue
        if (await tryOne({ ...best, [field]: now.map((v, j) => (j === i ? 0 : v)) })) changed = true
      }
      // All zeros is the default: leave the field out of what is printed.
      if (best[field]?.every((v) => v === 0) === true) {
        const { [field]: _zeros, ...rest } = best
        best = rest
      }
    }
    for (const field of ['mtu', 'max_history', 'links', 'keep', 'seed'] as const) {
      if (best[field] === undefined) continue
      const { [field]: _gone, ...rest } = best
      if (await tryOne(rest as Schedule<unknown>)) changed = true
    }
  }
  return { schedule: best, failure: bestFailure, steps: kept }
}
