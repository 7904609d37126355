/**
 * Sample resolution policies: `config.resolve(gossip, update)` returns true
 * when `update` should replace the node's current mapping of its key.
 *
 * Choosing one is the most consequential decision a user of this library
 * makes. Each policy here orders all updates of a key totally and keeps the
 * greatest, so every node that has seen the same updates, in any order and
 * with any repetition, holds the same state. A policy of your own converges
 * if, and only if, it does the same.
 */
import type { Comparator, Missing, ResolutionContext, Update } from './types'

/**
 * The default order over updates: by version (the Lamport clock), ties
 * broken by `source_id`. A strict total order, because one source never
 * issues a version twice.
 */
export const sort: Comparator = (a, b) => {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1
  if (a.source_id === b.source_id) return 0
  return a.source_id < b.source_id ? -1 : 1
}

function isMissing(current: Update | Missing): current is Missing {
  return current.version === -Infinity
}

/**
 * Last writer wins, by (version, source_id) against the key's current
 * holder. Use it for registers where the latest write should stand:
 * configuration, membership records, presence. Concurrent writes (neither
 * saw the other) are settled by source id, arbitrarily but everywhere alike.
 */
export function lww_vs_current_vers(gossip: ResolutionContext, update: Update): boolean {
  const current = gossip.get(update.key)
  if (isMissing(current)) return true
  const c = current as Update
  if (update.version !== c.version) return update.version > c.version
  return update.source_id > c.source_id
}

/**
 * Last writer wins, where "last" is judged by the node's configured
 * `config.sort` (the original compared against the node's clock through the
 * same function). Use it when "later" means something other than the
 * default (version, source_id), for example a sort that prefers a primary
 * site's writes on ties. Converges as long as `sort` is a strict total order.
 */
export function lww_vs_clock(gossip: ResolutionContext, update: Update): boolean {
  const current = gossip.get(update.key)
  if (isMissing(current)) return true
  return gossip.sort(current as Update, update) < 0
}

const RANK: Record<string, number> = {
  undefined: 0,
  boolean: 1,
  number: 2,
  bigint: 2,
  string: 3,
  object: 4,
  symbol: 5,
  function: 5,
}

/**
 * A total order over values: null < booleans < numbers < strings < other
 * objects (compared by their JSON text). NaN sorts below every number.
 */
export function compareValues(a: unknown, b: unknown): number {
  const ta = a === null ? 0 : RANK[typeof a]
  const tb = b === null ? 0 : RANK[typeof b]
  if (ta !== tb) return ta - tb
  if (ta === 2) {
    const na = Number.isNaN(a)
    const nb = Number.isNaN(b)
    if (na || nb) return na === nb ? 0 : na ? -1 : 1
  }
  if (ta === 4 || ta === 5) {
    a = String(JSON.stringify(a))
    b = String(JSON.stringify(b))
  }
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0
}

/**
 * The greatest value wins, whoever wrote it and whenever: a grow-only
 * register. Use it for high-water marks, monotonic counters per key, "the
 * latest release seen". Equal values are settled by `config.sort`, so
 * the mapping's version converges too. Lower values written locally are
 * refused, as they would be everywhere else.
 */
export function strictly_order_values(gossip: ResolutionContext, update: Update): boolean {
  const current = gossip.get(update.key)
  if (isMissing(current)) return true
  const c = current as Update
  const order = compareValues(c.value, update.value)
  if (order !== 0) return order < 0
  return gossip.sort(c, update) < 0
}
