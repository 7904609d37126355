/**
 * Scuttlebutt reconciliation (paper section 3.2): given a peer's digest,
 * choose the deltas it lacks, at most `mtu` of them.
 *
 * Every source's deltas leave in increasing version order and a source is
 * cut only at its newest end, so the receiver's max for a source never moves
 * past a version it does not hold. Which sources go first is the paper's
 * choice between scuttle-depth and scuttle-breadth.
 */
import type { Passes } from './filter'
import type { History, SourceLog } from './history'
import type { Comparator, Order, Update } from './types'

interface Wanted {
  readonly log: SourceLog
  readonly from: number
  /** Filled in by depth(), the only ordering that reads it (or by a filter). */
  waiting: number
  /** What passes a filter, when there is one. */
  list: Update[] | null
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = items[i]
    items[i] = items[j]
    items[j] = t
  }
}

/**
 * The part of the source ids a digest covers: the ids after `after` through
 * `through` (by string order); either end open when undefined. A digest too
 * long for one message is sent in parts that tile the ids, so that every
 * source is named within ceil(sources / part size) exchanges.
 */
export interface IdRange {
  readonly after: string | undefined
  readonly through: string | undefined
}

/** The whole id space: a digest sent whole. */
export const ALL: IdRange = Object.freeze({ after: undefined, through: undefined })

/** True if `id` falls in `range`. */
export function covers(range: IdRange, id: string): boolean {
  return (range.after === undefined || id > range.after) && (range.through === undefined || id <= range.through)
}

/**
 * What a peer whose digest is `digest` (source id -> the highest version it
 * holds) lacks: from each named source, what is above the version named;
 * from each source in `range` it did not name, everything. With a filter
 * (`passes`), every source is looked at: a filtered feed may have brought
 * mappings above what the source's max claims. Sources in `skip` are left
 * out whole (not a filter: the rest stays capped at each source's max).
 * Source `past` is looked at above its max too (see deltas).
 */
export function* lacking(
  history: History,
  digest: ReadonlyMap<string, number>,
  range: IdRange,
  passes: Passes = null,
  skip: ReadonlySet<string> | null = null,
  past: string | undefined = undefined,
): Generator<[SourceLog, number]> {
  const whole = range.after === undefined && range.through === undefined
  for (const log of history.sources.values()) {
    if (skip !== null && skip.has(log.id)) continue
    const named = digest.get(log.id)
    if (named === undefined && !whole && !covers(range, log.id)) continue
    const from = named === undefined ? -Infinity : named
    if (log.live === 0 || (passes === null && log.max <= from && log.id !== past)) continue
    yield [log, from]
  }
}

/**
 * A source's updates above `from`, oldest first, at most `limit`: those the
 * filter passes; without one, those up to the source's max (what a digest
 * of ours claims; a filtered feed may have brought more, with gaps below).
 */
export function newsOf(history: History, log: SourceLog, from: number, limit: number, passes: Passes, cap = Infinity): Update[] {
  if (passes === null) {
    const out = history.news(log.id, from, limit)
    const top = Math.min(log.max, cap)
    while (out.length > 0 && out[out.length - 1].version > top) out.pop()
    return out
  }
  const out: Update[] = []
  for (const u of history.news(log.id, from)) {
    if (u.version > cap) break
    if (passes(u.source_id, u.key)) out.push(u)
    if (out.length >= limit) break
  }
  return out
}

/**
 * The deltas to send a peer whose digest is `digest`, covering `range` and
 * passing `passes`, none of the sources in `skip`. At most `mtu`. Costs
 * O(sources) when the peer lacks nothing (unfiltered). Source `past`, the
 * peer's own id while it asks for its past, is sent as far as we hold it,
 * past its max (docs/deletes.md, rule 5).
 */
export function deltas(
  history: History,
  digest: ReadonlyMap<string, number>,
  mtu: number,
  order: Order,
  random: () => number,
  range: IdRange = ALL,
  passes: Passes = null,
  caps: ReadonlyMap<string, number> | null = null,
  skip: ReadonlySet<string> | null = null,
  past: string | undefined = undefined,
): Update[] {
  const wanted: Wanted[] = []
  for (const [log, from] of lacking(history, digest, range, passes, skip, past)) {
    const cap = caps?.get(log.id)
    if (cap !== undefined && cap <= from) continue
    if (log.id === past && passes === null && cap === undefined) {
      const list = history.news(log.id, from, mtu)
      if (list.length > 0) wanted.push({ log, from, waiting: list.length, list })
      continue
    }
    wanted.push({ log, from, waiting: 0, list: cap === undefined ? null : newsOf(history, log, from, mtu, passes, cap) })
  }
  if (wanted.length === 0) return []
  shuffle(wanted, random)
  if (passes !== null) {
    // Filtered: what waits is what passes; look at it once.
    for (const w of wanted) {
      w.list ??= newsOf(history, w.log, w.from, mtu, passes)
      w.waiting = w.list.length
    }
  } else if (caps !== null) {
    for (const w of wanted) if (w.list !== null) w.waiting = w.list.length
  }
  return order === 'breadth' ? breadth(history, wanted, mtu) : depth(history, wanted, mtu)
}

// scuttle-depth: sources with the most waiting first (stable sort keeps the
// shuffled order among ties); as many of each as fit.
function depth(history: History, wanted: Wanted[], mtu: number): Update[] {
  for (const w of wanted) if (w.list === null) w.waiting = history.waiting(w.log.id, w.from)
  wanted.sort((a, b) => b.waiting - a.waiting)
  let out: Update[] = []
  for (let i = 0; i < wanted.length && out.length < mtu; i++) {
    const w = wanted[i]
    const room = mtu - out.length
    let news = w.list ?? newsOf(history, w.log, w.from, room, null)
    if (news.length > room) news = news.slice(0, room)
    // newsOf() returns a fresh array: the first one is the answer's start.
    if (out.length === 0) out = news
    else for (let j = 0; j < news.length; j++) out.push(news[j])
  }
  return out
}

// scuttle-breadth: every source's oldest delta, then every source's second,
// and so on, sources in random order within a rank.
function breadth(history: History, wanted: Wanted[], mtu: number): Update[] {
  const lists = wanted.map((w) => w.list ?? newsOf(history, w.log, w.from, mtu, null))
  const out: Update[] = []
  for (let rank = 0; out.length < mtu; rank++) {
    let any = false
    for (let i = 0; i < lists.length && out.length < mtu; i++) {
      const list = lists[i]
      if (rank < list.length) {
        out.push(list[rank])
        any = true
      }
    }
    if (!any) break
  }
  return out
}

/**
 * An answer in `sort` order, as far as the protocol allows: each source's
 * updates keep their increasing versions (the receiver's max for a source
 * must only move past versions it holds), in the places `sort` gives that
 * source. An answer from one source is returned as it is.
 */
export function ordered(out: Update[], sort: Comparator): Update[] {
  const n = out.length
  if (n < 2) return out
  const first = out[0].source_id
  let i = 1
  while (i < n && out[i].source_id === first) i++
  if (i === n) return out
  const sorted = out.slice().sort(sort)
  // Each source's updates, in version order, fill that source's places.
  const queues = new Map<string, Update[]>()
  for (const u of out) {
    const q = queues.get(u.source_id)
    if (q === undefined) queues.set(u.source_id, [u])
    else q.push(u)
  }
  const taken = new Map<string, number>()
  for (let j = 0; j < n; j++) {
    const id = sorted[j].source_id
    const t = taken.get(id) ?? 0
    sorted[j] = (queues.get(id) as Update[])[t]
    taken.set(id, t + 1)
  }
  return sorted
}

// ---- mtu_bytes: messages bounded in bytes ---------------------------------

/**
 * The least `mtu_bytes` accepted: room for a digest's end naming two
 * source ids of MAX_ID_LENGTH characters that JSON must escape, the node's
 * own entry and one more (so a digest part always names a source), in half
 * a message.
 */
export const MIN_MTU_BYTES = 16 << 10

/** `config.mtu_bytes` checked: Infinity when not set. */
export function checkMtuBytes(v: unknown): number {
  if (v === undefined || v === Infinity) return Infinity
  if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= MIN_MTU_BYTES)) {
    throw new TypeError(`config.mtu_bytes must be an integer of at least ${MIN_MTU_BYTES} (bytes), or Infinity`)
  }
  return v
}

/** UTF-8 bytes of a string without lone surrogates (as JSON.stringify writes). */
function utf8Length(s: string): number {
  let n = s.length
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) n += 1
    else if (c >= 0xd800 && c <= 0xdbff) i++ // a pair: 2 units, 4 bytes
    else n += 2
  }
  return n
}

/**
 * The bytes of `message` on the wire: its NDJSON line (UTF-8, newline
 * included). The binary format never takes more (see lib/wire/binary.ts),
 * so this bounds both.
 */
export function messageBytes(message: unknown): number {
  return utf8Length(JSON.stringify(message)) + 1
}

// A source id as JSON text, quotes included, in bytes.
function idBytes(id: string): number {
  return utf8Length(JSON.stringify(id))
}

/** The bytes of the digest entry `{digest: true, source_id: id, version}`. */
export function entryBytes(id: string, version: number): number {
  // {"digest":true,"source_id":ID,"version":N}\n
  return 40 + idBytes(id) + String(version).length
}

// The bytes of a digest's end at most: with reply, protocol
// (`,"protocol":2`, here and on the first entry) and behind (counted to
// 1,000,000: `,"behind":1000000`), the rate when flow control is on (a
// number's text is at most 24 characters), after and through.
function doneBytes(after: string | undefined, through: string | undefined, flow: boolean): number {
  // {"digest":true,"done":true,"reply":true ... }\n
  return 84 + (flow ? 32 : 0) + (after === undefined ? 0 : 9 + idBytes(after)) + (through === undefined ? 0 : 11 + idBytes(through))
}

/**
 * Counts a digest's bytes against its budget: half of `mtu_bytes`, so that
 * a digest with its end fits beside any single update a node accepts
 * (`set` refuses one over the other half; see {@link oversize}).
 */
export class DigestMeter {
  /** The bytes counted so far: entries, the node's own entry and the end. */
  bytes = 0
  private entries = 0
  private after: string | undefined = undefined
  private readonly budget: number
  private readonly own: number

  /**
   * @param extra - bytes the digest's end may carry beyond its fixed fields
   *   (the delete logic's notices, see Deletes.EXTRA_BYTES).
   */
  constructor(
    mtuBytes: number,
    ownId: string,
    private readonly flow: boolean,
    extra = 0,
  ) {
    this.budget = Math.floor(mtuBytes / 2) - extra
    // The node's own entry, at the largest version it could name.
    this.own = entryBytes(ownId, MAX_VERSION_TEXT)
  }

  /** True if a whole digest of `sources` (all but `ownId`) fits; counts it. */
  whole(sources: Iterable<SourceLog>, ownId: string): boolean {
    let n = 0
    for (const log of sources) if (log.id !== ownId && log.max !== -Infinity) n += entryBytes(log.id, log.max)
    this.entries = n
    this.bytes = n + this.own + doneBytes(undefined, undefined, this.flow)
    return this.bytes <= this.budget
  }

  /** A part starts after `after`. */
  start(after: string | undefined): void {
    this.after = after
    this.entries = 0
    this.bytes = this.own + doneBytes(after, undefined, this.flow)
  }

  /**
   * Whether the part can also name `id` (at `version`; -Infinity: covered,
   * not named) and end there; counts it if so.
   */
  add(id: string, version: number): boolean {
    const entry = version === -Infinity ? 0 : entryBytes(id, version)
    const total = this.entries + entry + this.own + doneBytes(this.after, id, this.flow)
    if (total > this.budget) return false
    this.entries += entry
    this.bytes = total
    return true
  }
}

const MAX_VERSION_TEXT = Number.MAX_SAFE_INTEGER

/**
 * Why an update of `key` to `value` by `id` could not travel within
 * `mtuBytes`, or null: an update may take at most half of a message, the
 * rest being the digest's. Counts the largest version and, with signing,
 * an Ed25519 signature (88 characters).
 */
export function oversize(mtuBytes: number, id: string, key: string, value: unknown, signed: boolean): string | null {
  if (mtuBytes === Infinity) return null
  const bytes = messageBytes({ key, value, source_id: id, version: MAX_VERSION_TEXT }) + (signed ? 103 : 0)
  const max = Math.floor(mtuBytes / 2)
  if (bytes <= max) return null
  return `update of ${bytes} bytes on the wire is over half of mtu_bytes (${max} of ${mtuBytes}): it could never be sent`
}

/**
 * An answer (already chosen and ordered) cut to at most `budget` bytes on
 * the wire: updates are kept in order while they fit; once one of a source
 * does not, that source's later ones are left out too, so each source is
 * still cut only at its newest end (other sources may still fill the room).
 * Returns `out` itself when everything fits.
 */
export function cutToBytes(out: Update[], budget: number): Update[] {
  let used = 0
  let i = 0
  const n = out.length
  for (; i < n; i++) {
    const b = messageBytes(out[i])
    if (used + b > budget) break
    used += b
  }
  if (i === n) return out
  const kept = out.slice(0, i)
  const stopped = new Set<string>([out[i].source_id])
  for (i++; i < n; i++) {
    const u = out[i]
    if (stopped.has(u.source_id)) continue
    const b = messageBytes(u)
    if (used + b > budget) stopped.add(u.source_id)
    else {
      used += b
      kept.push(u)
    }
  }
  return kept
}
