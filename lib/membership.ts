/**
 * Cluster membership and failure detection, built on a {@link Gossip} node
 * through its public API only: each node advertises itself in keys of its
 * own, and a phi-accrual failure detector (Hayashibara et al., "The phi
 * accrual failure detector", SRDS 2004, as Cassandra's gossiper and
 * Quickwit's chitchat use it) watches the heartbeats of every other node.
 *
 * What a node writes (only ever its own two keys, as its own source):
 * - `member/<id>`: its record, `{address, started, meta}`: where peers reach
 *   it, when this incarnation started (ms since the epoch: a restart writes a
 *   new one) and metadata of the application's (a JSON object);
 * - `heartbeat/<id>`: a counter it rewrites every `interval` ms. Gossip keeps
 *   one mapping per source and key, so heartbeats never grow the history:
 *   each is one key rewritten, and carried like any other mapping.
 *
 * A mapping of `member/<id>` or `heartbeat/<id>` counts only when its source
 * is `<id>`: another node writing those keys under its own id is ignored.
 * (Without `config.security`, a peer can still forge updates *as* `<id>`;
 * see docs/operations.md, "Membership and failure detection", for what that can and cannot do.)
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'events'
import { reportInvalid } from './codes'
import type { Gossip } from './gossip'
import type { Update } from './types'
import { MAX_ID_LENGTH, jsonProblem } from './value'

/** Longest metadata accepted by default, in characters of JSON (MembershipOptions.maxMetaLength). */
export const MAX_META_LENGTH = 4096

/** Prefix of the key holding a member's record: `member/<id>`. */
export const MEMBER_PREFIX = 'member/'
/** Prefix of the key holding a member's heartbeat counter: `heartbeat/<id>`. */
export const HEARTBEAT_PREFIX = 'heartbeat/'

/** Whether `key` is one of the keys membership writes (`member/…` or `heartbeat/…`). */
export function isMembershipKey(key: string): boolean {
  return key.startsWith(MEMBER_PREFIX) || key.startsWith(HEARTBEAT_PREFIX)
}

/** A member is `live` while its heartbeats keep arriving, `dead` otherwise. */
export type MemberStatus = 'live' | 'dead'

/** A member as this node sees it (a snapshot: it does not change afterwards). */
export interface Member {
  /** Its source id. */
  readonly id: string
  /** True for this node itself (always live). */
  readonly self: boolean
  /**
   * `live` once this node has seen its heartbeat advance, until the failure
   * detector's phi passes the threshold; `dead` otherwise (a member only
   * heard of, through a record relayed by others, is dead until its
   * heartbeat advances: it may be long gone).
   */
  readonly status: MemberStatus
  /** The address it advertises, or null (none, or its record was refused). */
  readonly address: string | null
  /** When its current incarnation started, ms since the epoch (by its clock), or null. */
  readonly started: number | null
  /** Its metadata, or null. */
  readonly meta: Readonly<Record<string, unknown>> | null
  /** Its heartbeat counter as last heard, or null. */
  readonly heartbeat: number | null
  /** Milliseconds since its heartbeat last advanced here (`now()` units), or null if it has not since this node watched. */
  readonly lastHeard: number | null
  /** The detector's suspicion now: -log10 of the chance that a live member stays this long silent. */
  readonly phi: number
  /** The mean interval between its heartbeats' arrivals here, ms, or null before the first. */
  readonly interval: number | null
  /** When it entered its status (`now()` time). */
  readonly since: number
}

/** Options of {@link Membership}. */
export interface MembershipOptions {
  /** The address this node advertises (`host:port`), or null. Default null. */
  address?: string | null
  /** Metadata this node advertises: a JSON object. Default `{}`. */
  meta?: Record<string, unknown>
  /** Milliseconds between this node's heartbeats. Default 1000. */
  interval?: number
  /**
   * The phi above which a member is declared dead. Default 8 (Cassandra's):
   * if the gaps between a live member's heartbeats have tails no heavier
   * than an exponential's of the same mean, the chance that it is declared
   * dead during one gap is at most 10^-threshold.
   */
  threshold?: number
  /**
   * Milliseconds a member stays dead before it is collected: dropped from
   * the member list, reported with `'collected'`, its record and heartbeat
   * deleted (see docs/guide.md, "Deletes"). Default 24 hours.
   */
  grace?: number
  /**
   * The gap assumed before a member's first one is measured, ms: the
   * detector's first sample. Default 5 × `interval` (gaps grow with loss:
   * under 50% loss they average about 5 intervals).
   */
  initialInterval?: number
  /**
   * Gaps longer than this are not sampled (a pause, not a rate), ms; nor is
   * the gap across a restart. Default 60 × `interval`. It must stay well
   * above the longest gaps of a live member: leaving real gaps out lowers
   * the mean and raises the rate of mistakes past what the threshold says.
   */
  maxInterval?: number
  /** How many recent gaps the detector averages. Default 1000. */
  window?: number
  /**
   * Most members tracked besides this node. Past it, a dead member (the one
   * dead longest) is collected early to make room, and when every tracked
   * member is live, a new one is refused with `'invalid'`. Default 1024.
   */
  maxMembers?: number
  /** Longest metadata accepted, in characters of JSON (ours and peers'). Default 4096. */
  maxMetaLength?: number
  /** Milliseconds between failure-detector checks. Default `interval` / 2. */
  checkInterval?: number
  /** The clock, in ms. Default `Date.now`. Inject one to run on simulated time. */
  now?: () => number
}

/**
 * The phi-accrual detector of one member: the mean of the recent intervals
 * between heartbeat arrivals, and phi(t) = -log10 P(a gap lasts longer than
 * t), for exponentially distributed gaps of that mean (Cassandra's model,
 * as in chitchat): phi = t / (mean × ln 10). Tails of real gaps (a period
 * plus geometric losses and small delays) are lighter than the exponential's,
 * which makes the threshold's promise conservative.
 */
export class PhiAccrual {
  private readonly samples: Float64Array
  private count = 0
  private next = 0
  private sum = 0
  /** When the last heartbeat arrived, or null. */
  last: number | null = null

  /**
   * @param window - how many recent gaps to average.
   * @param initialInterval - the gap assumed before the first one is measured.
   * @param maxInterval - longer gaps are not sampled (a pause, not a rate).
   */
  constructor(
    readonly window: number,
    readonly initialInterval: number,
    readonly maxInterval: number,
  ) {
    this.samples = new Float64Array(window)
  }

  /**
   * A heartbeat arrived at time `now`. `sample` false: the gap since the
   * last one is not the member's rate (it restarted in between); `cap`: the
   * gap is sampled as at most this long (it was declared dead at `cap`).
   */
  heartbeat(now: number, sample = true, cap = Infinity): void {
    if (this.last === null) this.add(this.initialInterval)
    else if (sample) {
      const gap = Math.min(now - this.last, cap)
      if (gap >= 0 && gap <= this.maxInterval) this.add(gap)
    }
    this.last = now
  }

  private add(gap: number): void {
    if (this.count === this.window) this.sum -= this.samples[this.next]
    else this.count++
    this.samples[this.next] = gap
    this.sum += gap
    this.next = (this.next + 1) % this.window
    // Recompute now and then, so rounding errors do not pile up.
    if (this.next === 0) {
      let s = 0
      for (let i = 0; i < this.count; i++) s += this.samples[i]
      this.sum = s
    }
  }

  /** The mean gap, or null before any heartbeat. */
  get mean(): number | null {
    return this.count === 0 ? null : this.sum / this.count
  }

  /** Suspicion at time `now`: 0 before any heartbeat. */
  phi(now: number): number {
    const mean = this.mean
    if (this.last === null || mean === null) return 0
    const t = Math.max(0, now - this.last)
    return t / (Math.max(mean, 1e-9) * Math.LN10)
  }

  /** Forget every sample (a member declared dead starts afresh when it comes back). */
  reset(): void {
    this.count = 0
    this.next = 0
    this.sum = 0
    this.last = null
  }
}

// What this node tracks of another member.
interface Tracked {
  readonly id: string
  status: MemberStatus
  since: number
  address: string | null
  started: number | null
  meta: Readonly<Record<string, unknown>> | null
  heartbeat: number | null
  // Version of the heartbeat mapping last taken (-Infinity: none yet).
  beatVersion: number
  // Its record named a new incarnation since its last heartbeat.
  restarted: boolean
  // How long it had been silent when it was declared dead.
  deadAfter: number
  readonly detector: PhiAccrual
}

interface Record_ {
  address: string | null
  started: number | null
  meta: Readonly<Record<string, unknown>> | null
}

const DAY = 24 * 60 * 60 * 1000
/** Heartbeats between two writes of a node's own record. */
export const READVERTISE = 30
const MAX_ADDRESS_LENGTH = 300

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/** A record as advertised: `{address, started, meta}`, or why it is refused. */
function readRecord(value: unknown, maxMetaLength: number): Record_ | string {
  if (!isPlainObject(value)) return 'record is not an object'
  const { address, started, meta } = value as { address?: unknown; started?: unknown; meta?: unknown }
  if (address !== undefined && address !== null && (typeof address !== 'string' || address.length > MAX_ADDRESS_LENGTH)) {
    return `record address must be a string of at most ${MAX_ADDRESS_LENGTH} characters`
  }
  if (started !== undefined && started !== null && !(typeof started === 'number' && Number.isFinite(started))) {
    return 'record started must be a number'
  }
  if (meta !== undefined && meta !== null) {
    if (!isPlainObject(meta)) return 'record meta must be an object'
    const length = JSON.stringify(meta).length
    if (length > maxMetaLength) return `record meta is ${length} characters of JSON, over ${maxMetaLength}`
  }
  return {
    address: (address as string | null | undefined) ?? null,
    started: (started as number | null | undefined) ?? null,
    meta: (meta as Record<string, unknown> | null | undefined) ?? null,
  }
}

function positive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new TypeError(`membership: ${name} must be a positive number`)
  return v
}

/**
 * Membership of a {@link Gossip} node's cluster: this node's own record and
 * heartbeat, and every other member's status by a phi-accrual failure
 * detector over the arrivals of its heartbeats.
 *
 * Events:
 * - `'live'` `(member)`: a member's heartbeat advanced while it was dead (or
 *   only heard of); `member.started` tells a new incarnation from an old one;
 * - `'dead'` `(member)`: its phi passed the threshold;
 * - `'restart'` `(member, previousStarted)`: its record names a new incarnation
 *   (the same id started again): the same member, coming back;
 * - `'collected'` `(member, deleted)`: dead for `grace` ms, dropped from
 *   the list, and its record and heartbeat deleted from the gossip state
 *   (`deleted` true); or evicted early, keys kept (`deleted` false), when
 *   more than `maxMembers` are tracked. A newer heartbeat makes it a member
 *   again;
 * - `'invalid'` `(id, reason, code)`: a record or heartbeat of `id` that was
 *   refused (`member_record`), a member past `maxMembers` (`members_full`),
 *   or a write or listener that failed (`node_error`).
 *
 * ```ts
 * const m = new Membership(gossip, { address: '127.0.0.1:7001', interval: 1000 })
 * m.on('dead', (member) => console.log(member.id, 'is dead'))
 * m.start()
 * m.members() // [{id, status: 'live' | 'dead', address, heartbeat, ...}]
 * ```
 */
export class Membership extends EventEmitter {
  /** The node. */
  readonly gossip: Gossip
  /** Milliseconds between heartbeats. */
  readonly interval: number
  /** Phi above which a member is dead. */
  readonly threshold: number
  /** Milliseconds a dead member is kept before it is collected. */
  readonly grace: number
  /** Most other members tracked. */
  readonly maxMembers: number
  /** Longest metadata, characters of JSON. */
  readonly maxMetaLength: number
  private readonly initialInterval: number
  private readonly maxInterval: number
  private readonly window: number
  private readonly checkInterval: number
  private readonly now: () => number
  private readonly tracked = new Map<string, Tracked>()
  private address: string | null
  private meta: Readonly<Record<string, unknown>>
  private started: number
  private beats = 0
  private recordLost = false
  private lastBeat: number | null = null
  private timers: ReturnType<typeof setInterval>[] = []
  private readonly listener: (u: Update) => void

  /**
   * Watches `gossip` from now on; call {@link start} to advertise this node
   * and heartbeat on timers (or drive {@link beat} and {@link check} yourself).
   * Members the node already holds (restored from a snapshot or a store) are
   * listed as dead until their heartbeats advance.
   * @throws TypeError for a bad option.
   */
  constructor(gossip: Gossip, options: MembershipOptions = {}) {
    super()
    this.gossip = gossip
    this.interval = positive('interval', options.interval ?? 1000)
    this.threshold = positive('threshold', options.threshold ?? 8)
    const grace = options.grace ?? DAY
    if (typeof grace !== 'number' || !(grace >= 0)) throw new TypeError('membership: grace must be a number of ms, 0 or more')
    this.grace = grace
    this.initialInterval = positive('initialInterval', options.initialInterval ?? 5 * this.interval)
    this.maxInterval = positive('maxInterval', options.maxInterval ?? 60 * this.interval)
    const window = options.window ?? 1000
    if (!(Number.isSafeInteger(window) && window >= 1 && window <= 1e6)) throw new TypeError('membership: window must be an integer from 1 to 1000000')
    this.window = window
    const maxMembers = options.maxMembers ?? 1024
    if (!(Number.isSafeInteger(maxMembers) && maxMembers >= 1)) throw new TypeError('membership: maxMembers must be a positive integer')
    this.maxMembers = maxMembers
    const maxMeta = options.maxMetaLength ?? MAX_META_LENGTH
    if (!(Number.isSafeInteger(maxMeta) && maxMeta >= 2)) throw new TypeError('membership: maxMetaLength must be an integer of at least 2')
    this.maxMetaLength = maxMeta
    this.checkInterval = positive('checkInterval', options.checkInterval ?? this.interval / 2)
    const now = options.now ?? Date.now
    if (typeof now !== 'function') throw new TypeError('membership: now must be a function')
    this.now = now
    this.address = this.checkAddress(options.address ?? null)
    this.meta = this.checkMeta(options.meta ?? {})
    this.started = this.now()

    this.listener = (u: Update) => {
      // A listener that threw would make the node refuse the update.
      try {
        this.heard(u)
      } catch (err) {
        reportInvalid(this, u.source_id, `membership failed on ${u.key}: ${(err as Error)?.message}`, 'node_error')
      }
    }
    gossip.history.on('update', this.listener)
    // What the node already holds: members heard of, dead until they beat.
    const self = gossip.id
    for (const id of [...gossip.history.sources.keys()]) {
      if (id === self) {
        const own = gossip.history.mapping(id, HEARTBEAT_PREFIX + id)?.value
        if (typeof own === 'number' && Number.isSafeInteger(own) && own >= 0) this.beats = own
        continue
      }
      const record = gossip.history.mapping(id, MEMBER_PREFIX + id)
      const beat = gossip.history.mapping(id, HEARTBEAT_PREFIX + id)
      if (record !== undefined) this.heard(record)
      if (beat !== undefined) this.heard(beat)
    }
  }

  /** This node's id. */
  get id(): string {
    return this.gossip.id
  }

  /**
   * Advertise this node (its record, a first heartbeat) and start the timers:
   * a heartbeat every `interval`, a check every `checkInterval`. Timers do
   * not keep a Node process alive. Calling it again does nothing.
   */
  start(): void {
    if (this.timers.length > 0) return
    this.started = this.now()
    this.advertise()
    this.beat()
    const every = (ms: number, f: () => void) => {
      const t = setInterval(f, ms)
      ;(t as { unref?: () => void }).unref?.()
      this.timers.push(t)
    }
    every(this.interval, () => this.beat())
    every(this.checkInterval, () => this.check())
  }

  /** Stop heartbeating and checking, and stop watching the node. */
  stop(): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.gossip.history.off('update', this.listener)
  }

  /** Write this node's record (address, start, metadata) now. */
  advertise(): void {
    this.write(MEMBER_PREFIX + this.id, { address: this.address, started: this.started, meta: this.meta })
  }

  /**
   * Advertise new metadata (a JSON object of at most `maxMetaLength`
   * characters of JSON).
   * @throws TypeError for metadata that is not such an object.
   */
  setMeta(meta: Record<string, unknown>): void {
    this.meta = this.checkMeta(meta)
    this.advertise()
  }

  /**
   * Bump this node's heartbeat now: one key rewritten. Every
   * `READVERTISE` (30) beats the record is written again too, so that a
   * record of ours forged by a peer (without signatures, anyone can write
   * as anyone) does not stand for long.
   */
  beat(): void {
    this.beats++
    this.lastBeat = this.now()
    this.write(HEARTBEAT_PREFIX + this.id, this.beats)
    if (this.beats % READVERTISE === 0 || this.recordLost) {
      this.recordLost = false
      this.advertise()
    }
  }

  private write(key: string, value: unknown): void {
    try {
      this.gossip.set(key, value)
    } catch (err) {
      reportInvalid(this, this.id, `writing ${key} failed: ${(err as Error)?.message}`, 'node_error')
    }
  }

  /**
   * Run the failure detector now: a live member whose phi passed the
   * threshold is dead; a member dead for `grace` is collected.
   */
  check(): void {
    const now = this.now()
    for (const m of [...this.tracked.values()]) {
      if (m.status === 'live') {
        if (m.detector.phi(now) > this.threshold) {
          const view = this.view(m, now)
          m.deadAfter = now - (m.detector.last as number)
          m.status = 'dead'
          m.since = now
          // The samples stay (chitchat starts afresh instead): a live member
          // declared dead by mistake would otherwise be judged again on the
          // initial interval alone, and mistaken again and again.
          this.emit('dead', view)
        }
      } else if (now - m.since >= this.grace) {
        this.collect(m, now, true)
      }
    }
  }

  private collect(m: Tracked, now: number, pastGrace: boolean): void {
    this.tracked.delete(m.id)
    if (pastGrace) this.forget(m.id)
    this.emit('collected', this.view(m, now), pastGrace)
  }

  // A member dead past grace: its record and heartbeat are deleted (their
  // tombstones cover its mappings, and are collected in turn after
  // config.tombstone_grace), unless another node's delete came first. A
  // member evicted early to make room keeps its keys: a flood of fake
  // members must not make this node delete members that may come back.
  private forget(id: string): void {
    const history = this.gossip.history
    for (const key of [MEMBER_PREFIX + id, HEARTBEAT_PREFIX + id]) {
      if (history.mapping(id, key) === undefined) continue
      try {
        this.gossip.delete(key)
      } catch (err) {
        reportInvalid(this, id, `deleting ${key} failed: ${(err as Error)?.message}`, 'node_error')
      }
    }
  }

  /** Every member, this node included, by id. */
  members(): Member[] {
    const now = this.now()
    const out = [this.selfView(now)]
    for (const m of this.tracked.values()) out.push(this.view(m, now))
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** One member, or undefined if it is not tracked. */
  member(id: string): Member | undefined {
    const now = this.now()
    if (id === this.id) return this.selfView(now)
    const m = this.tracked.get(id)
    return m === undefined ? undefined : this.view(m, now)
  }

  /**
   * How many members are live and dead, this node included (it is live);
   * `unproven`: of the dead, those just learned of and never heard to beat,
   * within the first gap the detector assumes (`initialInterval`).
   */
  counts(): { live: number; dead: number; unproven: number } {
    let live = 1
    let dead = 0
    let unproven = 0
    const now = this.now()
    for (const m of this.tracked.values()) {
      if (m.status === 'live') live++
      else {
        dead++
        // Just learned of, never heard to beat: dead until proven live, but
        // not yet known dead (the first gap the detector assumes has not passed).
        if (m.detector.last === null && now - m.since < this.initialInterval) unproven++
      }
    }
    return { live, dead, unproven }
  }

  private selfView(now: number): Member {
    return Object.freeze({
      id: this.id,
      self: true,
      status: 'live' as const,
      address: this.address,
      started: this.started,
      meta: this.meta,
      heartbeat: this.beats,
      lastHeard: this.lastBeat === null ? null : now - this.lastBeat,
      phi: 0,
      interval: this.interval,
      since: this.started,
    })
  }

  private view(m: Tracked, now: number): Member {
    const d = m.detector
    return Object.freeze({
      id: m.id,
      self: false,
      status: m.status,
      address: m.address,
      started: m.started,
      meta: m.meta,
      heartbeat: m.heartbeat,
      lastHeard: d.last === null ? null : now - d.last,
      phi: d.phi(now),
      interval: d.mean,
      since: m.since,
    })
  }

  // A mapping was written to the node: ours to look at if it is a member's
  // own record or heartbeat.
  private heard(u: Update): void {
    const key = u.key
    let beat: boolean
    let id: string
    if (key.startsWith(HEARTBEAT_PREFIX)) {
      beat = true
      id = key.slice(HEARTBEAT_PREFIX.length)
    } else if (key.startsWith(MEMBER_PREFIX)) {
      beat = false
      id = key.slice(MEMBER_PREFIX.length)
    } else {
      return
    }
    // Our own record deleted by a node that took us for dead past grace:
    // written again with the next heartbeat.
    if (id === this.id && !beat && u.deleted === true) this.recordLost = true
    // Only a member's own mapping of its keys counts; our own we know.
    if (u.source_id !== id || id === this.id || u.deleted === true) return
    if (beat) this.heardBeat(id, u)
    else this.heardRecord(id, u)
  }

  private heardBeat(id: string, u: Update): void {
    const n = u.value
    if (!(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
      reportInvalid(this, id, 'heartbeat is not a non-negative integer', 'member_record')
      return
    }
    let m = this.tracked.get(id)
    if (m === undefined) {
      m = this.track(id)
      if (m === undefined) return
    }
    if (u.version <= m.beatVersion) return
    // The first heartbeat heard of a member proves nothing (it may be a
    // relay's copy of a long-dead node's last); one that advances does.
    const evidence = m.beatVersion !== -Infinity
    m.beatVersion = u.version
    m.heartbeat = n
    if (!evidence) return
    const now = this.now()
    // A gap that ended a death counts as long as it took to declare it: a
    // member back after a long silence (a partition, or forgeries) must not
    // make its next death slow to see; a live member declared dead by
    // mistake still teaches the detector that such gaps happen.
    m.detector.heartbeat(now, !m.restarted, m.status === 'dead' ? m.deadAfter : Infinity)
    m.restarted = false
    if (m.status === 'dead') {
      m.status = 'live'
      m.since = now
      this.emit('live', this.view(m, now))
    }
  }

  private heardRecord(id: string, u: Update): void {
    const record = readRecord(u.value, this.maxMetaLength)
    if (typeof record === 'string') {
      reportInvalid(this, id, record, 'member_record')
      return
    }
    let m = this.tracked.get(id)
    if (m === undefined) {
      m = this.track(id)
      if (m === undefined) return
    }
    const previous = m.started
    m.address = record.address
    m.started = record.started
    m.meta = record.meta === null ? null : Object.freeze(record.meta)
    if (previous !== null && record.started !== previous) {
      m.restarted = true
      this.emit('restart', this.view(m, this.now()), previous)
    }
  }

  // A new member, dead until its heartbeat advances; undefined when there is
  // no room (every tracked member live).
  private track(id: string): Tracked | undefined {
    if (id.length > MAX_ID_LENGTH) return undefined
    const now = this.now()
    if (this.tracked.size >= this.maxMembers) {
      let oldest: Tracked | undefined
      for (const m of this.tracked.values()) if (m.status === 'dead' && (oldest === undefined || m.since < oldest.since)) oldest = m
      if (oldest === undefined) {
        reportInvalid(this, id, `not tracked: already ${this.tracked.size} members, all live (maxMembers)`, 'members_full')
        return undefined
      }
      this.collect(oldest, now, false)
    }
    const m: Tracked = {
      id,
      status: 'dead',
      since: now,
      address: null,
      started: null,
      meta: null,
      heartbeat: null,
      beatVersion: -Infinity,
      restarted: false,
      deadAfter: Infinity,
      detector: new PhiAccrual(this.window, this.initialInterval, this.maxInterval),
    }
    this.tracked.set(id, m)
    return m
  }

  private checkAddress(address: unknown): string | null {
    if (address === null) return null
    if (typeof address !== 'string' || address.length > MAX_ADDRESS_LENGTH) {
      throw new TypeError(`membership: address must be a string of at most ${MAX_ADDRESS_LENGTH} characters, or null`)
    }
    return address
  }

  private checkMeta(meta: unknown): Readonly<Record<string, unknown>> {
    if (!isPlainObject(meta)) throw new TypeError('membership: meta must be a plain object')
    const problem = jsonProblem(meta)
    if (problem !== null) throw new TypeError(`membership: meta ${problem}`)
    const copy = JSON.parse(JSON.stringify(meta)) as Record<string, unknown>
    const length = JSON.stringify(copy).length
    if (length > this.maxMetaLength) throw new TypeError(`membership: meta is ${length} characters of JSON, over maxMetaLength (${this.maxMetaLength})`)
    return Object.freeze(copy)
  }
}
