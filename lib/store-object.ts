/**
 * A store object (`Gossip`'s third argument: any key-value object) as the
 * node keeps its view in it: each key's entry at the key; written whole by
 * this package, every other current mapping under its mapping key and the
 * node's record under RECORD_KEY, so that a restart from it is as exact as
 * from a snapshot. A store an older release wrote holds entries only.
 */
import type { Changes } from './changes'
import type { Clock } from './clock'
import type { Deletes } from './deletes'
import type { History } from './history'
import type { Incarnation } from './incarnation'
import type { Restart } from './restart'
import { restore } from './snapshot'
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

/** What a store object needs of the replicated state. */
export interface StoreHost {
  readonly id: string
  readonly history: History
  readonly incarnation: Incarnation
  readonly deletes: Deletes
  readonly restart: Restart
  readonly clock: Clock
  readonly changes: Changes
  /** `resolve` folded over a key's mappings in `sort` order: the entry it keeps. */
  choose(mappings: Update[]): Update | undefined
}

/** A store object holding one node's view (see the module's comment). */
export class StoreObject {
  // A store object's entries of other sources at start that no peer has sent
  // again yet (see adopt).
  pending: Map<string, Update> | null = null
  // The record last written to the store object (see saveRecord).
  private recordSaved: string | null = null
  // The store object holds every mapping (see mappingKey), not only entries.
  readonly whole: boolean
  /** The record the store object held at start, if any. */
  readonly found: StoreRecord | undefined
  // The record of a whole store object to restart from (see open).
  private opening: StoreRecord | undefined

  constructor(
    readonly store: StateStore,
    private readonly replica: StoreHost,
  ) {
    this.found = recordOf(store)
    this.whole = this.found?.store === STORE_FORMAT || isEmpty(store)
    if (this.whole) this.opening = this.found
  }

  /**
   * A store object of entries only (as an older release wrote it): its
   * entries adopted (see adopt). Returns the clock they imply, or undefined
   * for an empty store.
   */
  adopt(id: string): number | undefined {
    const adopted = adopt(this.store, this.replica.history, id)
    this.pending = adopted.pending
    return adopted.clock
  }

  /**
   * Start on the store object, once the host can answer `resolve` (which
   * may read the node): restart from it if this package wrote it whole,
   * mark it so if it is new.
   * @throws TypeError when the store holds something that is not an update of its key.
   */
  open(): void {
    const record = this.opening
    if (!this.whole) return
    this.opening = undefined
    // A new store object is marked whole at once: a restart before any
    // exchange must not take it for an older release's.
    if (record === undefined) this.saveRecord()
    else this.fromStore(this.store, record)
  }

  // A restart from a store object written whole: its mappings as a
  // snapshot's (the entries at their keys, the rest under mappingKey), its
  // clock, how far it held its past, and its record of deletes. An entry
  // that resolve now chooses otherwise is put right in the store.
  private fromStore(store: StateStore, record: StoreRecord): void {
    const updates: Update[] = []
    for (const k of Object.keys(store)) {
      if (k === RECORD_KEY) continue
      const u = checkedUpdate(store[k], `store entry "${k}"`)
      if (k.charCodeAt(0) !== 0 ? u.key !== k : k !== mappingKey(u.source_id, u.key)) throw new TypeError(`store entry "${k}" is an update of another key, "${u.key}"`)
      updates.push(u)
    }
    const version = typeof record.version === 'number' ? record.version : 0
    // Our own writes since the record was saved (at exchanges, not at each
    // write) lie above its clock: this lineage's too (R2, R9). Left out, a
    // restart took them for its past's, and issued its later writes again
    // above them (outside red team, issue 18).
    let top = -Infinity
    let low = Infinity
    for (const u of updates) {
      if (u.source_id !== this.replica.id || u.version <= version) continue
      if (u.version > top) top = u.version
      if (u.version < low) low = u.version
    }
    const issued = Array.isArray(record.issued) && top !== -Infinity ? [...(record.issued as number[]), low, top] : record.issued
    const snapshot: Snapshot = { ...record, issued, version, updates }
    const restored = restore(this.replica.history, snapshot, (mappings) => {
      const entry = this.replica.choose(mappings)
      const key = mappings[0].key
      const had = entryOf(store, key)
      if (!same(had, entry)) relocate(store, this.replica.history, key, had, entry)
      return entry
    })
    this.recordSaved = (store as Record<string, unknown>)[RECORD_KEY] as string
    this.replica.incarnation.fromSnapshot(snapshot, restored)
    this.replica.restart.holdBack(snapshot.maxes)
    this.replica.deletes.restored(snapshot)
  }

  // put() into a store object: the key's entry there before, which becomes `entry`.
  stored(update: Update, previous: Update | undefined, entry: Update | undefined): Update | undefined {
    const store = this.store
    const key = update.key
    const before = entryOf(store, key)
    if (this.whole) keepWhole(store, update, previous, before, entry)
    else if (entry !== before) {
      if (entry === undefined) delete store[key]
      else store[key] = entry
    }
    return before
  }

  // A store object's entry of another source at start was sent again (see pending).
  seen(update: Update): void {
    const pending = this.pending as Map<string, Update>
    const p = pending.get(update.key)
    if (p !== undefined && p.source_id === update.source_id && update.version >= p.version) pending.delete(update.key)
  }

  /**
   * After a peer's answer: once every peer we exchange with (`peers`) has
   * answered us whole, the store's entries of other sources that none sent
   * again go, the key's entry being what resolve makes of what we hold.
   */
  viewCheck(peers: Iterable<{ readonly exchanged: boolean; readonly destroyed: boolean; readonly answeredWhole: boolean }>): void {
    const pending = this.pending
    if (pending === null) return
    let any = false
    for (const p of peers) {
      if (!p.exchanged || p.destroyed) continue
      if (!p.answeredWhole) return
      any = true
    }
    if (!any) return
    this.pending = null
    const store = this.store
    for (const [key, u] of pending) {
      const e = entryOf(store, key)
      if (e === undefined || e.source_id !== u.source_id || e.version !== u.version) continue
      const entry = this.replica.choose(this.replica.history.get(key))
      if (entry === undefined) delete store[key]
      else store[key] = entry
      if (this.replica.changes.watchers > 0) this.replica.changes.changed(key, e, entry)
    }
  }

  // The record of a whole store object: the record of deletes, with the
  // clock and how far the node holds its past (a snapshot's other fields).
  private storeRecord(): string {
    const deletes = this.replica.restart.record()
    const held = this.replica.incarnation.snapshotHeld
    const r: StoreRecord = { ...(deletes === null ? {} : (JSON.parse(deletes) as object)), store: STORE_FORMAT, version: this.replica.clock.time }
    if (held !== undefined) r.held = held
    return JSON.stringify(r)
  }

  // A store object keeps the node's record of deletes under RECORD_KEY
  // (a restart from it must not forget what was collected).
  saveRecord(): void {
    const store = this.store
    const text = this.whole ? this.storeRecord() : this.replica.restart.record()
    if (text === this.recordSaved) return
    try {
      if (text === null) delete store[RECORD_KEY]
      else (store as Record<string, unknown>)[RECORD_KEY] = text
      this.recordSaved = text
    } catch {
      // A store that fails is told again at the next exchange; its writes say why.
    }
  }
}
