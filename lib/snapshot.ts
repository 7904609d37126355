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
  const updates = Array.from(history.mappings())
  return held === undefined ? { version, updates } : { version, updates, held }
}

// Update lists whose every element is known to be an update checkedUpdate
// returned (a store's rows, checked as they were read): restore takes them
// as they are instead of checking them again.
const checkedLists = new WeakSet<readonly Update[]>()

/**
 * @internal Mark `updates`, every one of them returned by `checkedUpdate`,
 * as checked: a restore from a snapshot holding this very array does not
 * check them again. (For a store's own snapshot; the array must not change.)
 */
export function markChecked(updates: readonly Update[]): void {
  checkedLists.add(updates)
}

/**
 * Load `snapshot` into an empty history, with each key's resolved entry
 * chosen by `choose` from the key's mappings (in the history's `sort`
 * order). Returns the snapshot's clock: the highest of its version and
 * every version it holds.
 *
 * Updates that come grouped by key in key order (a store reads its rows
 * so) go in as they come; others are grouped by key first. Either way the
 * logs are filled in bulk and sorted once (see History.loadInBulk).
 * @throws TypeError for anything but a snapshot of updates.
 */
export function restore(history: History, snapshot: Snapshot, choose: (mappings: Update[]) => Update | undefined): number {
  if (snapshot === null || typeof snapshot !== 'object' || !Array.isArray(snapshot.updates)) {
    throw new TypeError('state must be a snapshot: {version, updates}')
  }
  let clock = typeof snapshot.version === 'number' && Number.isSafeInteger(snapshot.version) ? snapshot.version : 0
  if (typeof snapshot.version === 'number') checkReading(snapshot.version, 'state.version')
  if (typeof snapshot.reserved === 'number') checkReading(snapshot.reserved, 'state.reserved')
  const raw = snapshot.updates
  const n = raw.length
  const checked = checkedLists.has(raw)
  const list: Update[] = checked ? raw : new Array<Update>(n)
  // Whether the keys come in order (each key's mappings together).
  let inOrder = true
  let last = ''
  for (let i = 0; i < n; i++) {
    const u = checked ? raw[i] : checkedUpdate(raw[i], 'state')
    if (!checked) list[i] = u
    if (u.version > clock) clock = u.version
    if (u.key < last) inOrder = false
    last = u.key
  }
  history.loadInBulk(true)
  try {
    if (inOrder) {
      const one: Update[] = [list[0]]
      for (let i = 0; i < n; ) {
        const u = list[i]
        let j = i + 1
        while (j < n && list[j].key === u.key) j++
        if (j === i + 1) {
          // One mapping (most keys): the key has no slot yet.
          one[0] = u
          history.load(one, choose(one))
        } else putKey(history, newest(list, i, j), choose)
        i = j
      }
    } else {
      // Each key's mappings, the newest of each source.
      const byKey = new Map<string, Update | Update[]>()
      for (let i = 0; i < n; i++) {
        const u = list[i]
        const had = byKey.get(u.key)
        if (had === undefined) byKey.set(u.key, u)
        else if (Array.isArray(had)) had.push(u)
        else byKey.set(u.key, [had, u])
      }
      const one: Update[] = [list[0]]
      for (const had of byKey.values()) {
        if (Array.isArray(had)) putKey(history, newest(had, 0, had.length), choose)
        else {
          one[0] = had
          history.load(one, choose(one))
        }
      }
    }
  } finally {
    history.loadInBulk(false)
  }
  return clock
}

// The newest of each source's mappings among list[from..to) (one key's).
function newest(list: readonly Update[], from: number, to: number): Update[] {
  const out: Update[] = []
  // A key of many sources gets an index, so that restoring it stays linear.
  let at: Map<string, number> | undefined
  for (let k = from; k < to; k++) {
    const u = list[k]
    if (at === undefined && out.length >= 16) at = new Map(out.map((m, j) => [m.source_id, j]))
    const i = at === undefined ? out.findIndex((m) => m.source_id === u.source_id) : (at.get(u.source_id) ?? -1)
    if (i < 0) {
      at?.set(u.source_id, out.length)
      out.push(u)
    } else if (out[i].version < u.version) out[i] = u
  }
  return out
}

// One key of several mappings into the history, with its entry.
function putKey(history: History, list: Update[], choose: (mappings: Update[]) => Update | undefined): void {
  if (list.length > 1) list.sort(history.sort)
  history.load(list, choose(list))
}

/** The snapshot fields a node's record holds (see `Persisted.record`). */
export type RecordFields = Pick<Snapshot, 'collected' | 'horizon' | 'maxes' | 'refetching' | 'issued' | 'floor' | 'pastWithdrawn'>

/**
 * The snapshot fields of a node's record as a store saved it (JSON text).
 * Throws what JSON.parse throws; restore checks each field's shape.
 */
export function recordFields(text: string): RecordFields {
  const d = JSON.parse(text) as RecordFields
  if (d === null || typeof d !== 'object') return {}
  return { collected: d.collected, horizon: d.horizon, maxes: d.maxes, refetching: d.refetching, issued: d.issued, floor: d.floor, pastWithdrawn: d.pastWithdrawn }
}
