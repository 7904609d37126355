/**
 * The mappings a node holds, indexed the way Scuttlebutt asks for them:
 * per source, in version order.
 *
 * The state (key -> current update) is the truth. Each source's log is an
 * index over the state's entries from that source, sorted by version, so
 * that `news(id, version)` is a binary search plus a walk: O(log n + k).
 * An entry replaced in the state stays in its log until the log is swept
 * (lazy deletion keeps replacement O(1)); walks skip it.
 *
 * `max_history` bounds how many entries the logs index. Past it the oldest
 * are forgotten, after a `'compaction'` event, and the source's `floor`
 * rises: a question about versions below the floor is answered from the
 * state instead, which is slower but complete.
 */
import { EventEmitter } from 'events'
import * as sorted from 'sorted-array-functions'
import type { Update } from './types'

/** What one node knows of one source. */
export class SourceLog {
  /** Remembered entries of this source, ascending by version. */
  readonly updates: Update[] = []
  /**
   * @internal A prefix of `updates`' versions (`versions[i] ===
   * updates[i].version`), extended when a search needs it: a search of a
   * large log then misses the cache once, not at every object it probes.
   */
  readonly versions: number[] = []
  /** Entries at or below this version have been forgotten by the log. */
  floor = -Infinity
  /** Highest version of this source the node has seen, applied or not. */
  max = -Infinity
  /** How many of the state's entries come from this source. */
  live = 0
  /** Replaced entries still in `updates`. */
  dead = 0

  constructor(readonly id: string) {}
}

function byVersion(a: Update, b: Update): -1 | 0 | 1 {
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0
}

// The index of the first version above `version` (log.length if none). One
// source's versions are nearly dense, so the search guesses by
// interpolation, gallops from the guess to bracket the answer and bisects
// the bracket: O(log n) at worst, two probes for dense versions (in a large
// log each probe is a cache miss, so their number is the cost).
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
// `versions` over all of its entries and searches those.
function find(log: SourceLog, version: number): number {
  const updates = log.updates
  const n = updates.length
  if (n === 0 || !(updates[n - 1].version > version)) return n
  if (updates[0].version > version) return 0
  const versions = log.versions
  for (let i = versions.length; i < n; i++) versions.push(updates[i].version)
  return aboveVersion(versions, version)
}

/**
 * Events: `'update'` `(update)` for every applied update, local or remote;
 * `'compaction'` `(memory, history)` just before `memory`, the oldest
 * entries, are forgotten by the logs.
 */
export class History extends EventEmitter {
  /** The current mapping of every key. */
  readonly state = new Map<string, Update>()
  /** Per-source logs, by source id. */
  readonly sources = new Map<string, SourceLog>()
  /** Entries the logs index that are still current. */
  length = 0
  readonly max_history: number

  /**
   * @internal A key whose current entry the node looked up just before
   * calling `resolve`, and that entry: `resolve`'s `get` then needs no
   * second lookup. Any write clears it.
   */
  _memoKey: string | null = null
  /** @internal */
  _memoEntry: Update | undefined = undefined

  // Insertion order of indexed entries, for forgetting the oldest; only
  // kept when max_history is finite.
  private fifo: Update[] = []
  private fifoHead = 0

  constructor(max_history = Infinity) {
    super()
    if (!(max_history >= 1)) throw new RangeError('max_history must be at least 1')
    this.max_history = max_history
  }

  /** The log of `id`, created on first use. */
  source(id: string): SourceLog {
    let log = this.sources.get(id)
    if (log === undefined) {
      log = new SourceLog(id)
      this.sources.set(id, log)
    }
    return log
  }

  /**
   * Record an update as the current mapping of its key, unconditionally
   * (deciding whether it should win is the node's `resolve`), and emit
   * `'update'`. Returns the stored update.
   */
  write(key: string, value: unknown, source_id: string, version: number): Update {
    return this.record({ key, value, source_id, version })
  }

  /** {@link write} for an update object the caller built and will not mutate. */
  record(update: Update): Update {
    return this._put(update, this.state.get(update.key), this.source(update.source_id))
  }

  /**
   * @internal {@link record} for a caller that already looked up the key's
   * current entry (`previous`) and the source's log: the node's hot path
   * saves those lookups. Clears `_memoKey`.
   */
  _put(update: Update, previous: Update | undefined, log: SourceLog): Update {
    this._memoKey = null
    this.state.set(update.key, update)
    if (previous !== undefined) this.retire(previous)

    log.live++
    if (update.version > log.max) log.max = update.version
    if (update.version > log.floor) {
      const updates = log.updates
      const n = updates.length
      if (n === 0 || updates[n - 1].version <= update.version) updates.push(update)
      else {
        sorted.add(updates, update, byVersion)
        // Entries from the new one's place on moved: the prefix ends there.
        const versions = log.versions
        let k = versions.length
        while (k > 0 && versions[k - 1] >= update.version) k--
        versions.length = k
      }
      this.length++
      if (this.max_history !== Infinity) {
        this.fifo.push(update)
        if (this.length > this.max_history) this.compact()
        else if (this.fifo.length - this.fifoHead > 2 * this.length + 1024) this.trimFifo()
      }
    }
    if (this.listenerCount('update') > 0) this.emit('update', update)
    return update
  }

  /**
   * Every current update of source `id` with a version above `version`, in
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
    const state = this.state
    for (let i = from; i < updates.length && out.length < limit; i++) {
      const u = updates[i]
      if (state.get(u.key) === u) out.push(u)
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
    for (const u of this.state.values()) {
      if (u.source_id === id && u.version > version) found.push(u)
    }
    found.sort(byVersion)
    if (found.length > limit) found.length = limit
    return found
  }

  // `previous` was replaced in the state.
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
    const state = this.state
    const updates = log.updates
    let j = 0
    for (let i = 0; i < updates.length; i++) {
      const u = updates[i]
      if (state.get(u.key) === u) updates[j++] = u
    }
    updates.length = j
    log.versions.length = 0
    log.dead = 0
  }

  // Forget the oldest indexed entries, down to three quarters of the bound,
  // so that a full history does not compact on every write.
  private compact(): void {
    const target = this.max_history - Math.floor(this.max_history / 4)
    const fifo = this.fifo
    const state = this.state
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
      // Found in a log without replaced entries, u is current: no state lookup.
      if (!(log.dead === 0 && end > 0 && updates[end - 1] === u) && state.get(u.key) !== u) continue
      // Forgetting u forgets every entry of its source up to u.version.
      const from = lastEnd
      if (log.dead === 0) {
        // No replaced entries in the log: all of the range is current.
        for (let j = from; j < end; j++) memory.push(updates[j])
        remaining -= end - from
      } else {
        for (let j = from; j < end; j++) {
          const v = updates[j]
          if (state.get(v.key) === v) {
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
      if (log.dead > 0) for (let j = 0; j < end; j++) if (state.get(updates[j].key) !== updates[j]) dead++
      updates.splice(0, end)
      const versions = log.versions
      if (versions.length > end) versions.splice(0, end)
      else versions.length = 0
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
      if (u.version > log.floor && this.state.get(u.key) === u) break
      head++
    }
    // Drop the consumed prefix, and replaced entries when they dominate.
    if (head > 1024 && head * 2 > fifo.length) {
      fifo.splice(0, head)
      head = 0
    }
    if (fifo.length - head > 2 * this.length + 1024) {
      const state = this.state
      this.fifo = fifo.slice(head).filter((u) => state.get(u.key) === u)
      head = 0
    }
    this.fifoHead = head
  }
}
