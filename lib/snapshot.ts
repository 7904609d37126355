/**
 * A node's saved state: every source's current mappings (the paper's mu)
 * and the clock. The resolved view is not saved: it is what `resolve`
 * makes of the mappings, and is made again on restore.
 */
import type { History } from './history'
import { checkReading, checkedUpdate } from './shape'
import type { Snapshot, Update } from './types'

/** The snapshot of `history` with clock `version` (and `held`, see Snapshot.held). */
export function snapshotOf(history: History, version: number, held?: number): Snapshot {
  const updates = Array.from(history._mappings())
  return held === undefined ? { version, updates } : { version, updates, held }
}

/**
 * Load `snapshot` into an empty history, with each key's resolved entry
 * chosen by `choose` from the key's mappings (in the history's `sort`
 * order). Returns the snapshot's clock: the highest of its version and
 * every version it holds.
 * @throws TypeError for anything but a snapshot of updates.
 */
export function restore(history: History, snapshot: Snapshot, choose: (mappings: Update[]) => Update | undefined): number {
  if (snapshot === null || typeof snapshot !== 'object' || !Array.isArray(snapshot.updates)) {
    throw new TypeError('state must be a snapshot: {version, updates}')
  }
  let clock = typeof snapshot.version === 'number' && Number.isSafeInteger(snapshot.version) ? snapshot.version : 0
  if (typeof snapshot.version === 'number') checkReading(snapshot.version, 'state.version')
  if (typeof snapshot.reserved === 'number') checkReading(snapshot.reserved, 'state.reserved')
  // Each key's mappings, the newest of each source.
  const byKey = new Map<string, Update[]>()
  const many = new Map<Update[], Map<string, number>>()
  for (const raw of snapshot.updates) {
    const u = checkedUpdate(raw, 'state')
    if (u.version > clock) clock = u.version
    const list = byKey.get(u.key)
    if (list === undefined) {
      byKey.set(u.key, [u])
      continue
    }
    // A key of many sources gets an index, so that restoring it stays
    // linear; most keys have one source and no index.
    let at = many.get(list)
    if (at === undefined && list.length >= 16) {
      at = new Map(list.map((m, j) => [m.source_id, j]))
      many.set(list, at)
    }
    const i = at === undefined ? list.findIndex((m) => m.source_id === u.source_id) : (at.get(u.source_id) ?? -1)
    if (i < 0) {
      at?.set(u.source_id, list.length)
      list.push(u)
    } else if (list[i].version < u.version) list[i] = u
  }
  for (const list of byKey.values()) {
    if (list.length > 1) list.sort(history.sort)
    const entry = choose(list)
    // The entry goes in last, so that the slot ends as it would have grown.
    for (const u of list) if (u !== entry) history._put(u, history._slot(u.key), undefined, history.source(u.source_id), undefined)
    if (entry !== undefined) history._put(entry, history._slot(entry.key), undefined, history.source(entry.source_id), entry)
  }
  return clock
}
