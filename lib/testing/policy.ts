/**
 * `checkPolicy`: the quick check of a resolution policy on its own, over
 * single nodes fed the same updates in different orders: order
 * independence, idempotence under duplicates, no side effects.
 */
import * as fc from 'fast-check'
import { Gossip } from '../gossip'
import type { Comparator, Resolve, Update } from '../types'
import { arbitraryOf, type ValueArbitrary } from './schedule'

/** Options of {@link checkPolicy}. */
export interface PolicyOptions {
  /** `config.sort` of the nodes (what `gossip.sort` gives your policy). Default `base.sort`. */
  sort?: Comparator
  /** Whether deletes (tombstones: value null, `deleted: true`) are among the updates. Default true. */
  deletes?: boolean
  /** The keys. Default `['x', 'y']`. */
  keys?: readonly string[]
  /** The sources. Default `['a', 'b', 'c']`. */
  sources?: readonly string[]
  /** Most updates in one case. Default 10. */
  maxUpdates?: number
  /** How many random cases. Default 100. */
  runs?: number
  /** fast-check's seed. Default: random. */
  seed?: number
  /** fast-check's path (with `seed`), to go straight to a reported counterexample. */
  path?: string
}

/** One update a case delivers, with where it goes in each order. */
export interface Delivery<V = unknown> {
  readonly key: string
  /** Null for a delete. */
  readonly value: V | null
  readonly source_id: string
  readonly version: number
  readonly deleted?: true
  /** Rank in the first order (ties: as listed). */
  readonly first: number
  /** Rank in the second order. */
  readonly second: number
  /** Delivered again that many more times (0 to 2) in the order with duplicates. */
  readonly dup: number
}

/** A case: updates (one per source and version), delivered in two orders. */
export interface PolicyCase<V = unknown> {
  readonly updates: readonly Delivery<V>[]
}

/** What a passing {@link checkPolicy} ran. */
export interface PolicyReport {
  readonly runs: number
  readonly seed: number
}

type Property = 'no side effects' | 'idempotence under duplicates' | 'order independence' | 'resolve threw'

interface Finding {
  readonly property: Property
  readonly lines: readonly string[]
}

/** A policy that fails a property: which, on what case (shrunk), and how to find it again. */
export class PolicyError extends Error {
  constructor(
    /** The property that failed. */
    readonly property: Property,
    /** The shrunk case. */
    readonly counterexample: PolicyCase<unknown>,
    /** fast-check's seed. */
    readonly seed: number,
    /** fast-check's path to the counterexample. */
    readonly path: string,
    /** Cases run until the first failure. */
    readonly runs: number,
    /** Shrinks from the first failure to this case. */
    readonly shrinks: number,
    lines: readonly string[],
  ) {
    super(
      [
        `checkPolicy failed: ${property}`,
        ...lines.map((l) => `  ${l}`),
        `(${counterexample.updates.length} update${counterexample.updates.length === 1 ? '' : 's'}; found after ${runs} run${runs === 1 ? '' : 's'}, shrunk ${shrinks} times; seed ${seed}, path "${path}")`,
      ].join('\n'),
    )
    this.name = 'PolicyError'
  }
}

function show(u: { key: string; value: unknown; source_id: string; version: number; deleted?: true }): string {
  return u.deleted === true ? `delete ${u.key} by ${u.source_id}@${u.version}` : `${u.key}=${JSON.stringify(u.value)} by ${u.source_id}@${u.version}`
}

function tag(u: { source_id: string; version: number }): string {
  return `${u.source_id}@${u.version}`
}

/** The update a delivery carries, as a fresh object. */
function updateOf<V>(d: Delivery<V>): Update {
  const u = { key: d.key, value: d.value, source_id: d.source_id, version: d.version }
  return d.deleted === true ? { ...u, value: null, deleted: true } : u
}

// A node's view: its state and every key's sources, comparable.
function viewOf(g: Gossip, keys: readonly string[]): string {
  const state = Object.keys(g.state)
    .sort()
    .map((k) => {
      const u = g.state[k]
      return `${k}=${JSON.stringify(u.value)} by ${tag(u)}`
    })
  const sources = keys.map((k) => `sources(${k}): ${g.sources(k).map(tag).join(', ') || 'none'}`)
  if (keys.length === 0) return state.length === 0 ? 'nothing' : state.join(', ')
  return `${state.length === 0 ? 'nothing' : state.join(', ')}; ${sources.join('; ')}`
}

function rankedBy<V>(updates: readonly Delivery<V>[], rank: (d: Delivery<V>) => number): Delivery<V>[] {
  return updates
    .map((d, i) => [d, i] as const)
    .sort((x, y) => rank(x[0]) - rank(y[0]) || x[1] - y[1])
    .map(([d]) => d)
}

function judge<V>(resolve: Resolve, c: PolicyCase<V>, options: PolicyOptions): Finding | null {
  const keys = [...new Set(c.updates.map((d) => d.key))].sort()
  const first = rankedBy(c.updates, (d) => d.first)
  const second = rankedBy(c.updates, (d) => d.second)
  let effect: string | null = null
  // Every call made twice: the answers must agree, the arguments stay as they were.
  const twice: Resolve = (gossip, update) => {
    const current = gossip.get(update.key)
    const before = JSON.stringify([update, current])
    const a = resolve(gossip, update)
    const b = resolve(gossip, update)
    const after = JSON.stringify([update, gossip.get(update.key)])
    if (effect === null && a !== b) effect = `resolve answered ${String(a)}, then ${String(b)}, asked twice whether ${show(update)} replaces ${current.version === -Infinity ? 'nothing' : show(current as Update)}`
    if (effect === null && before !== after) effect = `resolve changed its arguments: ${before} became ${after}`
    return a
  }
  const feed = (order: readonly Delivery<V>[], policy: Resolve, withDuplicates: boolean): string => {
    const g = new Gossip('node', options.sort !== undefined ? { resolve: policy, sort: options.sort } : { resolve: policy })
    // The node catches what resolve throws and reports the update invalid.
    let threw: string | null = null
    g.on('invalid', (_chunk: unknown, reason: unknown) => {
      if (threw === null) threw = String(reason)
    })
    try {
      for (const d of order) {
        g.write(updateOf(d))
        if (withDuplicates && d.dup > 0) g.write(updateOf(d))
      }
      if (withDuplicates) for (const d of second) if (d.dup > 1) g.write(updateOf(d))
      if (threw !== null) throw new Error(threw)
      return viewOf(g, keys)
    } finally {
      g.destroy()
    }
  }
  const orderText = (order: readonly Delivery<V>[]): string => order.map(tag).join(', ')
  const listed = `updates: ${first.map(show).join(' · ')}`
  try {
    const plain = feed(first, resolve, false)
    const checked = feed(first, twice, false)
    if (effect !== null || checked !== plain) {
      return { property: 'no side effects', lines: [listed, effect ?? `calling resolve again changed the outcome: ${checked}, not ${plain}`] }
    }
    const duplicated = feed(first, resolve, true)
    if (duplicated !== plain) {
      return {
        property: 'idempotence under duplicates',
        lines: [listed, `delivered ${orderText(first)}: ${plain}`, `with ${c.updates.filter((d) => d.dup > 0).map(tag).join(', ')} delivered again: ${duplicated}`],
      }
    }
    const other = feed(second, resolve, false)
    if (other !== plain) {
      return { property: 'order independence', lines: [listed, `delivered ${orderText(first)}: ${plain}`, `delivered ${orderText(second)}: ${other}`] }
    }
  } catch (err) {
    return { property: 'resolve threw', lines: [listed, err instanceof Error ? err.message : String(err)] }
  }
  return null
}

/** The arbitrary of {@link checkPolicy}'s cases. */
export function policyCaseArbitrary<V>(values: ValueArbitrary<V>, options: PolicyOptions = {}): fc.Arbitrary<PolicyCase<V>> {
  const keys = options.keys ?? ['x', 'y']
  const sources = options.sources ?? ['a', 'b', 'c']
  const deletes = options.deletes ?? true
  const delivery = fc.record({
    key: fc.constantFrom(...keys),
    value: arbitraryOf(values),
    source_id: fc.constantFrom(...sources),
    version: fc.integer({ min: 1, max: 20 }),
    // One in five a delete; shrinks towards a value.
    deleted: deletes ? fc.nat(4).map((n) => n === 4) : fc.constant(false),
    first: fc.nat(20),
    second: fc.nat(20),
    dup: fc.nat(2),
  })
  return fc
    .uniqueArray(delivery, { selector: (d) => `${d.source_id}@${d.version}`, minLength: 1, maxLength: options.maxUpdates ?? 10 })
    .map((ds) => ({
      updates: ds.map(({ deleted, value, ...d }): Delivery<V> => (deleted ? { ...d, value: null, deleted: true } : { ...d, value })),
    }))
}

/**
 * The quick check of a resolution policy on its own. Nodes are fed the
 * same random updates (values from `values`, deletes among them) in two
 * random orders, once more with duplicates, and once with every call to
 * `resolve` made twice; it then checks, in this order:
 * - no side effects: asked twice, `resolve` answers alike and leaves its
 *   arguments as they were, and calling it again changes nothing;
 * - idempotence under duplicates: updates delivered again change nothing;
 * - order independence: both orders leave the same `state` and
 *   `sources(key)`.
 *
 * A policy that passes still needs {@link checkConvergence}: deletes,
 * restarts and partial exchanges meet it there.
 *
 * @throws {@link PolicyError} naming the property that failed, with a
 *   shrunk case (its updates and both orders) and the seed.
 */
export function checkPolicy<V>(resolve: Resolve, values: ValueArbitrary<V>, options: PolicyOptions = {}): PolicyReport {
  if (typeof resolve !== 'function') throw new TypeError('checkPolicy: resolve must be a function (gossip, update) => boolean')
  const property = fc.property(policyCaseArbitrary(values, options), (c) => judge(resolve, c, options) === null)
  const details = fc.check(property, { numRuns: options.runs ?? 100, seed: options.seed, path: options.path })
  if (!details.failed) return { runs: details.numRuns, seed: details.seed }
  let c = (details.counterexample as [PolicyCase<V>] | null)?.[0] ?? { updates: [] }
  let finding = judge(resolve, c, options) ?? { property: 'no side effects' as const, lines: ['the case passed when run again: resolve answers differently from call to call'] }
  // Simplify what fast-check's shrinking left: updates removed one at a
  // time, then ranks and repeats reset, each kept if the same property fails.
  let shrinks = details.numShrinks
  const attempt = (candidate: PolicyCase<V>): boolean => {
    const f = judge(resolve, candidate, options)
    if (f === null || f.property !== finding.property) return false
    c = candidate
    finding = f
    shrinks++
    return true
  }
  for (let changed = true; changed; ) {
    changed = false
    for (let i = c.updates.length - 1; i >= 0; i--) if (c.updates.length > 1 && attempt({ updates: c.updates.filter((_, j) => j !== i) })) changed = true
    for (const field of ['dup', 'second', 'first'] as const) {
      for (let i = 0; i < c.updates.length; i++) {
        if (c.updates[i][field] === 0) continue
        if (attempt({ updates: c.updates.map((d, j) => (j === i ? { ...d, [field]: 0 } : d)) })) changed = true
      }
    }
  }
  throw new PolicyError(finding.property, c, details.seed, details.counterexamplePath ?? '', details.numRuns, shrinks, finding.lines)
}
