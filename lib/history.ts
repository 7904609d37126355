/**
 * The paper's mu: for every source r, r's newest mapping of each key,
 * indexed the way Scuttlebutt asks for them: per source, in version order.
 * Every valid update a node hears is written here, whatever `resolve` said
 * of it; digests summarise it and deltas carry it.
 *
 * Per key the history keeps a slot: the update itself when one source maps
 * the key (and, when the history also keeps the node's resolved view, that
 * update is the key's resolved entry), or a {@link Slot} otherwise. A key
 * written by one source so costs one Map entry, as a plain key-value map
 * would.
 *
 * Each source's log is an index over that source's current mappings, sorted
 * by version, so that `news(id, version)` is a search plus a walk:
 * O(log n + k). A mapping replaced by a newer one of its source stays in the
 * log until the log is swept (lazy deletion keeps replacement O(1)); walks
 * skip it.
 *
 * `max_history` bounds how many mappings the logs index. Past it the oldest
 * are forgotten, after a `'compaction'` event, and the source's `floor`
 * rises: a question about versions below the floor is answered by a scan of
 * the slots instead, which is slower but complete.
 */
import { EventEmitter } from 'events'
import * as sorted from 'sorted-array-functions'
import { sort as defaultSort } from './resolution'
import { checkedUpdate } from './shape'
import type { Comparator, Update } from './types'

/** What one node knows of one source. */
export class SourceLog {
  /** Remembered mappings of this source, ascending by version. */
  readonly updates: Update[] = []
  /**
   * @internal Every SAMPLE-th version of `updates` (`samples[i] ===
   * updates[i * SAMPLE].version`), a prefix extended when a search needs
   * it: a search of a large log reads these, then at most SAMPLE entries.
   * (A mirror of every version made searches no faster and cost 8-10 heap
   * bytes per key; this costs under one.)
   */
  readonly samples: number[] = []
  /** Mappings at or below this version have been forgotten by the log. */
  floor = -Infinity
  /** Highest version of this source the node has seen. */
  max = -Infinity
  /** How many current mappings (keys) this source has. */
  live = 0
  /** Replaced mappings still in `updates`. */
  dead = 0

  constructor(readonly id: string) {}
}

/**
 * A key that more than one source maps, or whose only mapping is not its
 * resolved entry (resolve refused it).
 */
export class Slot {
  /** Each source's newest mapping of the key, by source id. */
  readonly mappings = new Map<string, Update>()
  /**
   * The key's resolved entry, when the history keeps the resolved view: one
   * of `mappings`, or none.
   */
  resolved: Update | undefined = undefined
}

/** @internal Source `id`'s current mapping in `slot`, if any. */
export function mappingOf(slot: Update | Slot | undefined, id: string): Update | undefined {
  if (slot === undefined) return undefined
  if (slot instanceof Slot) return slot.mappings.get(id)
  return slot.source_id === id ? slot : undefined
}

/** @internal The resolved entry a slot holds (histories that keep the resolved view). */
export function resolvedOf(slot: Update | Slot | undefined): Update | undefined {
  return slot instanceof Slot ? slot.resolved : slot
}

// A membership key (isMembershipKey of membership.ts, which imports the
// node and so cannot be imported here): its first character, then its prefix.
function aside(key: string): boolean {
  const c = key.charCodeAt(0)
  return (c === 109 && key.startsWith('member/')) || (c === 104 && key.startsWith('heartbeat/'))
}

function byVersion(a: Update, b: Update): -1 | 0 | 1 {
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0
}

/**
 * @internal Sort `list` by version, ascending, stably; true if it moved
 * anything. A list in order costs one pass; versions that are integers
 * from 0 to 2^53 are sorted by radix (16 bits a pass, as many passes as
 * their range needs: two for a few minutes of microsecond versions).
 */
export function sortByVersion(list: Update[]): boolean {
  const n = list.length
  let i = 1
  while (i < n && list[i - 1].version <= list[i].version) i++
  if (i >= n) return false
  if (n < 512) {
    list.sort(byVersion)
    return true
  }
  const versions = new Float64Array(n)
  let min = Infinity
  let max = -Infinity
  for (let k = 0; k < n; k++) {
    const v = list[k].version
    if (!(Number.isSafeInteger(v) && v >= 0)) {
      list.sort(byVersion)
      return true
    }
    versions[k] = v
    if (v < min) min = v
    if (v > max) max = v
  }
  let order = new Uint32Array(n)
  let next = new Uint32Array(n)
  for (let k = 0; k < n; k++) order[k] = k
  const counts = new Uint32Array(65536)
  const range = max - min
  // Digit `d` of a version: bits 16d to 16d+15 of (version - min).
  for (let scale = 1; scale <= range; scale *= 65536) {
    counts.fill(0)
    for (let k = 0; k < n; k++) counts[Math.floor((versions[k] - min) / scale) % 65536]++
    let sum = 0
    for (let d = 0; d < 65536; d++) {
      const c = counts[d]
      counts[d] = sum
      sum += c
    }
    for (let k = 0; k < n; k++) {
      const at = order[k]
      next[counts[Math.floor((versions[at] - min) / scale) % 65536]++] = at
    }
    const t = order
    order = next
    next = t
  }
  const copy = list.slice()
  for (let k = 0; k < n; k++) list[k] = copy[order[k]]
  return true
}

// Every SAMPLE-th entry's version goes into a log's `samples`.
const SAMPLE = 16

// The index of the first version above `version` in `log` (log.length if
// none). One source's versions are nearly dense, so the search guesses by
// interpolation, gallops from the guess to bracket the answer and bisects
// the bracket: O(log n) at worst, two probes for dense versions.
function aboveVersion(log: readonly number[], version: number): number {
  const n = log.length
  if (n === 0 || !(log[n - 1] > version)) return n
  const first = log[0]
  if (first > version) return 0
  // Invariant: log[lo] <= version < log[hi].
  let lo = 0
  let hi = n - 1
  if (hi > 1) {
    let g = Math.round(((version - first) / (log[hi] - first)) * hi)
    if (g < 1) g = 1
    else if (g > hi - 1) g = hi - 1
    if (log[g] > version) {
      hi = g
      for (let step = 1; hi - step > lo; step *= 2) {
        const i = hi - step
        if (log[i] <= version) {
          lo = i
          break
        }
        hi = i
      }
    } else {
      lo = g
      for (let step = 1; lo + step < hi; step *= 2) {
        const i = lo + step
        if (log[i] > version) {
          hi = i
          break
        }
        lo = i
      }
    }
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1
    if (log[mid] > version) hi = mid
    else lo = mid
  }
  return hi
}

// The index of the first entry of `log` above `version`. The ends are read
// from the entries (no search before the first or after the last: a peer
// that lacks all or nothing); a search in between first extends the log's
// `samples` over all of its entries, searches those (a large log's update
// objects are each a cache miss, the samples a few), then bisects the at
// most SAMPLE entries between two samples.
function find(log: SourceLog, version: number): number {
  const updates = log.updates
  const n = updates.length
  if (n === 0 || !(updates[n - 1].version > version)) return n
  if (updates[0].version > version) return 0
  const samples = log.samples
  for (let i = samples.length * SAMPLE; i < n; i += SAMPLE) samples.push(updates[i].version)
  // samples[0] <= version: the answer is in (lo, hi]; a guess by
  // interpolation and its neighbour settle dense versions in two probes.
  const s = aboveVersion(samples, version)
  let lo = (s - 1) * SAMPLE
  let hi = s < samples.length ? s * SAMPLE : n - 1
  if (hi - lo > 2) {
    const low = samples[s - 1]
    const high = s < samples.length ? samples[s] : updates[hi].version
    let g = lo + Math.round(((version - low) / (high - low)) * (hi - lo))
    if (g <= lo) g = lo + 1
    else if (g >= hi) g = hi - 1
    if (updates[g].version > version) {
      hi = g
      if (updates[g - 1].version <= version) lo = g - 1
      else hi = g - 1
    } else {
      lo = g
      if (updates[g + 1].version > version) hi = g + 1
      else lo = g + 1
    }
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1
    if (updates[mid].version > version) hi = mid
    else lo = mid
  }
  return hi
}

/** Options of a {@link History} beyond `max_history`. */
export interface HistoryOptions {
  /** Orders `memory`. Default `base.sort`. */
  sort?: Comparator
  /**
   * Keep the node's resolved view in the slots too (what a `Gossip` without
   * a store object of its own does). Default true.
   */
  resolved?: boolean
  /**
   * `write` admits only what a peer's update would be admitted for (the
   * limits, versions in range), throwing a TypeError otherwise: a node's
   * history is gossiped. Default false: a history of its own, as the
   * original's, takes any value.
   */
  checked?: boolean
}

/**
 * Events: `'update'` `(update, resolved)` for every update written to the
 * history, local or remote, after `resolve` decided on it (`resolved`: it
 * became its key's entry in the node's state); `'forget'` `(update)` when a
 * mapping leaves with nothing of its source in its place (a delete covered
 * it, or it was a delete and was collected); `'compaction'`
 * `(memory, history)` just before `memory`, the oldest mappings, are
 * forgotten by the logs (they stay mappings; only the index lets go).
 */
export class History extends EventEmitter {
  /** Per-source logs, by source id. */
  readonly sources = new Map<string, SourceLog>()
  /** Mappings the logs index that are still current. */
  length = 0
  readonly max_history: number
  /** The order of `memory`. */
  readonly sort: Comparator
  /** @internal Whether the slots also hold the resolved view. */
  readonly tracksResolved: boolean
  // See HistoryOptions.checked.
  private readonly checked: boolean

  // Counts writes (see `writes`).
  private writeCount = 0
  /**
   * @internal The key `resolve` is being asked about, set by the node just
   * before it asks, and `memoEntry` that key's entry as the node looked it
   * up: `resolve`'s `get` of the key then needs no second lookup. Any write
   * (`put`, `drop`) clears it, as resolve may write. (Fields, not methods:
   * measured, a method here cost 3% of a set's instructions.)
   */
  memoKey: string | null = null
  /** @internal See {@link memoKey}. */
  memoEntry: Update | undefined = undefined

  // Per key: its only mapping, or a Slot.
  private readonly slots = new Map<string, Update | Slot>()
  // Keys with a resolved entry (when tracksResolved).
  private resolvedCount = 0
  // Of those, keys whose entry is a delete, and membership keys (member/…,
  // heartbeat/…) whose entry is not: a node's status counts its keys in O(1).
  private resolvedDeletes = 0
  private resolvedMembership = 0
  // sortedIds(), until a source is added.
  private ids: string[] | null = null
  // Insertion order of indexed mappings, for forgetting the oldest; only
  // kept when max_history is finite.
  private fifo: Update[] = []
  private fifoHead = 0
  // Loading in bulk (see loadInBulk).
  private bulk = false
  // 'update' listeners, counted as they come and go: put asks per write.
  private updateListeners = 0

  /**
   * @param max_history - mappings the logs index before forgetting the
   *   oldest (Infinity: never).
   * @param options - a number here is taken as the original's `mtu`
   *   argument and ignored; see {@link HistoryOptions}.
   * @param sort - the original's third argument: the order of `memory`.
   */
  constructor(max_history = Infinity, options: HistoryOptions | number = {}, sort?: Comparator) {
    super()
    if (!(max_history >= 1)) throw new RangeError('max_history must be at least 1')
    this.max_history = max_history
    const o: HistoryOptions = typeof options === 'object' && options !== null ? options : {}
    this.sort = o.sort ?? sort ?? defaultSort
    this.tracksResolved = o.resolved ?? true
    this.checked = o.checked ?? false
    this.on('newListener', (event: string | symbol) => {
      if (event === 'update') this.updateListeners++
    })
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'update') this.updateListeners--
    })
  }

  /** The log of `id`, created on first use. */
  source(id: string): SourceLog {
    let log = this.sources.get(id)
    if (log === undefined) {
      log = new SourceLog(id)
      this.sources.set(id, log)
      this.ids = null
    }
    return log
  }

  /** @internal Every source id, in string order (for digests sent in parts). */
  sortedIds(): readonly string[] {
    if (this.ids === null) this.ids = [...this.sources.keys()].sort()
    return this.ids
  }

  /** Every source's current mapping of `key`, in `sort` order. */
  get(key: string | number): Update[] {
    const slot = this.slots.get(String(key))
    if (slot === undefined) return []
    if (!(slot instanceof Slot)) return [slot]
    return [...slot.mappings.values()].sort(this.sort)
  }

  /** Source `id`'s current mapping of `key`, if the node holds one. */
  mapping(id: string, key: string): Update | undefined {
    return mappingOf(this.slots.get(key), id)
  }

  /**
   * The key's resolved entry: the mapping `resolve` chose to be its entry in
   * the node's state (a delete included), if any. In a history that does not
   * keep the resolved view, a key's only mapping.
   */
  entry(key: string): Update | undefined {
    return resolvedOf(this.slots.get(key))
  }

  /** Every key that has a resolved entry, with it (see {@link entry}). */
  *entries(): IterableIterator<Update> {
    for (const slot of this.slots.values()) {
      const u = resolvedOf(slot)
      if (u !== undefined) yield u
    }
  }

  // ---- the node's writes (@internal: Replica and restore) ----------------
  // A write looks the key's slot up once, asks `resolve` (which may write
  // itself), then passes the slot back to `put`; `writes` tells it whether
  // the slot is still current.

  /** @internal The key's slot, for a caller that will pass it back to {@link put}. */
  slot(key: string): Update | Slot | undefined {
    return this.slots.get(key)
  }

  /** @internal How many writes (`put`, `drop`) this history has taken: unchanged since a {@link slot} lookup, the slot is current. */
  get writes(): number {
    return this.writeCount
  }

  /** @internal How many keys have a resolved entry. */
  get _resolvedCount(): number {
    return this.resolvedCount
  }

  /**
   * How many keys have a resolved entry that is not a delete and not a
   * membership key (`member/…`, `heartbeat/…`): the keys of the node's
   * state an application wrote. Kept as writes come, O(1); 0 when the
   * history does not track resolved entries (see `tracksResolved`).
   */
  get liveCount(): number {
    return this.resolvedCount - this.resolvedDeletes - this.resolvedMembership
  }

  // The counts of the key's resolved entry going from `before` to `entry`.
  private recount(before: Update | undefined, entry: Update | undefined): void {
    if (before === undefined) this.resolvedCount++
    else if (before.deleted === true) this.resolvedDeletes--
    else if (aside(before.key)) this.resolvedMembership--
    if (entry === undefined) this.resolvedCount--
    else if (entry.deleted === true) this.resolvedDeletes++
    else if (aside(entry.key)) this.resolvedMembership++
  }

  /** Every source's current mapping of every key (the paper's mu), key by key. */
  *mappings(): IterableIterator<Update> {
    for (const slot of this.slots.values()) {
      if (slot instanceof Slot) yield* slot.mappings.values()
      else yield slot
    }
  }

  /**
   * Record an update as its source's current mapping of its key (when it is
   * newer than the one held) and, in a history that keeps the resolved view,
   * as the key's resolved entry, without asking `resolve`; emit `'update'`.
   * Returns the stored update. Keys and source ids that are finite numbers
   * mean their string form, which the history holds; a history of its own
   * (not a node's) emits `'update'` with the values as they were given, as
   * the original did (`write(0, 0, 0, 0)` emits key 0, not "0"). A node's
   * history emits what it holds: its stores persist that.
   * @throws TypeError, in a node's history (see HistoryOptions.checked),
   * for what a peer's update would be refused for, naming it.
   */
  write(key: string | number, value: unknown, source_id: string | number, version: number): Update {
    const update = { key: String(key), value, source_id: String(source_id), version }
    if (this.checked) return this.record(checkedUpdate(update, 'history.write'))
    const given = typeof key === 'string' && typeof source_id === 'string' ? update : ({ key, value, source_id, version } as unknown as Update)
    return this.record(update, given)
  }

  /**
   * {@link write} for an update object the caller built and will not
   * mutate; `said` is what `'update'` carries (default: the update).
   */
  record(update: Update, said: Update = update): Update {
    const slot = this.slots.get(update.key)
    const previous = mappingOf(slot, update.source_id)
    if (previous !== undefined && previous.version >= update.version) return previous
    this.put(update, slot, previous, this.source(update.source_id), update, true, said)
    return update
  }

  /**
   * @internal Make `update` its source's current mapping of its key, in
   * place of `previous` (its source's older mapping, found in `slot`, the
   * key's slot as looked up by the caller), and `entry` the key's resolved
   * entry (`update`, the entry it had, another current mapping of the key,
   * or none). Emits `'update'` with `said` (see {@link write}).
   */
  put(
    update: Update,
    slot: Update | Slot | undefined,
    previous: Update | undefined,
    log: SourceLog,
    entry: Update | undefined,
    advance = true,
    said: Update = update,
  ): void {
    this.memoKey = null
    this.writeCount++
    const key = update.key
    const tracks = this.tracksResolved
    const before = slot === undefined ? undefined : resolvedOf(slot)
    if (slot === undefined) {
      this.slots.set(key, entry === update || !tracks ? update : this.slotOf(undefined, update, entry))
    } else if (!(slot instanceof Slot)) {
      if (slot === previous && (entry === update || !tracks)) this.slots.set(key, update)
      else this.slots.set(key, this.slotOf(slot === previous ? undefined : slot, update, entry))
    } else {
      slot.mappings.set(update.source_id, update)
      if (tracks) {
        slot.resolved = entry
        // Back to one mapping that is also the resolved entry: a bare update.
        if (slot.mappings.size === 1 && entry === update) this.slots.set(key, update)
      } else if (slot.mappings.size === 1) {
        this.slots.set(key, update)
      }
    }
    if (tracks && before !== entry) this.recount(before, entry)
    if (previous !== undefined) this.retire(previous)

    log.live++
    const version = update.version
    if (advance && version > log.max) log.max = version
    if (version > log.floor) {
      const updates = log.updates
      const n = updates.length
      // (An append by index: TurboFan inlines it, where it called the push builtin.)
      if (n === 0 || updates[n - 1].version <= version || this.bulk) updates[n] = update
      else {
        sorted.add(updates, update, byVersion)
        // Entries from the new one's place on moved: the samples end there.
        const samples = log.samples
        let k = samples.length
        while (k > 0 && samples[k - 1] >= version) k--
        samples.length = k
      }
      this.length++
      if (this.max_history !== Infinity && !this.bulk) {
        this.fifo.push(update)
        if (this.length > this.max_history) this.compact()
        else if (this.fifo.length - this.fifoHead > 2 * this.length + 1024) this.trimFifo()
      }
    }
    if (this.updateListeners > 0) this.emit('update', said, entry === update)
  }

  /**
   * @internal Load one key's current mappings (`mappings`, one per source,
   * in `sort` order), `entry` (one of them, or none) its resolved entry,
   * into a history that holds nothing of the key (a restore, in bulk).
   */
  load(mappings: readonly Update[], entry: Update | undefined): void {
    if (mappings.length === 1) {
      // Most keys: no slot to look up.
      const u = mappings[0]
      this.put(u, undefined, undefined, this.source(u.source_id), entry)
      return
    }
    // The entry goes in last, so that the slot ends as it would have grown.
    for (const u of mappings) if (u !== entry) this.put(u, this.slots.get(u.key), undefined, this.source(u.source_id), undefined)
    if (entry !== undefined) this.put(entry, this.slots.get(entry.key), undefined, this.source(entry.source_id), entry)
  }

  /**
   * @internal Load in bulk: between `loadInBulk(true)` and `loadInBulk(false)`,
   * `put` appends to the logs in whatever order mappings come, and nothing
   * is forgotten past `max_history`; `loadInBulk(false)` sorts each log once by
   * version, then forgets the oldest past `max_history` as writes in
   * version order would have. Nothing may read the logs in between (a
   * restore into an empty history).
   */
  loadInBulk(on: boolean): void {
    if (on) {
      this.bulk = true
      return
    }
    if (!this.bulk) return
    this.bulk = false
    for (const log of this.sources.values()) {
      if (sortByVersion(log.updates)) log.samples.length = 0
    }
    if (this.max_history === Infinity) return
    // Every indexed mapping, oldest first, as the fifo of writes in that order.
    const fifo: Update[] = []
    for (const log of this.sources.values()) {
      const updates = log.updates
      for (let i = 0; i < updates.length; i++) if (updates[i].version > log.floor) fifo.push(updates[i])
    }
    if (this.sources.size > 1) sortByVersion(fifo)
    this.fifo = fifo
    this.fifoHead = 0
    if (this.length > this.max_history) this.compact()
  }

  /**
   * @internal Forget `u`, a current mapping, with nothing of its source in
   * its place (a delete covered it, or it is a collected delete); `entry`
   * is the key's resolved entry afterwards. Emits `'forget'` `(u)`.
   */
  drop(u: Update, entry: Update | undefined): void {
    this.memoKey = null
    this.writeCount++
    const key = u.key
    const slot = this.slots.get(key)
    if (slot === undefined) return
    const tracks = this.tracksResolved
    const before = resolvedOf(slot)
    if (!(slot instanceof Slot)) {
      if (slot !== u) return
      if (tracks && entry !== undefined) {
        const s = new Slot()
        s.resolved = entry
        this.slots.set(key, s)
      } else this.slots.delete(key)
    } else {
      if (slot.mappings.get(u.source_id) !== u) return
      slot.mappings.delete(u.source_id)
      if (tracks) slot.resolved = entry
      const only = slot.mappings.size === 1 ? (slot.mappings.values().next().value as Update) : undefined
      if (slot.mappings.size === 0 && slot.resolved === undefined) this.slots.delete(key)
      else if (only !== undefined && (tracks ? slot.resolved === only : true)) this.slots.set(key, only)
    }
    if (tracks && before !== entry) this.recount(before, entry)
    this.retire(u)
    if (this.listenerCount('forget') > 0) this.emit('forget', u)
  }

  private slotOf(other: Update | undefined, update: Update, resolved: Update | undefined): Slot {
    const s = new Slot()
    if (other !== undefined) s.mappings.set(other.source_id, other)
    s.mappings.set(update.source_id, update)
    s.resolved = this.tracksResolved ? resolved : undefined
    return s
  }

  /** True if `u` is still its source's current mapping of its key. */
  isCurrent(u: Update): boolean {
    const slot = this.slots.get(u.key)
    return slot === u || (slot instanceof Slot && slot.mappings.get(u.source_id) === u)
  }

  /**
   * The mappings the logs remember (those not yet forgotten past
   * `max_history`), in `sort` order. A new array at each read.
   */
  get memory(): Update[] {
    const out: Update[] = []
    for (const log of this.sources.values()) {
      for (const u of log.updates) if (this.isCurrent(u)) out.push(u)
    }
    return out.sort(this.sort)
  }

  /**
   * Every current mapping of source `id` with a version above `version`, in
   * increasing version order; at most `limit` of them.
   */
  news(id: string, version: number, limit = Infinity): Update[] {
    const log = this.sources.get(id)
    const out: Update[] = []
    if (log === undefined || log.live === 0 || limit <= 0) return out
    if (version < log.floor) return this.scan(id, version, limit)
    const updates = log.updates
    const from = find(log, version)
    // No replaced entries in the log: all of it is current, the answer is a slice.
    if (log.dead === 0) {
      return limit >= updates.length - from ? updates.slice(from) : updates.slice(from, from + Math.ceil(limit))
    }
    for (let i = from; i < updates.length && out.length < limit; i++) {
      const u = updates[i]
      if (this.isCurrent(u)) out.push(u)
    }
    return out
  }

  /** The update of `id` at exactly `version` still in its log, current or not. */
  at(id: string, version: number): Update | undefined {
    const log = this.sources.get(id)
    if (log === undefined) return undefined
    const updates = log.updates
    const i = find(log, version) - 1
    return i >= 0 && updates[i].version === version ? updates[i] : undefined
  }

  /** How many updates of `id` above `version` wait to be sent (an upper bound). */
  waiting(id: string, version: number): number {
    const log = this.sources.get(id)
    if (log === undefined) return 0
    if (version < log.floor) return log.live
    return log.updates.length - find(log, version)
  }

  // The slow, complete answer for versions the log has forgotten.
  private scan(id: string, version: number, limit: number): Update[] {
    const found: Update[] = []
    for (const slot of this.slots.values()) {
      const u = mappingOf(slot, id)
      if (u !== undefined && u.version > version) found.push(u)
    }
    found.sort(byVersion)
    if (found.length > limit) found.length = limit
    return found
  }

  // `previous` was replaced by a newer mapping of its source.
  private retire(previous: Update): void {
    const log = this.sources.get(previous.source_id) as SourceLog
    log.live--
    if (previous.version <= log.floor) return
    this.length--
    log.dead++
    // Sweep when replaced entries outnumber current ones: amortised O(1).
    if (log.dead > 32 && log.dead * 2 > log.updates.length) this.sweep(log)
  }

  private sweep(log: SourceLog): void {
    const updates = log.updates
    let j = 0
    for (let i = 0; i < updates.length; i++) {
      const u = updates[i]
      if (this.isCurrent(u)) updates[j++] = u
    }
    updates.length = j
    log.samples.length = 0
    log.dead = 0
  }

  // Forget the oldest indexed entries, down to three quarters of the bound,
  // so that a full history does not compact on every write.
  private compact(): void {
    const target = this.max_history - Math.floor(this.max_history / 4)
    const fifo = this.fifo
    const memory: Update[] = []
    const cut = new Map<SourceLog, number>()
    let remaining = this.length
    // The fifo comes in runs of one source, mostly in its log's order: the
    // run's log, its new floor and where that ends in the log are kept
    // here, and written to `cut` when the run ends.
    let last: SourceLog | null = null
    let lastFloor = -Infinity
    let lastEnd = 0
    let moved = false
    for (let i = this.fifoHead; i < fifo.length && remaining > target; i++) {
      const u = fifo[i]
      if (last === null || last.id !== u.source_id) {
        if (moved) cut.set(last as SourceLog, lastFloor)
        last = this.sources.get(u.source_id) as SourceLog
        lastFloor = cut.get(last) ?? last.floor
        lastEnd = find(last, lastFloor)
        moved = false
      }
      const log: SourceLog = last
      if (u.version <= lastFloor) continue
      const updates = log.updates
      // u is usually the entry right after the floor.
      const end =
        updates[lastEnd] === u && (lastEnd + 1 === updates.length || updates[lastEnd + 1].version > u.version)
          ? lastEnd + 1
          : find(log, u.version)
      // Found in a log without replaced entries, u is current: no slot lookup.
      if (!(log.dead === 0 && end > 0 && updates[end - 1] === u) && !this.isCurrent(u)) continue
      // Forgetting u forgets every entry of its source up to u.version.
      const from = lastEnd
      if (log.dead === 0) {
        // No replaced entries in the log: all of the range is current.
        for (let j = from; j < end; j++) memory.push(updates[j])
        remaining -= end - from
      } else {
        for (let j = from; j < end; j++) {
          const v = updates[j]
          if (this.isCurrent(v)) {
            memory.push(v)
            remaining--
          }
        }
      }
      lastFloor = u.version
      lastEnd = end
      moved = true
    }
    if (moved) cut.set(last as SourceLog, lastFloor)
    if (memory.length === 0) return
    this.emit('compaction', memory, this)
    for (const [log, floor] of cut) {
      const updates = log.updates
      const end = find(log, floor)
      let dead = 0
      if (log.dead > 0) for (let j = 0; j < end; j++) if (!this.isCurrent(updates[j])) dead++
      updates.splice(0, end)
      log.samples.length = 0
      log.dead -= dead
      log.floor = floor
    }
    this.length = remaining
    this.trimFifo()
  }

  private trimFifo(): void {
    const fifo = this.fifo
    let head = this.fifoHead
    while (head < fifo.length) {
      const u = fifo[head]
      const log = this.sources.get(u.source_id) as SourceLog
      if (u.version > log.floor && this.isCurrent(u)) break
      head++
    }
    // Drop the consumed prefix, and replaced entries when they dominate.
    if (head > 1024 && head * 2 > fifo.length) {
      fifo.splice(0, head)
      head = 0
    }
    if (fifo.length - head > 2 * this.length + 1024) {
      this.fifo = fifo.slice(head).filter((u) => this.isCurrent(u))
      head = 0
    }
    this.fifoHead = head
  }
}
