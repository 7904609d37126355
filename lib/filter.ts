/**
 * Stream filters (see `Filter`): which mappings a stream carries, both
 * ways, as a predicate over (source id, key).
 */
import { filterProblem } from './shape'
import type { Filter } from './types'

/** A filter's test, or null for a filter that lets everything through. */
export type Passes = ((source_id: string, key: string) => boolean) | null

/**
 * The test of `f`, or null when `f` is undefined or passes everything.
 * @throws TypeError for a filter that is not plain lists of names.
 */
export function compileFilter(f: Filter | undefined): Passes {
  if (f === undefined) return null
  const bad = filterProblem(f)
  if (bad !== null) throw new TypeError(bad)
  const prefixes = f.prefixes
  const only = f.sources === undefined ? null : new Set(f.sources)
  const except = f.exclude_sources === undefined || f.exclude_sources.length === 0 ? null : new Set(f.exclude_sources)
  if (prefixes === undefined && only === null && except === null) return null
  return (source_id, key) => {
    if (only !== null && !only.has(source_id)) return false
    if (except !== null && except.has(source_id)) return false
    if (prefixes === undefined) return true
    for (const p of prefixes) if (key.startsWith(p)) return true
    return false
  }
}

/** Both tests at once (either may be null: passes everything). */
export function both(a: Passes, b: Passes): Passes {
  if (a === null) return b
  if (b === null) return a
  return (s, k) => a(s, k) && b(s, k)
}
