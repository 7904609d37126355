/**
 * A grow-only counter summed over sources (the G-Counter of Shapiro et al.),
 * built on what the node holds of every source: each node writes its own
 * count of a key, only ever upwards, and the counter's value is the sum of
 * every source's current count. Every source's newest mapping reaches every
 * node (the paper's mu), so every node converges to the same total whatever
 * `resolve` keeps in `state`.
 *
 * ```ts
 * counter.add(gossip, 'visits')       // this node's count of 'visits' + 1
 * counter.total(gossip, 'visits')     // the sum over every source
 * ```
 */
import type { Update } from './types'

/** What the counter needs of a node: `Gossip` has it. */
export interface CounterNode {
  readonly id: string
  sources(key: string): Update[]
  set(key: string, value: unknown): boolean
}

// A source's count as held: a non-negative safe integer, else nothing.
function countOf(u: Update | undefined): number {
  const v = u?.value
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0
}

/** This node's own count of `key`. */
export function own(node: CounterNode, key: string): number {
  return countOf(node.sources(key).find((u) => u.source_id === node.id))
}

/**
 * Add `by` (a positive safe integer, default 1) to this node's count of
 * `key`. Returns what `set` returns.
 * @throws RangeError for an increment that is not a positive safe integer,
 *   or a count that would pass `Number.MAX_SAFE_INTEGER`.
 */
export function add(node: CounterNode, key: string, by = 1): boolean {
  if (!(Number.isSafeInteger(by) && by > 0)) throw new RangeError('counter.add: by must be a positive safe integer')
  const next = own(node, key) + by
  if (!Number.isSafeInteger(next)) throw new RangeError(`counter.add: the count of ${key} would pass 2^53 - 1`)
  return node.set(key, next)
}

/**
 * The counter's value: the sum of every source's current count of `key`
 * (a value that is not a non-negative safe integer counts as 0).
 */
export function total(node: CounterNode, key: string): number {
  let sum = 0
  for (const u of node.sources(key)) sum += countOf(u)
  return sum
}
