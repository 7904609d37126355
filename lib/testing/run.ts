/**
 * Running a {@link Schedule} over an in-process {@link Cluster}, checked
 * against the reference {@link Model} after every step, after healing,
 * after the grace has passed again, and after restarting every node.
 */
import type { InvalidCode } from '../codes'
import * as counter from '../counter'
import type { Gossip } from '../gossip'
import { compareValues, lww_vs_clock, lww_vs_current_vers, sort as defaultSort, strictly_order_values } from '../resolution'
import type { Comparator, Config, Update } from '../types'
import { Cluster, memory, storeObject, type Persistence } from './cluster'
import { Model } from './model'
import { DEFAULT_KEYS, checkSchedule, describeStep, parseSchedule, type Names, type Schedule, type Step } from './schedule'

/** Options of {@link runSchedule} (and of `checkConvergence`). */
export interface RunOptions {
  /** The keys a step's index names (`k: 0` is the first). Default `['x', 'y', 'z']`. */
  keys?: readonly string[]
  /** The counters a step's index names. Default none. */
  counters?: readonly string[]
  /**
   * The order your policy keeps the greatest of, over updates (tombstones
   * included: value null, `deleted: true`), positive when the first is
   * greater. With it every key must hold the greatest of every node's
   * latest operation on it, and no node may show a value a delete it took
   * beats. Default: the shipped policies' own order when `config.resolve`
   * is one of them ({@link orderOf}), else none (agreement only). `null`
   * turns the check off.
   */
  order?: Comparator | null
  /** `config.tombstone_grace`, ms of simulated time. Default: the config's, else 60 000. */
  grace?: number
  /**
   * Persistences of your own that nodes may run on, each made afresh for
   * every run: `schedule.persist` 2 is the first of these (0 is a snapshot
   * in memory, 1 a bare store object). See {@link storeObject} for a store
   * object of yours.
   */
  stores?: readonly (() => Persistence)[]
  /**
   * When to check the paper's invariant: after every step and every check
   * (`'always'`, the default), at the checks after healing only
   * (`'healed'`), or `'never'`.
   */
  invariant?: 'always' | 'healed' | 'never'
  /** Whether to restart every node at the end (each on its persistence, in turn clean, crash, from nothing) and check again. Default true. */
  restartAll?: boolean
  /** Called with every node the run starts, restarts included (to listen to its events). */
  onNode?: (node: Gossip) => void
  /** Called after every step and every check with what happened and every node's mappings (debugging). */
  trace?: (line: string) => void
  /** @internal Whether to skip a restart (exploration). */
  skipRestart?: (cluster: Cluster, id: string, kind: 'clean' | 'crash' | 'nothing') => boolean
}

/** What a run did, in all. */
export interface RunReport {
  /** Updates moved over links. */
  readonly moved: number
  /** Reports of late writes settled. */
  readonly late: number
  /** Markers (deletes and withdrawals) collected. */
  readonly collected: number
}

/** A schedule that broke a guarantee: which, when, and the schedule. */
export class ScheduleFailure extends Error {
  constructor(
    /** The schedule that failed. */
    readonly schedule: Schedule<unknown>,
    /** When, and which guarantee: `after step 3 (n1 set x=1): a deleted value is back`, `after healing: nodes disagree`. */
    readonly when: string,
    /** What was wrong, one line each. */
    readonly problems: readonly string[],
    /** The names the run gave keys, counters and persistences (to print the schedule). */
    readonly names?: Names,
  ) {
    super(`${when}: ${problems.slice(0, 8).join('\n  ')}`)
    this.name = 'ScheduleFailure'
  }
}

/**
 * The order a shipped policy keeps the greatest of: (version, source id)
 * for `lww_vs_current_vers`, `config.sort` for `lww_vs_clock`, the value
 * then `config.sort` for `strictly_order_values`; null for any other.
 */
export function orderOf(config: Config): Comparator | null {
  const sort = config.sort ?? defaultSort
  if (config.resolve === lww_vs_current_vers) return defaultSort
  if (config.resolve === lww_vs_clock) return sort
  if (config.resolve === strictly_order_values) return (a, b) => compareValues(a.value, b.value) || sort(a, b)
  return null
}

/** A seeded generator in [0, 1) (Park and Miller's). */
export function lehmer(seed: number): () => number {
  let x = Math.abs(Math.trunc(seed)) % 2147483647 || 1
  return () => {
    x = (x * 16807) % 2147483647
    return (x - 1) / 2147483646
  }
}

let running = false

/**
 * Run `schedule` over in-process nodes built from `config` (one object, or
 * one per node id), and check, throwing a {@link ScheduleFailure} when one
 * fails:
 * - after every step: the paper's invariant (no node's max of a source
 *   passes a mapping of that source it lacks) and, with an order, that no
 *   node shows a value a delete it took beats;
 * - after healing, after the grace has passed again, and after restarting
 *   every node: every node holds the same `state` and `sources(key)`,
 *   counters total the same, every stream is in sync, and, with an order,
 *   each key holds the greatest of every node's latest operation on it.
 *
 * Time is simulated (`Clock.now` is replaced while it runs): runs must not
 * overlap within one process.
 */
export async function runSchedule<V>(config: Config | ((id: string) => Config), schedule: Schedule<V>, options: RunOptions = {}): Promise<RunReport> {
  checkSchedule(schedule)
  if (running) throw new Error('runSchedule: another run is under way in this process (time is simulated for one at a time)')
  running = true
  try {
    return await run(config, schedule, options)
  } finally {
    running = false
  }
}

/** {@link runSchedule} of a schedule as printed (its JSON text), or as an object. */
export function replay<V>(config: Config | ((id: string) => Config), schedule: string | Schedule<V>, options: RunOptions = {}): Promise<RunReport> {
  return runSchedule(config, typeof schedule === 'string' ? parseSchedule<V>(schedule) : schedule, options)
}

async function run<V>(config: Config | ((id: string) => Config), s: Schedule<V>, options: RunOptions): Promise<RunReport> {
  const ids = Array.from({ length: s.nodes }, (_, i) => `n${i}`)
  const base = typeof config === 'function' ? config : () => config
  const first = base(ids[0])
  const grace = options.grace ?? first.tombstone_grace ?? 60_000
  const order = options.order !== undefined ? options.order : orderOf(first)
  const keys = options.keys ?? DEFAULT_KEYS
  const counters = options.counters ?? []
  const trace = options.trace
  const invariant = options.invariant ?? 'always'
  const kinds: Persistence[] = [memory, storeObject(), ...(options.stores ?? []).map((make) => make())]
  const names = { keys, counters, persistences: kinds.map((k) => k.name) }
  const keyOf = (k: number | string): string => (typeof k === 'string' ? k : (keys[k] ?? `k${k}`))
  const counterOf = (c: number | string): string => (typeof c === 'string' ? c : (counters[c] ?? `c${c}`))
  // Each node's tie-breaking randomness, seeded: a schedule replays exactly.
  const randoms = new Map(ids.map((id, i) => [id, lehmer((s.seed ?? 1) + i)]))
  const configOf = (id: string): Config => {
    const c: Config = { ...base(id), tombstone_grace: grace, random: randoms.get(id) }
    if (s.mtu !== undefined) c.mtu = s.mtu
    if (s.max_history !== undefined) c.max_history = s.max_history
    return c
  }
  const persistOf = (i: number): Persistence => {
    const p = kinds[s.persist?.[i] ?? 0]
    if (p === undefined) throw new TypeError(`not a schedule: node n${i} runs on persistence ${s.persist?.[i]}, of ${kinds.length}`)
    return p
  }
  const cluster = await Cluster.start({
    ids,
    config: configOf,
    skew: (id) => s.skew?.[ids.indexOf(id)] ?? 0,
    persistence: (id) => persistOf(ids.indexOf(id)),
    links: s.links?.map(([a, b]) => [ids[a], ids[b]] as const),
  })
  const model = new Model(cluster, { order })
  const keep = s.keep !== undefined && s.keep.length > 0 ? s.keep : [true]
  let choices = 0
  let collected = 0
  const late = new Set<string>()
  // What resolve, a store or a listener threw: the node catches it and
  // reports the update invalid (on itself, or on the stream it came by).
  const threw: string[] = []
  const caught = (id: string, reason: string, code: InvalidCode): void => {
    if (code === 'node_error') threw.push(`${id}: ${reason}`)
  }
  cluster.onNode((g) => {
    g.on('invalid', (_u: unknown, reason: string, code: InvalidCode) => caught(g.id, reason, code))
    g.on('late', () => late.add(g.id))
    g.history.on('forget', () => collected++)
    options.onNode?.(g)
  })
  // The application's choice, as the schedule says, for every node told of late writes.
  const settle = (): void => {
    for (const id of late) {
      const choice = keep[choices++ % keep.length] ? 'keep' : 'drop'
      // (A drop withdraws without a delete, and so does a keep of a value a
      // newer write held there beats: the model is told.)
      model.dropping = true
      try {
        cluster.node(id).settleLate(choice)
      } finally {
        model.dropping = false
      }
    }
    late.clear()
  }
  const fail = (when: string, bad: string[]): void => {
    if (bad.length > 0) throw new ScheduleFailure(s, when, bad, names)
  }
  const refused = (when: string): void => {
    for (const [id, reason, code] of cluster.invalid.splice(0)) caught(id, reason, code)
    fail(`${when}: a node refused an update`, threw)
  }
  const everyStep = (when: string): void => {
    refused(when)
    fail(`${when}: a deleted value is back`, model.resurrections())
    fail(`${when}: a write withdrawn that no delete beat`, model.withdrawals())
    if (invariant === 'always') fail(`${when}: the paper's invariant is broken`, model.invariant())
  }
  // Time passes while the links that are up keep exchanging.
  const gossipFor = async (ms: number, when: string): Promise<void> => {
    for (let t = 0; t < ms; t += grace / 4) {
      cluster.advance(Math.min(grace / 4, ms - t))
      await cluster.round()
      settle()
      everyStep(`${when}, ${t} ms in`)
    }
  }
  const id = (n: number): string => ids[n % s.nodes]
  const mask = (m: number): Set<string> => new Set(ids.filter((_, i) => (m >> i) & 1))
  const write = (n: number, kind: 'set' | 'del', k: number | string, v: unknown): void => {
    if (kind === 'set') cluster.node(id(n)).set(keyOf(k), v)
    else cluster.node(id(n)).delete(keyOf(k))
  }
  const restart = async (n: string, kind: 'clean' | 'crash' | 'nothing'): Promise<void> => {
    const p = cluster.persistenceOf(n)
    model.restarting(n, kind === 'nothing' ? 'none' : p.keeps === 'view' ? 'view' : 'everything')
    await cluster.restart(n, kind)
  }
  const check = async (when: string): Promise<void> => {
    phase = when === 'after healing' ? 'while healing' : `while healing ${when}`
    cluster.heal()
    await quiet(cluster, settle, grace)
    trace?.(`${when}:\n${dump(cluster)}`)
    refused(when)
    fail(`${when}: a deleted value is back`, model.resurrections())
    fail(`${when}: a write withdrawn that no delete beat`, model.withdrawals())
    fail(`${when}: a write of a node's past withdrawn and not reported late`, model.unreported())
    fail(`${when}: nodes disagree${order !== null ? ' or miss the greatest write' : ''}`, model.disagreements())
    for (const c of counters) {
      const totals = [...cluster.nodes.values()].map((g) => counter.total(g, c))
      if (!totals.every((t) => t === totals[0])) fail(`${when}: counters disagree`, [`${c} totals ${totals.join(', ')}`])
    }
    fail(`${when}: streams not in sync`, cluster.unsynced())
    if (invariant !== 'never') fail(`${when}: the paper's invariant is broken`, model.invariant(true))
  }
  let phase = 'before the first step'
  try {
    for (const [i, st] of (s.steps as Step<V>[]).entries()) {
      const step = `step ${i + 1} (${describeStep(st, s.nodes, names)})`
      const when = `after ${step}`
      phase = `during ${step}`
      switch (st.t) {
        case 'set':
          write(st.n, 'set', st.k, st.v)
          break
        case 'del':
          write(st.n, 'del', st.k, null)
          break
        case 'add':
          counter.add(cluster.node(id(st.n)), counterOf(st.c))
          break
        case 'x':
          if (st.a !== st.b) await cluster.exchange(id(st.a), id(st.b), st.cut ?? Infinity)
          break
        case 'dup':
          if (st.a !== st.b) await cluster.exchange(id(st.a), id(st.b), Infinity, 'twice')
          break
        case 'cross':
          if (st.a !== st.b) await cluster.exchange(id(st.a), id(st.b), Infinity, 'crossed')
          break
        case 'part':
          cluster.partition(mask(st.mask))
          break
        case 'down':
        case 'up': {
          const l = st.a !== st.b ? cluster.linkOrNull(id(st.a), id(st.b)) : null
          if (l !== null) cluster[st.t](l)
          break
        }
        case 'heal':
          cluster.heal()
          break
        case 'wait':
          cluster.advance(st.ms)
          break
        case 'run':
          await gossipFor(st.ms, when)
          break
        case 'split':
          cluster.partition(mask(st.mask))
          for (const [n, kind, k, v] of st.ops) write(n, kind, k, v)
          await gossipFor(st.ms, when)
          cluster.heal()
          break
        case 'restart': {
          const n = id(st.n)
          if (options.skipRestart?.(cluster, n, st.kind) === true) break
          await restart(n, st.kind)
          break
        }
      }
      settle()
      if (trace !== undefined) trace(`${when}:\n${dump(cluster)}`)
      everyStep(when)
    }
    await check('after healing')
    // The grace passes again, with exchanges: everything collectable goes.
    phase = 'while the grace passed again'
    for (let i = 0; i < 4; i++) {
      cluster.advance(grace / 2)
      await cluster.round()
      settle()
    }
    await check('after the grace')
    if (options.restartAll === false) return { moved: cluster.updatesMoved, late: choices, collected }
    phase = 'while restarting every node'
    for (let i = 0; i < ids.length; i++) {
      const kind = (['clean', 'crash', 'nothing'] as const)[((s.persist?.[i] ?? 0) + i) % 3]
      await restart(ids[i], kind)
    }
    await check('after restarting every node')
    return { moved: cluster.updatesMoved, late: choices, collected }
  } catch (err) {
    if (err instanceof ScheduleFailure) throw err
    // resolve, a store or the library threw: a failure of the schedule too.
    const e = err instanceof Error ? err : new Error(String(err))
    const failure = new ScheduleFailure(s, phase, [`threw ${e.name}: ${e.message}`], names)
    failure.stack = `${failure.stack ?? ''}\ncaused by ${e.stack ?? String(e)}`
    throw failure
  } finally {
    for (const g of cluster.nodes.values()) g.destroy()
    for (const p of kinds) {
      for (const n of ids) await p.wipe(n).catch(() => undefined)
      await p.dispose?.().catch(() => undefined)
    }
    cluster.restoreClock()
  }
}

/** Every node's mappings, one line each (what a trace prints at a check). */
export function dump(cluster: Cluster): string {
  const lines: string[] = []
  for (const [id, g] of cluster.nodes) {
    const maxes = [...g.history.sources.values()].map((l) => `${l.id}:${Number.isFinite(l.max) ? l.max % 100000 : l.max}`).join(' ')
    const maps = [...g.history.mappings()]
      .map((u: Update) => `${u.key}@${u.source_id}:${u.version % 100000}${u.deleted === true ? 'D' : u.withdrawn === true ? 'W' : ''}`)
      .sort()
      .join(' ')
    lines.push(`  ${id} | max ${maxes} | ${maps}`)
  }
  return lines.join('\n')
}

// Rounds until two in a row move nothing but digests, and every stream
// says 'sync' (digests in parts take a round per part to say it), or ten
// calm rounds pass; late writes settled between rounds.
async function quiet(cluster: Cluster, settle: () => void, grace: number): Promise<void> {
  let calm = 0
  for (let i = 0; i < 400 && (calm < 2 || (calm < 10 && cluster.unsynced().length > 0)); i++) {
    // A refetch no peer can serve ends after a grace (docs/deletes.md,
    // rule 6): time passes faster while one waits, as it would.
    const waiting = [...cluster.nodes.values()].some((g) => g.deletes.refetching)
    cluster.advance(waiting ? grace / 4 : 10)
    const before = cluster.updatesMoved
    await cluster.round()
    settle()
    calm = cluster.updatesMoved === before && !waiting ? calm + 1 : 0
  }
}

