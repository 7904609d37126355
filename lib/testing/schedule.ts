/**
 * Schedules: what happens to an in-process cluster, step by step, as plain
 * JSON data (so that a failing one prints, and replays as printed), the
 * fast-check arbitraries that make them, and their readable form.
 */
import * as fc from 'fast-check'

/**
 * One step of a {@link Schedule}. Nodes are numbered from 0 (node `n0`,
 * `n1`, ...). A key (`k`) or counter (`c`) is its name, or an index into
 * the run's `keys` (`counters`). Values (`v`) are the user's, and must
 * survive JSON.
 */
export type Step<V = unknown> =
  /** Node `n` writes `v` to key `k` (`gossip.set`). */
  | { readonly t: 'set'; readonly n: number; readonly k: number | string; readonly v: V }
  /** Node `n` deletes key `k` (`gossip.delete`). */
  | { readonly t: 'del'; readonly n: number; readonly k: number | string }
  /** Node `n` adds 1 to its count of counter `c` (`counter.add`). */
  | { readonly t: 'add'; readonly n: number; readonly c: number | string }
  /**
   * One exchange started by node `a` with node `b` (nothing when their link
   * is down or absent). With `cut`, the connection dies after that many
   * messages crossed it, with what was in flight (a lost message).
   */
  | { readonly t: 'x'; readonly a: number; readonly b: number; readonly cut?: number }
  /** An exchange in which `a` asks twice, its second digest crossing the first's answer (duplicated messages). */
  | { readonly t: 'dup'; readonly a: number; readonly b: number }
  /** An exchange both ends start at once, their questions crossing (reordered messages). */
  | { readonly t: 'cross'; readonly a: number; readonly b: number }
  /** Cut every link between the nodes in bitmask `mask` and the rest. */
  | { readonly t: 'part'; readonly mask: number }
  /** Cut the one link between `a` and `b` (chains, and triangles with a side missing). */
  | { readonly t: 'down'; readonly a: number; readonly b: number }
  /** Bring the link between `a` and `b` up again (with a new connection). */
  | { readonly t: 'up'; readonly a: number; readonly b: number }
  /** Bring every link up again. */
  | { readonly t: 'heal' }
  /** `ms` of simulated time pass with no exchange (a pause: nobody hears from anybody). */
  | { readonly t: 'wait'; readonly ms: number }
  /** `ms` of simulated time pass while every live link keeps exchanging. */
  | { readonly t: 'run'; readonly ms: number }
  /**
   * A partition of `mask` from the rest while both sides write (`ops`: node,
   * `'set'` or `'del'`, key, value) and keep gossiping among themselves for
   * `ms`, then healed.
   */
  | { readonly t: 'split'; readonly mask: number; readonly ops: readonly (readonly [number, 'set' | 'del', number | string, V])[]; readonly ms: number }
  /** Node `n` restarts: `'clean'` (stopped), `'crash'` (its process died) or `'nothing'` (without any state). */
  | { readonly t: 'restart'; readonly n: number; readonly kind: 'clean' | 'crash' | 'nothing' }

/** The kinds of {@link Step}. */
export type StepKind = Step['t']

/**
 * What happens to a cluster: its nodes, their links and settings, and the
 * steps. Plain JSON (see {@link scheduleToJSON}); every field but `nodes` and
 * `steps` may be left out.
 */
export interface Schedule<V = unknown> {
  /** How many nodes (`n0` ... ). */
  readonly nodes: number
  /** The steps, in order. After the last one the cluster is healed and checked. */
  readonly steps: readonly Step<V>[]
  /** Pairs of nodes joined by a link. Default: every pair. */
  readonly links?: readonly (readonly [number, number])[]
  /** `config.mtu` of every node. Default: the config's. */
  readonly mtu?: number
  /** `config.max_history` of every node. Default: the config's. */
  readonly max_history?: number
  /** Each node's persistence, an index into the run's (0: snapshot, 1: store object, then yours). Default 0. */
  readonly persist?: readonly number[]
  /** Each node's clock skew, ms. Default 0. */
  readonly skew?: readonly number[]
  /** How each report of late writes is settled, in turn: true keeps them, false drops them. Default: keep. */
  readonly keep?: readonly boolean[]
  /** Seeds the nodes' tie-breaking randomness (`config.random`). Default 1. */
  readonly seed?: number
}

/**
 * A fast-check arbitrary of values, as a user's suite makes it: any copy
 * of fast-check's `Arbitrary<V>` fits (a project compiled as ES modules
 * holds fast-check's ESM declarations, this entry its CommonJS ones, and
 * TypeScript tells the two classes apart), so only what all have is named.
 */
export interface ValueArbitrary<V> {
  map<U>(mapper: (value: V) => U): unknown
}

/** This entry's fast-check's arbitrary of what the user gave (see ValueArbitrary). */
export function arbitraryOf<V>(values: ValueArbitrary<V>): fc.Arbitrary<V> {
  return values as unknown as fc.Arbitrary<V>
}

/** Options of {@link scheduleArbitrary}: the shape of the schedules it makes. */
export interface ScheduleOptions<V = unknown> {
  /** The values written. Default: integers 0 to 99. They must survive JSON. */
  values?: ValueArbitrary<V>
  /**
   * How many nodes. Default 3 to 5 (two, with `{ min: 2, max: 5 }`, met
   * failures of the core since fixed: docs/testing.md, "Failures of the
   * core the entry found").
   */
  nodes?: number | { min: number; max: number }
  /** How many steps. Default 1 to 40. */
  steps?: number | { min: number; max: number }
  /**
   * fast-check's size for the steps: its default (`'small'`) draws at most
   * about ten steps whatever `steps.max`; `'max'` draws across the whole
   * range (longer runs, slower to shrink).
   */
  size?: fc.SizeForArbitrary
  /** The keys written and deleted. Default `['x', 'y', 'z']`. */
  keys?: readonly string[]
  /** Counters (`counter.add`) written, none by default: their values are numbers, which your policy must take. */
  counters?: readonly string[]
  /**
   * Each step kind's weight (0 leaves it out). Defaults: set 6, del 3, add
   * 2 (with counters), x 8, part 1, down 2, up 1, heal 1, wait 2, run 2,
   * split 2, restart 1; dup and cross 0 (see {@link FULL}).
   */
  weights?: Partial<Record<StepKind, number>>
  /** `'complete'` (every pair linked), or `'random'` (a random connected graph, complete at times). Default `'complete'` (see {@link FULL}). */
  topology?: 'complete' | 'random'
  /** `config.mtu` range. Default 1 to 5. */
  mtu?: { min: number; max: number }
  /** Whether to vary `config.max_history` (1 to 20, or left to the config). Default false (see {@link FULL}). */
  maxHistory?: boolean
  /** Largest clock skew, ms either way. Default 600 000 (ten minutes). */
  skew?: number
  /** How many persistences nodes pick from, the first ones (see {@link Schedule.persist}). Default: all there are (2 and your `stores`); 1 for snapshots only. */
  persistences?: number
  /** `config.tombstone_grace` the schedule is run with, ms: pauses are drawn shorter and longer than it. Default 60 000. */
  grace?: number
}

/** The keys schedules write when none are given. */
export const DEFAULT_KEYS: readonly string[] = Object.freeze(['x', 'y', 'z'])

const WEIGHTS: Record<StepKind, number> = { set: 6, del: 3, add: 2, x: 8, dup: 0, cross: 0, part: 1, down: 2, up: 1, heal: 1, wait: 2, run: 2, split: 2, restart: 1 }

/**
 * Schedule options that turn on what the defaults leave out: two nodes,
 * repeated and crossing exchanges, random links and small `max_history`.
 * The core's failures found there are fixed (docs/testing.md, "Known
 * failures"); the defaults still leave these out.
 * Spread them into the options: `checkConvergence(config, { ...FULL, runs: 1000 })`.
 */
export const FULL: Readonly<Pick<ScheduleOptions, 'nodes' | 'topology' | 'maxHistory' | 'weights'>> = Object.freeze({
  nodes: Object.freeze({ min: 2, max: 5 }),
  topology: 'random',
  maxHistory: true,
  weights: Object.freeze({ dup: 1, cross: 1 }),
})

function range(r: number | { min: number; max: number } | undefined, min: number, max: number): { min: number; max: number } {
  if (r === undefined) return { min, max }
  if (typeof r === 'number') return { min: r, max: r }
  return r
}

/** The default value arbitrary: integers 0 to 99. */
export const smallIntegers: fc.Arbitrary<number> = fc.nat(99)

/**
 * The links of a random connected graph over `nodes` nodes: a random tree
 * plus up to `nodes` extra pairs; undefined (every pair) at times, and
 * whenever that is what came out.
 */
export function topologyArbitrary(nodes: number): fc.Arbitrary<[number, number][] | undefined> {
  return rawTopology(nodes).map((raw) => linksOf(raw, nodes))
}

// A topology as drawn: each node's parent (node i joins parents[i - 1] % i)
// and extra pairs; null for every pair. Shrinks towards every pair.
type RawTopology = { parents: number[]; extra: [number, number][] } | null

function rawTopology(nodes: number): fc.Arbitrary<RawTopology> {
  if (nodes < 3) return fc.constant(null)
  return fc.option(
    fc.record({
      parents: fc.array(fc.nat(nodes - 1), { minLength: nodes - 1, maxLength: nodes - 1 }),
      extra: fc.array(fc.tuple(fc.nat(nodes - 1), fc.nat(nodes - 1)), { maxLength: nodes }),
    }),
    { freq: 3 },
  )
}

function linksOf(raw: RawTopology, nodes: number): [number, number][] | undefined {
  if (raw === null || nodes < 3) return undefined
  const links: [number, number][] = []
  const add = (a: number, b: number): void => {
    const [x, y] = a < b ? [a, b] : [b, a]
    if (x !== y && !links.some(([p, q]) => p === x && q === y)) links.push([x, y])
  }
  // Node i joins a node before it: the graph is connected.
  for (let i = 1; i < nodes; i++) add((raw.parents[i - 1] ?? 0) % i, i)
  for (const [a, b] of raw.extra) add(a % nodes, b % nodes)
  return links.length === (nodes * (nodes - 1)) / 2 ? undefined : links.sort((p, q) => p[0] - q[0] || p[1] - q[1])
}

/**
 * An arbitrary of one step over `nodes` nodes. `links` (default: every
 * pair) are where exchanges happen.
 */
export function stepArbitrary<V = number>(nodes: number, options: ScheduleOptions<V> = {}, links?: readonly (readonly [number, number])[]): fc.Arbitrary<Step<V>> {
  const values = arbitraryOf(options.values ?? (smallIntegers as unknown as ValueArbitrary<V>))
  const keys = options.keys ?? DEFAULT_KEYS
  const counters = options.counters ?? []
  const grace = options.grace ?? 60_000
  const weights: Record<StepKind, number> = { ...WEIGHTS, ...options.weights }
  if (counters.length === 0) weights.add = 0
  if (nodes < 2) weights.x = weights.dup = weights.cross = weights.part = weights.down = weights.up = weights.split = 0
  const node = fc.nat(nodes - 1)
  const key = fc.constantFrom(...keys)
  const pairs: (readonly [number, number])[] = links !== undefined ? [...links] : []
  if (links === undefined) for (let a = 0; a < nodes; a++) for (let b = a + 1; b < nodes; b++) pairs.push([a, b])
  // A link, either way round.
  const pair = fc.tuple(fc.nat(Math.max(0, pairs.length - 1)), fc.boolean()).map(([i, flip]) => {
    const [a, b] = pairs[i] ?? [0, 1]
    return flip ? { a: b, b: a } : { a, b }
  })
  const short = fc.integer({ min: 1_000, max: Math.max(1_000, grace / 2) })
  const long = fc.integer({ min: grace, max: 3 * grace })
  // Times at the grace's edges, where collection starts.
  const edge = fc.constantFrom(grace / 4, grace / 2, grace - 1, grace, grace + 1, 1.5 * grace)
  const full = (1 << nodes) - 1
  const all: Record<StepKind, () => fc.Arbitrary<Step<V>>> = {
    set: () => fc.record({ t: fc.constant('set' as const), n: node, k: key, v: values }),
    del: () => fc.record({ t: fc.constant('del' as const), n: node, k: key }),
    add: () => fc.record({ t: fc.constant('add' as const), n: node, c: fc.constantFrom(...counters) }),
    x: () =>
      fc.tuple(pair, fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat(12) })).map(([p, cut]) => (cut === undefined ? { t: 'x' as const, ...p } : { t: 'x' as const, ...p, cut })),
    dup: () => pair.map((p) => ({ t: 'dup' as const, ...p })),
    cross: () => pair.map((p) => ({ t: 'cross' as const, ...p })),
    part: () => fc.record({ t: fc.constant('part' as const), mask: fc.integer({ min: 1, max: full - 1 }) }),
    down: () => pair.map((p) => ({ t: 'down' as const, ...p })),
    up: () => pair.map((p) => ({ t: 'up' as const, ...p })),
    heal: () => fc.constant({ t: 'heal' as const }),
    wait: () => fc.record({ t: fc.constant('wait' as const), ms: fc.oneof(fc.integer({ min: 1, max: 5_000 }), long, edge) }),
    run: () => fc.record({ t: fc.constant('run' as const), ms: fc.oneof(short, long, edge) }),
    split: () =>
      fc.record({
        t: fc.constant('split' as const),
        mask: fc.integer({ min: 1, max: full - 1 }),
        ops: fc.array(fc.tuple(node, fc.constantFrom('set' as const, 'del' as const), key, values), { maxLength: 8 }),
        ms: fc.oneof(short, long, edge),
      }),
    restart: () => fc.record({ t: fc.constant('restart' as const), n: node, kind: fc.constantFrom('clean' as const, 'crash' as const, 'nothing' as const) }),
  }
  const kinds = (Object.keys(all) as StepKind[]).filter((k) => weights[k] > 0)
  if (kinds.length === 0) throw new RangeError('stepArbitrary: every step kind has weight 0')
  return fc.oneof(...kinds.map((k) => ({ weight: weights[k], arbitrary: all[k]() })))
}

/**
 * An arbitrary of whole schedules: how many nodes, their links, mtu,
 * max_history, persistences and clock skews, the steps, and how late
 * writes are settled. Drawn for the most nodes, then cut down to the
 * number drawn (node indices modulo it), so that fast-check shrinks every
 * part on its own: towards fewer steps, fewer nodes, every pair linked,
 * the config's mtu and max_history, no skew.
 */
export function scheduleArbitrary<V = number>(options: ScheduleOptions<V> = {}): fc.Arbitrary<Schedule<V>> {
  const nodes = range(options.nodes, 3, 5)
  const steps = range(options.steps, 1, 40)
  const mtu = options.mtu ?? { min: 1, max: 5 }
  const skew = options.skew ?? 600_000
  const persistences = options.persistences ?? 2
  if (!Number.isInteger(nodes.min) || nodes.min < 1 || nodes.max > 30 || nodes.min > nodes.max) throw new RangeError('scheduleArbitrary: nodes must be 1 to 30')
  const most = nodes.max
  return fc
    .record({
      nodes: fc.integer(nodes),
      seed: fc.integer({ min: 1, max: 2_147_483_646 }),
      mtu: fc.option(fc.integer(mtu), { freq: 2 }),
      max_history: options.maxHistory === true ? fc.option(fc.integer({ min: 1, max: 20 }), { freq: 2 }) : fc.constant(null),
      topology: options.topology === 'random' ? rawTopology(most) : fc.constant(null),
      persist: fc.array(fc.nat(persistences - 1), { minLength: most, maxLength: most }),
      skew: fc.array(skew > 0 ? fc.oneof(fc.constant(0), fc.integer({ min: -skew, max: skew })) : fc.constant(0), { minLength: most, maxLength: most }),
      steps: fc.array(stepArbitrary(most, options), { minLength: steps.min, maxLength: steps.max, size: options.size }),
      keep: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
    })
    .map((raw) => {
      const n = raw.nodes
      const links = linksOf(raw.topology, n)
      const out: { -readonly [K in keyof Schedule<V>]: Schedule<V>[K] } = { nodes: n, seed: raw.seed, steps: [] }
      if (raw.mtu !== null) out.mtu = raw.mtu
      if (raw.max_history !== null) out.max_history = raw.max_history
      if (links !== undefined) out.links = links
      // Leave out what is all defaults, so that the printed form stays short.
      const persist = raw.persist.slice(0, n)
      const skew = raw.skew.slice(0, n)
      if (persist.some((p) => p !== 0)) out.persist = persist
      if (skew.some((k) => k !== 0)) out.skew = skew
      out.steps = raw.steps.map((st) => fit(st, n, links))
      out.keep = raw.keep
      return out
    })
}

// A step drawn for more nodes, over `n` nodes and `links`.
function fit<V>(st: Step<V>, n: number, links: readonly (readonly [number, number])[] | undefined): Step<V> {
  const full = (1 << n) - 1
  switch (st.t) {
    case 'set':
    case 'del':
    case 'add':
    case 'restart':
      return { ...st, n: st.n % n }
    case 'x':
    case 'dup':
    case 'cross':
    case 'down':
    case 'up': {
      let a = st.a % n
      let b = st.b % n
      if (a === b) b = (a + 1) % n
      // Between nodes that have no link: the link their numbers pick.
      if (links !== undefined && !links.some(([p, q]) => (p === a && q === b) || (p === b && q === a))) {
        const [p, q] = links[(st.a * 31 + st.b) % links.length]
        ;[a, b] = st.a <= st.b ? [p, q] : [q, p]
      }
      return { ...st, a, b }
    }
    case 'part':
      return { ...st, mask: st.mask & full }
    case 'split':
      return { ...st, mask: st.mask & full, ops: st.ops.map(([o, kind, k, v]) => [o % n, kind, k, v] as const) }
    default:
      return st
  }
}

/** The operations of a schedule: writes, deletes and counter adds, those of splits included. */
export function operationCount(schedule: Schedule<unknown>): number {
  let n = 0
  for (const s of schedule.steps) n += s.t === 'split' ? s.ops.length : s.t === 'set' || s.t === 'del' || s.t === 'add' ? 1 : 0
  return n
}

/** Names used to print a schedule: the run's keys, counters and persistences. */
export interface Names {
  keys?: readonly string[]
  counters?: readonly string[]
  persistences?: readonly string[]
}

function nameOf(k: number | string, names: readonly string[] | undefined, prefix: string): string {
  return typeof k === 'string' ? k : (names?.[k] ?? `${prefix}${k}`)
}

function duration(ms: number): string {
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)}s`
  return `${ms}ms`
}

function group(mask: number, nodes: number): string {
  const inside: string[] = []
  const outside: string[] = []
  for (let i = 0; i < nodes; i++) ((mask >> i) & 1 ? inside : outside).push(`n${i}`)
  return `{${inside.join(',')}} | {${outside.join(',')}}`
}

function value(v: unknown): string {
  return v === undefined ? 'undefined' : JSON.stringify(v)
}

/** One step, readable: `n1 set x=1`, `exchange n0→n2 cut after 3`, `restart n2 (nothing)`. */
export function describeStep(step: Step<unknown>, nodes: number, names: Names = {}): string {
  const key = (k: number | string): string => nameOf(k, names.keys ?? DEFAULT_KEYS, 'k')
  switch (step.t) {
    case 'set':
      return `n${step.n} set ${key(step.k)}=${value(step.v)}`
    case 'del':
      return `n${step.n} delete ${key(step.k)}`
    case 'add':
      return `n${step.n} add ${nameOf(step.c, names.counters, 'c')}`
    case 'x':
      return `exchange n${step.a}→n${step.b}${step.cut !== undefined && step.cut !== Infinity ? ` cut after ${step.cut}` : ''}`
    case 'dup':
      return `exchange n${step.a}→n${step.b} asked twice`
    case 'cross':
      return `exchange n${step.a}⇄n${step.b} crossed`
    case 'part':
      return `partition ${group(step.mask, nodes)}`
    case 'down':
      return `link n${step.a}-n${step.b} down`
    case 'up':
      return `link n${step.a}-n${step.b} up`
    case 'heal':
      return 'heal'
    case 'wait':
      return `pause ${duration(step.ms)}`
    case 'run':
      return `gossip ${duration(step.ms)}`
    case 'split': {
      const ops = step.ops.map(([n, kind, k, v]) => (kind === 'set' ? `n${n} set ${key(k)}=${value(v)}` : `n${n} delete ${key(k)}`))
      return `split ${group(step.mask, nodes)}${ops.length > 0 ? ` (${ops.join(', ')})` : ''} ${duration(step.ms)}, heal`
    }
    case 'restart':
      return `restart n${step.n} (${step.kind})`
  }
}

/**
 * A schedule, readable: its setup, then its steps joined by ` · `, as in
 * `3 nodes, mtu 2: n1 set x=1 · n2 delete x · split {n0} | {n1,n2} 60s, heal · restart n2 (nothing)`.
 */
export function describe(schedule: Schedule<unknown>, names: Names = {}): string {
  const s = schedule
  const setup: string[] = [`${s.nodes} node${s.nodes === 1 ? '' : 's'}`]
  if (s.links !== undefined) setup.push(`links ${s.links.map(([a, b]) => `n${a}-n${b}`).join(' ')}`)
  if (s.mtu !== undefined) setup.push(`mtu ${s.mtu}`)
  if (s.max_history !== undefined) setup.push(`max_history ${s.max_history}`)
  const stores = (s.persist ?? []).map((p, i) => (p === 0 ? '' : `n${i} on ${names.persistences?.[p] ?? (p === 1 ? 'store object' : `store ${p}`)}`)).filter((x) => x !== '')
  if (stores.length > 0) setup.push(stores.join(', '))
  const skews = (s.skew ?? []).map((k, i) => (k === 0 ? '' : `n${i} ${k > 0 ? '+' : '-'}${duration(Math.abs(k))}`)).filter((x) => x !== '')
  if (skews.length > 0) setup.push(`skew ${skews.join(', ')}`)
  const steps = s.steps.map((st) => describeStep(st, s.nodes, names))
  return `${setup.join(', ')}: ${steps.length === 0 ? '(no steps)' : steps.join(' · ')}`
}

/** A schedule as JSON text that {@link parseSchedule} (and so `replay`) reads back as is. */
export function scheduleToJSON(schedule: Schedule<unknown>): string {
  return JSON.stringify(schedule, (k, v) => (k === 'cut' && v === Infinity ? 'Infinity' : v))
}

/**
 * Read a schedule printed by {@link scheduleToJSON} (or written by hand).
 * @throws TypeError when the text is not a schedule.
 */
export function parseSchedule<V = unknown>(text: string): Schedule<V> {
  const s = JSON.parse(text, (k, v) => (k === 'cut' && v === 'Infinity' ? Infinity : v)) as Schedule<V>
  checkSchedule(s)
  return s
}

/**
 * Check a schedule's shape, so that a hand-written one fails with a reason.
 * @throws TypeError naming what is wrong.
 */
export function checkSchedule(s: Schedule<unknown>): void {
  const fail = (what: string): never => {
    throw new TypeError(`not a schedule: ${what}`)
  }
  if (s === null || typeof s !== 'object') fail('not an object')
  if (!Number.isInteger(s.nodes) || s.nodes < 1) fail('nodes must be a positive integer')
  if (!Array.isArray(s.steps)) fail('steps must be an array')
  const node = (n: unknown, at: number): void => {
    if (!Number.isInteger(n) || (n as number) < 0 || (n as number) >= s.nodes) fail(`step ${at + 1} names node ${String(n)} of ${s.nodes}`)
  }
  s.steps.forEach((st, i) => {
    switch (st?.t) {
      case 'set':
      case 'del':
      case 'add':
      case 'restart':
        node(st.n, i)
        break
      case 'x':
      case 'dup':
      case 'cross':
      case 'down':
      case 'up':
        node(st.a, i)
        node(st.b, i)
        break
      case 'split':
        for (const [n] of st.ops) node(n, i)
        break
      case 'part':
      case 'heal':
      case 'wait':
      case 'run':
        break
      default:
        fail(`step ${i + 1} is of no known kind: ${JSON.stringify(st)}`)
    }
  })
}
