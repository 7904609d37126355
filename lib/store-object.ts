/**
 * A store object (`Gossip`'s third argument: any key-value object) as the
 * node keeps its view in it: each key's entry at the key; written whole by
 * this package, every other current mapping under its mapping key and the
 * node's record under RECORD_KEY, so that a restart from it is as exact as
 * from a snapshot. A store an older release wrote holds entries only.
 */
import type { History } from './history'
import { checkedUpdate, RECORD_KEY } from './shape'
import type { Snapshot, StateStore, Update } from './types'

// A store's entry for `key` if it is an update-like object (a plain store
// answers inherited names such as "toString" with functions).
export function entryOf(store: StateStore, key: string): Update | undefined {
  const u = store[key]
  return typeof u === 'object' && u !== null ? u : undefined
}

/**
 * The key under which a store object keeps a current mapping of `key` by
 * `source_id` that is not the key's entry (the entry is at `key` itself):
 * keys starting with "\u0000" are reserved, so no write uses one.
 */
export function mappingKey(source_id: string, key: string): string {
  return `\u0000m${JSON.stringify([source_id, key])}`
}

// The layout of a store object written whole (see mappingKey, StoreRecord).
export const STORE_FORMAT = 1

// What a store object keeps under RECORD_KEY: the record of deletes, and,
// once it holds every mapping, the format, the clock and Snapshot.held.
export interface StoreRecord extends Partial<Omit<Snapshot, 'updates'>> {
  store?: number
  version?: number
  held?: number
}

// The record a store object keeps (see saveRecord), if any: a damaged one
// is left out.
export function recordOf(store: StateStore): StoreRecord | undefined {
  const text: unknown = (store as Record<string, unknown>)[RECORD_KEY]
  if (typeof text !== 'string') return undefined
  try {
    const r: unknown = JSON.parse(text)
    return r !== null && typeof r === 'object' && !Array.isArray(r) ? (r as StoreRecord) : undefined
  } catch {
    return undefined
  }
}

// Whether two mappings of a key are the same (or both none).
export function same(a: Update | undefined, b: Update | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.source_id === b.source_id && a.version === b.version)
}

// Whether a store object holds nothing yet.
export function isEmpty(store: StateStore): boolean {
  return Object.keys(store).length === 0
}

// A whole store object after `update` replaced `previous` (its source's
// older mapping of the key), the entry going from `before` to `entry`:
// the entry at the key, every other current mapping at its mapping key.
export function keepWhole(store: StateStore, update: Update, previous: Update | undefined, before: Update | undefined, entry: Update | undefined): void {
  const key = update.key
  // (The store's copy of a mapping is not the history's: compare by name.)
  const wasEntry = same(before, entry)
  // What was the entry and stays current becomes one of the others.
  if (before !== undefined && !wasEntry && !same(before, previous)) store[mappingKey(before.source_id, key)] = before
  if (!wasEntry) {
    if (entry === undefined) Reflect.deleteProperty(store, key)
    else store[key] = entry
  }
  if (!same(update, entry)) store[mappingKey(update.source_id, key)] = update
  // The previous mapping of the source was one of the others: its place is the entry's now.
  else if (previous !== undefined && !same(previous, before)) Reflect.deleteProperty(store, mappingKey(update.source_id, key))
  // One of the others promoted to the entry.
  if (entry !== undefined && !same(entry, update) && !same(entry, before)) Reflect.deleteProperty(store, mappingKey(entry.source_id, key))
}

// The key's entry in the store goes from `had` to `entry`: each of the two
// moves between its key and its mapping key.
export function relocate(store: StateStore, history: History, key: string, had: Update | undefined, entry: Update | undefined): void {
  if (entry !== undefined) {
    Reflect.deleteProperty(store, mappingKey(entry.source_id, key))
    store[key] = entry
  } else Reflect.deleteProperty(store, key)
  const kept = had === undefined ? undefined : history.mapping(had.source_id, key)
  if (kept !== undefined && same(kept, had)) store[mappingKey(kept.source_id, key)] = kept
}

// The entries a store object holds at start: validated; our own are our
// history (what we wrote); others' stay in the view, and peers send every
// source's mappings again (our digest does not claim them). The store
// holds only each key's entry, not its source's log: an entry of another
// source that no peer sends again by the time every peer we exchange
// with has answered us whole was replaced (or is held by no one) and
// goes (see viewCheck). Returns the clock they imply, or undefined for
// an empty store.
export function adopt(store: StateStore, history: History, id: string): { clock: number | undefined; pending: Map<string, Update> | null } {
  let clock: number | undefined
  let pending: Map<string, Update> | null = null
  for (const key of Object.keys(store)) {
    if (key === RECORD_KEY) continue
    const u = checkedUpdate(store[key], `store entry "${key}"`)
    if (u.key !== key) throw new TypeError(`store entry "${key}" is an update of another key, "${u.key}"`)
    if (clock === undefined || u.version > clock) clock = u.version
    if (u.source_id === id) history.record(u)
    else (pending ??= new Map()).set(key, u)
  }
  return { clock, pending }
}
