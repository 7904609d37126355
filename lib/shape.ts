/**
 * Routing by shape, and the refusal of everything else.
 *
 * `classify` reads each field of an incoming object exactly once (a getter
 * cannot show one value to the check and another to the store) into a
 * reading of its own, which the caller keeps as long as it needs: nothing
 * is shared between calls. A reader of many updates (an exchange) may hand
 * in a reading it owns, which an update's fields then fill in place of a
 * new one: the reader keeps it until its next call.
 */

import type { InvalidCode } from './codes'
import type { Filter, LateReport, StaleNotice, Update } from './types'
import { MAX_ID_LENGTH, MAX_KEY_LENGTH, Refused, admitValue } from './value'

/** The kinds of object a gossip stream accepts. */
export const enum Kind {
  Invalid,
  /** `{key, value, source_id, version}`: a delta from a peer. */
  Update,
  /** `{key, value}`: a local write. */
  Local,
  /** `{digest: true, source_id | id, version}`. */
  Digest,
  /** `{digest: true, done: true}`. */
  Done,
}

/**
 * Keys and source ids that would be dangerous on a plain object: '__proto__',
 * 'constructor', 'prototype'. Compared inline, guarded by length, rather than
 * through a Set, which would hash every key on the hot path.
 */
function isReserved(s: string): boolean {
  return s.length >= 9 && s.length <= 11 && (s === '__proto__' || s === 'prototype' || s === 'constructor')
}

/** An update as read from a peer, its value not yet admitted (see value.ts). */
export interface UpdateReading {
  readonly kind: Kind.Update
  readonly key: string
  readonly value: unknown
  readonly source_id: string
  readonly version: number
  /** A tombstone. */
  readonly deleted: boolean
  /** A withdrawal. */
  readonly withdrawn: boolean
  /** A copy issued again: the version first issued (see Update.first), else undefined. */
  readonly first: number | undefined
}

/** An update reading its owner lets `classify` fill (see the module's comment). */
export type UpdateFields = { -readonly [K in keyof UpdateReading]: UpdateReading[K] }

/** An empty reading for {@link classify} to fill. */
export function updateFields(): UpdateFields {
  return { kind: Kind.Update, key: '', value: null, source_id: '', version: 0, deleted: false, withdrawn: false, first: undefined }
}

/**
 * The protocol this release speaks, said on every hello, on every digest's
 * first entry and on its end. 1:
 * releases before `first` (they said nothing); a peer below this one is
 * refused (docs/wire.md, "Protocol").
 */
export const PROTOCOL = 2

/** A digest's end as read, each optional field checked (see DigestDone). */
export interface DoneReading {
  readonly kind: Kind.Done
  /** The sender's protocol (1: it said none, or not a number). */
  readonly protocol: number
  /** It answers a question. */
  readonly reply: boolean
  /** The sender's allowed rate (flow control), if any. */
  readonly rate: number | undefined
  /** It names the sources after `after` through `through` (ids), when it is a part. */
  readonly after: string | undefined
  readonly through: string | undefined
  /** The sender's horizon (see DigestDone.horizon). */
  readonly horizon: number | undefined
  /** Stale notices, checked (see DigestDone.stale). */
  readonly stale: Map<string, StaleNotice> | undefined
  /** Values refused as late (see DigestDone.late). */
  readonly late: LateReport[] | undefined
  /** With `stale` or `late` under signatures: who signed them, the signature and the nonce. */
  readonly noticeBy: string | undefined
  readonly noticeSignature: string | undefined
  readonly noticeNonce: string | undefined
  /** The sender cannot vouch for its copy of its own id (see DigestDone.recovering). */
  readonly recovering: boolean
  /** The sender's own id, while it asks for its past (see DigestDone.past). */
  readonly past: string | undefined
  /** The sources whose suspects the sender leaves out of its answers (true: every one; see DigestDone.withheld). */
  readonly withheld: true | ReadonlySet<string> | undefined
  /** Sources' lives the sender knows (see DigestDone.lives). */
  readonly lives: Map<string, Life> | undefined
  /** Under signatures: the sender's nonce, which a stale notice to it must sign. */
  readonly nonce: string | undefined
  /** Updates the sender holds that we lack. */
  readonly behind: number | undefined
  /** The sender's stream takes no updates. */
  readonly refuses: boolean
  /** The sender's stream sends no updates. */
  readonly silent: boolean
  /** The sender's stream filter, checked. */
  readonly filter: Filter | undefined
  /** Twinned sources and their milliseconds (see DigestDone.twins), checked. */
  readonly twins: Map<string, number> | undefined
}

/** A digest entry as read. */
export interface DigestReading {
  readonly kind: Kind.Digest
  readonly source_id: string
  readonly version: number
  /** The sender's protocol, on a digest's first entry (1 when not a number); absent: none said. */
  readonly protocol: number | undefined
}

/** What `classify` made of an object: one of the four shapes, or why it is none. */
export type Reading =
  | UpdateReading
  | { readonly kind: Kind.Local; readonly key: string; readonly value: unknown }
  | DigestReading
  | DoneReading
  | { readonly kind: Kind.Invalid; readonly reason: string; readonly code: InvalidCode }

function refuse(code: InvalidCode, reason: string): Reading {
  return { kind: Kind.Invalid, reason, code }
}

/**
 * Where a store object given to `new Gossip(id, config, store)` keeps the
 * node's record of deletes (JSON text; see docs/deletes.md, "Restarts"):
 * keys starting with "\u0000" are reserved, so no write uses it.
 */
export const RECORD_KEY = '\u0000simple-scuttle'

/**
 * The highest version accepted from a peer. Versions are Lamport clocks, so
 * one near the top of the safe integers would leave every node that saw it
 * unable to write; this keeps room for 2^32 more writes.
 */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER - 2 ** 32

/** Versions are Lamport clock readings: non-negative integers up to MAX_VERSION. */
export function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_VERSION
}

/**
 * A key as the node holds it: a string as it is, a finite number as its
 * string form (as an object's keys are), anything else unchanged (and then
 * refused by {@link badName}).
 */
export function keyOf(k: unknown): unknown {
  return typeof k === 'number' && Number.isFinite(k) ? String(k) : k
}

/**
 * A key or source id: a non-empty string, safe as an object key, no longer
 * than MAX_KEY_LENGTH (keys) or MAX_ID_LENGTH (ids), without NUL or an
 * unpaired surrogate. The one check of every entry: set, delete, a stream,
 * the wire, a store read back.
 */
export function badName(what: string, s: unknown): string | null {
  if (typeof s !== 'string') return what === 'key' ? 'key must be a string or a finite number' : `${what} must be a string`
  if (s.length === 0) return `${what} must not be empty`
  const max = what === 'key' ? MAX_KEY_LENGTH : MAX_ID_LENGTH
  if (s.length > max) return `${what} is longer than ${max} characters`
  if (isReserved(s)) return `${what} "${s}" is reserved`
  // Anywhere in a key or id, not only first: a store object keeps the
  // node's own entries under keys starting with one (RECORD_KEY), stores
  // join key and id with one, and no command line can carry one.
  if (s.includes('\u0000')) return `${what} holds NUL ("\\u0000"), which is reserved (the node's own store entries start with it)`
  // SQLite and the wire keep text as UTF-8, which has no lone surrogate: a
  // key holding one would come back changed (and fail its checksum).
  if (!wellFormed(s)) return `${what} holds an unpaired UTF-16 surrogate, which UTF-8 cannot carry`
  return null
}

// With the u flag, a surrogate matches only when unpaired.
const LONE_SURROGATE = /[\ud800-\udfff]/u
// String.prototype.isWellFormed (Node 20, recent browsers) is native and
// fast; the regular expression stands in elsewhere.
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s)

/**
 * Sorts an object into one of the four shapes, or refuses it with a
 * reason. Never throws. An update is read into `into`, when given.
 */
export function classify(o: unknown, into?: UpdateFields): Reading {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    return refuse('shape', 'not an update or a digest object')
  }
  try {
    return classifyObject(o as Record<string, unknown>, into)
  } catch {
    return refuse('shape', 'object could not be read')
  }
}

// The end of a digest; its optional fields, read once.
function done(o: Record<string, unknown>): Reading {
  const rate = o.rate
  const after = o.after
  const through = o.through
  if ((after !== undefined && typeof after !== 'string') || (through !== undefined && typeof through !== 'string')) {
    return refuse('digest', 'after and through must be source ids')
  }
  const horizon = o.horizon
  const behind = o.behind
  const filter = o.filter
  if (filter !== undefined) {
    const bad = filterProblem(filter)
    if (bad !== null) return refuse('digest', bad)
  }
  return {
    kind: Kind.Done,
    protocol: typeof o.protocol === 'number' && Number.isSafeInteger(o.protocol) ? o.protocol : 1,
    reply: o.reply === true,
    rate: typeof rate === 'number' && rate === rate ? rate : undefined,
    after,
    through,
    horizon: isVersion(horizon) ? horizon : undefined,
    stale: staleOf(o.stale),
    late: lateOf(o.late),
    noticeBy: typeof o.notice_by === 'string' ? o.notice_by : undefined,
    noticeSignature: typeof o.notice_signature === 'string' && o.notice_signature.length <= 1024 ? o.notice_signature : undefined,
    noticeNonce: nonceOf(o.notice_nonce),
    recovering: o.recovering === true,
    past: typeof o.past === 'string' && badName('source_id', o.past) === null ? o.past : undefined,
    withheld: withheldOf(o.withheld),
    lives: livesOf(o.lives),
    nonce: nonceOf(o.nonce),
    behind: typeof behind === 'number' && Number.isSafeInteger(behind) && behind >= 0 ? behind : undefined,
    refuses: o.accepts === false,
    silent: o.sends === false,
    filter: filter as Filter | undefined,
    twins: twinsOf(o.twins),
  }
}

// Lives: source ids to a life's floor, or [floor, held]; anything else is left out.
function livesOf(f: unknown): Map<string, Life> | undefined {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return undefined
  const out = new Map<string, Life>()
  for (const id of Object.keys(f)) {
    if (out.size >= MAX_NOTICES) break
    const v: unknown = (f as Record<string, unknown>)[id]
    if (badName('source_id', id) !== null) continue
    if (isVersion(v)) out.set(id, [v, -Infinity])
    else if (Array.isArray(v) && v.length === 2 && isVersion(v[0]) && isVersion(v[1])) out.set(id, [v[0], v[1]])
  }
  return out.size === 0 ? undefined : out
}

// Twinned sources: ids to milliseconds within TWIN_OFFER_MS; anything else is left out.
function twinsOf(f: unknown): Map<string, number> | undefined {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return undefined
  const out = new Map<string, number>()
  for (const id of Object.keys(f)) {
    if (out.size >= MAX_TWINS) break
    const ms: unknown = (f as Record<string, unknown>)[id]
    if (badName('source_id', id) === null && typeof ms === 'number' && ms > 0 && ms <= TWIN_OFFER_MS) out.set(id, ms)
  }
  return out.size === 0 ? undefined : out
}

/** Why `f` is not a {@link Filter} (lists of names, bounded), or null. */
export function filterProblem(f: unknown): string | null {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return 'filter must be an object'
  for (const field of ['prefixes', 'sources', 'exclude_sources'] as const) {
    const list: unknown = (f as Record<string, unknown>)[field]
    if (list === undefined) continue
    if (!Array.isArray(list) || list.length > MAX_FILTER) return `filter.${field} must be a list of at most ${MAX_FILTER} strings`
    for (const x of list) {
      if (typeof x !== 'string' || x.length > (field === 'prefixes' ? MAX_KEY_LENGTH : MAX_ID_LENGTH)) {
        return `filter.${field} must hold strings no longer than keys or ids`
      }
    }
  }
  return null
}

/**
 * What the signature of a digest end's stale notices and late reports
 * covers, as the update a `Security` signs: an empty key (no update can
 * carry one, so the signature is never an update's), the receiver's nonce,
 * the notices as sorted `[source, gc, named]` lists (`[source, gc, named,
 * floor]` with a floor, `[..., floor, held]` with both) and the late reports as
 * sent; the signer as source.
 */
export function noticeUpdate(
  by: string,
  nonce: string,
  stale: ReadonlyMap<string, StaleNotice> | undefined,
  late: readonly LateReport[] | undefined,
): Update {
  const notices =
    stale === undefined
      ? []
      : [...stale.keys()].sort().map((id) => {
          const [gc, named, floor, held] = stale.get(id) as StaleNotice
          // (Without a floor, the bytes of earlier releases.)
          return floor === undefined ? [id, gc, named] : held === undefined ? [id, gc, named, floor] : [id, gc, named, floor, held]
        })
  return { key: '', value: [nonce, notices, late ?? []], source_id: by, version: 0 }
}

const nonceOf = (n: unknown): string | undefined => (typeof n === 'string' && n.length <= 64 ? n : undefined)

const MAX_FILTER = 256
/** How long, in ms, a source stays twinned after the last sign of it (see Replica.twinned). */
export const TWIN_OFFER_MS = 60_000
/** Most twinned sources a digest end's `twins` names; more are left out. */
export const MAX_TWINS = 16

/**
 * A source's current life begun without state: its first version (floor),
 * and how far it holds its past whole (held; -Infinity: none of it).
 */
export type Life = readonly [floor: number, held: number]

/** Most entries a digest end's `stale` or `late` carries; more are left out. */
export const MAX_NOTICES = 256

// Stale notices: source ids to [gc, named] with named < gc; anything else
// is left out (a notice only makes the receiver refetch a source).
function staleOf(f: unknown): Map<string, StaleNotice> | undefined {
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return undefined
  const out = new Map<string, StaleNotice>()
  for (const id of Object.keys(f)) {
    if (out.size >= MAX_NOTICES) break
    const v = (f as Record<string, unknown>)[id]
    if (badName('source_id', id) !== null || !Array.isArray(v) || v.length < 2 || v.length > 4) continue
    const [gc, named, floor, held] = v as unknown[]
    if (!isVersion(gc) || !isVersion(named) || named >= gc) continue
    // A floor above the gc says nothing of what the markers replaced (rule 6).
    if (!isVersion(floor) || floor > gc) out.set(id, [gc, named])
    else out.set(id, isVersion(held) ? [gc, named, floor, held] : [gc, named, floor])
  }
  return out.size === 0 ? undefined : out
}

// Sources a peer withholds: a list of ids; `true`, or a list that is not
// one (or too long), withholds every source.
function withheldOf(w: unknown): true | ReadonlySet<string> | undefined {
  if (w === undefined || w === false) return undefined
  if (!Array.isArray(w) || w.length > MAX_NOTICES) return true
  if (w.length === 0) return undefined
  for (const id of w) if (badName('source_id', id) !== null) return true
  return new Set(w as string[])
}

// Late reports: [source, version, key] (or, from earlier releases, [source, version]), bounded; anything else left out.
function lateOf(l: unknown): LateReport[] | undefined {
  if (!Array.isArray(l)) return undefined
  const out: LateReport[] = []
  for (let i = 0; i < l.length && out.length < MAX_NOTICES; i++) {
    const p: unknown = l[i]
    if (!Array.isArray(p) || (p.length !== 2 && p.length !== 3)) continue
    const [id, v, key] = p as unknown[]
    if (badName('source_id', id) !== null || !isVersion(v)) continue
    if (p.length === 2) out.push([id as string, v])
    else if (badName('key', key) === null) out.push([id as string, v, key as string])
  }
  return out.length === 0 ? undefined : out
}

function classifyObject(o: Record<string, unknown>, into: UpdateFields | undefined): Reading {
  const digest = o.digest
  if (digest === true) {
    if (o.done === true) return done(o)
    let source_id = o.source_id
    if (source_id === undefined) source_id = o.id
    const bad = badName('source_id', source_id)
    if (bad !== null) return refuse('source_id', bad)
    const version = o.version
    if (!isVersion(version)) return refuse('digest', 'digest version must be an integer from 0 to MAX_VERSION')
    const protocol = o.protocol
    // -0 is 0
    return { kind: Kind.Digest, source_id: source_id as string, version: version + 0, protocol: protocol === undefined ? undefined : typeof protocol === 'number' && Number.isSafeInteger(protocol) ? protocol : 1 }
  }
  if (digest !== undefined && digest !== false) return refuse('shape', 'digest must be true')

  let key = o.key
  if (typeof key === 'number') key = keyOf(key)
  const badKey = badName('key', key)
  if (badKey !== null) return refuse('key', badKey)
  const value = o.value
  if (value === undefined) return refuse('value', 'value is missing')
  const source_id = o.source_id
  const version = o.version
  const deleted = o.deleted
  const withdrawn = o.withdrawn
  if (deleted !== undefined && deleted !== true && deleted !== false) return refuse('shape', 'deleted must be true')
  if (withdrawn !== undefined && withdrawn !== true && withdrawn !== false) return refuse('shape', 'withdrawn must be true')
  if (deleted === true && withdrawn === true) return refuse('shape', 'an update is a delete or a withdrawal, not both')
  if (source_id === undefined && version === undefined) {
    // A local delete comes through gossip.delete(key), not a stream.
    return deleted === true || withdrawn === true
      ? refuse('shape', 'a local write cannot be a delete or a withdrawal')
      : { kind: Kind.Local, key: key as string, value }
  }
  // A reading handed in holds the last source id that passed (or ''):
  // updates come in runs of one source.
  const badSource = into !== undefined && source_id === into.source_id && source_id !== '' ? null : badName('source_id', source_id)
  if (badSource !== null) return refuse('source_id', badSource)
  if (!isVersion(version)) return refuse('version', 'version must be an integer from 0 to MAX_VERSION')
  const first = o.first
  if (first !== undefined && !(isVersion(first) && first < version)) return refuse('version', 'first must be an integer from 0 to below version')
  if (into === undefined) {
    return {
      kind: Kind.Update,
      key: key as string,
      value,
      source_id: source_id as string,
      version: version + 0, // -0 is 0
      deleted: deleted === true,
      withdrawn: withdrawn === true,
      first: first === undefined ? undefined : first + 0,
    }
  }
  into.key = key as string
  into.value = value
  into.source_id = source_id as string
  into.version = version + 0
  into.deleted = deleted === true
  into.withdrawn = withdrawn === true
  into.first = first === undefined ? undefined : first + 0
  return into
}

/**
 * A validated, frozen copy of an update read from a snapshot, a store or a
 * file: the same checks and limits as an update from a peer.
 * @throws TypeError naming `where` and what is wrong.
 */
export function checkedUpdate(u: unknown, where: string): Update {
  const r = classify(u)
  if (r.kind !== Kind.Update) throw new TypeError(`${where} holds an invalid update: ${r.kind === Kind.Invalid ? r.reason : 'not an update'}`)
  const { key, source_id, version, deleted, withdrawn, first } = r
  const marker = deleted || withdrawn
  // A withdrawal keeps the version it names (R6).
  const value = withdrawn ? (isVersion(r.value) ? r.value : null) : marker ? null : admitValue(r.value, true)
  if (value instanceof Refused) throw new TypeError(`${where} holds an invalid update: value ${value.reason}`)
  // Keep a signature, so that relaying the restored update stays verifiable.
  let signature: unknown
  try {
    signature = (u as Update).signature
  } catch {
    signature = undefined
  }
  const copy: Update = typeof signature === 'string' ? { key, value, source_id, version, signature } : { key, value, source_id, version }
  const kind: Update = deleted ? { ...copy, deleted: true as const } : withdrawn ? { ...copy, withdrawn: true as const } : copy
  return Object.freeze(first === undefined ? kind : { ...kind, first })
}

/**
 * A saved clock reading (a snapshot's version or reserved versions) within
 * MAX_VERSION: beyond it the clock would soon pass the integers a double
 * holds exactly, and two writes could share a version. (Versions ahead of
 * this machine's clock are taken: after its clock went back, a node
 * continues above what it saved.)
 * @throws TypeError naming `where`.
 */
export function checkReading(version: unknown, where: string): void {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version > MAX_VERSION) {
    throw new TypeError(`${where} must be an integer up to MAX_VERSION (${MAX_VERSION}), not ${String(version)}`)
  }
}
