/**
 * One connection of a TCP node to a peer: its session, and what the node
 * keeps of the peer as its messages pass the session's gate (see
 * `lib/wire/gate.ts`): whether it answers our questions, how far it holds
 * our own writes, whether only heartbeats moved, and how fast it
 * introduces new members.
 *
 * @packageDocumentation
 */
import type * as net from 'net'
import type { Duplex } from 'readable-stream'
import type { InvalidCode } from '../codes'
import type { Gossip } from '../gossip'
import { HEARTBEAT_PREFIX, isMembershipKey, MEMBER_PREFIX, type Membership } from '../membership'
import { Kind, type DoneReading, type Reading } from '../shape'
import type { GateObserver } from '../wire/gate'
import type { Session } from '../wire/session'
import type { LogLevel, NodeStats } from './types'

/** What a connection needs of its node. */
export interface ConnectionHost {
  readonly gossip: Gossip
  readonly membership: Membership | null
  /** The node's counters, which its connections add to. */
  readonly counters: NodeStats
  /** New members one peer may introduce per interval, and the interval (ms). */
  readonly memberRate: number
  readonly interval: number
  /** Called with each digest's number of entries, sent or received (the metrics' histogram). */
  readonly onDigest: ((direction: 'sent' | 'received', entries: number) => void) | null
  log(line: string, level?: LogLevel): void
  /** Log a line a peer causes once per connection, of `kind`: bounded per window (LogBudget). */
  say(kind: string, line: string, level?: LogLevel): void
  count(code: InvalidCode): void
  /** The peer answered one of the node's questions. */
  answeredBy(c: Connection): void
  checkSynced(): void
}

/** One connection to a peer (see the module's comment). */
export class Connection implements GateObserver {
  /** Invalid inputs from it so far (see `NodeOptions.maxInvalid`). */
  invalid = 0
  /** A version too far ahead from it was logged (see Reports.invalid). */
  aheadSaid = false
  /** A value refused as late from it was logged (see Reports.invalid). */
  lateSaid = false
  /** Sources whose versions far ahead it brought were logged (see Reports.ahead). */
  aheadOf: Set<string> | null = null
  /** Our questions this peer has not answered (a digest marked reply answers), and whether it ever answered one. */
  unanswered = 0
  answered = false
  /**
   * When the peer last ended a digest (a question or a reply), or else when
   * it connected: a live node's link is heard from every few intervals, and
   * a fresh one has not yet had the time to go quiet (see Twins.admit).
   */
  heardAt = Date.now()
  /** Called once, when the peer next ends a digest (a twin probe waits on it, see Twins.admit). */
  onHeard: (() => void) | null = null
  /** When the oldest of our unanswered questions was asked. */
  askedAt = 0
  // New members this peer may still introduce (a token bucket), and the
  // sources whose updates wait for a later exchange in this message.
  private memberTokens: number
  private memberRefilled = Date.now()
  private readonly held = new Set<string>()
  // A new member it introduced waited (said once per connection).
  private memberSaid = false
  /** Its last whole digest named no source, though this node holds some. */
  claimsNothing = false
  // Updates other than heartbeats moved either way since the peer's last
  // reply, and at the reply before (see quiet).
  private moved = 0
  /** Nothing but membership's writes moved either way at its last reply. */
  quiet = false
  // When our output to this peer started waiting (-1: it moves).
  private stalledSince = -1
  closed = false
  // Entries of the digest coming in, and of the one going out.
  private entriesIn = 0
  private entriesOut = 0
  // The version of our own id this peer named in its digest coming in.
  private ownNamed = -Infinity
  /** The version of our own id its last digest named (-Infinity: none), and whether one ended at all. */
  ownHeld = -Infinity
  /**
   * The highest version of our own id sent to it (an update). Only what it
   * was sent and then named shows it holds our writes: a digest is a claim,
   * and naming our versions costs a peer nothing (it reads them in ours).
   */
  ownSent = -Infinity
  /** Our own writes up to here were asked for: a digest of its named our id below them (it lacked some). */
  ownAsked = -Infinity
  digested = false
  /**
   * The highest version of the peer's own id it delivered (an update) that
   * this node did not hold yet, and when a digest of its covering its own
   * id last ended (0: never): a live node writes (heartbeats, at least
   * every interval) and sends its writes first, so a link that delivered
   * none since another node with its id started holds no evidence of a
   * live twin (see Twins.admit, docs/twins.md). A version it merely named
   * in a digest, or sent after this node held it, is none: an echo of what
   * this node told it costs a squatter nothing.
   */
  selfShown = -Infinity
  selfHeardAt = 0
  // The peer sent anything past its hello (a digest or an update).
  private spoke = false
  /** Transport bytes already counted in the node's stats. */
  countedIn = 0
  countedOut = 0
  readonly opened = Date.now()
  session!: Session
  /** Of a connection we dialed: its dialer (stopped when the address is this node's own). */
  dialer: { readonly address: { host: string; port: number }; stop(): void } | null = null

  constructor(
    private readonly host: ConnectionHost,
    /** Bytes to and from the peer: the TCP socket, or a WebSocket's stream. */
    readonly transport: Duplex | net.Socket,
    readonly address: string,
    readonly direction: 'in' | 'out',
    readonly kind: 'tcp' | 'ws',
    /** Ends the connection at once, or once what was written is sent. */
    readonly kill: () => void,
    readonly end: () => void,
  ) {
    this.memberTokens = host.memberRate
  }

  /**
   * Why the node drops it at `now`, or null: no hello within `timeout` ms
   * of connecting, or not reading what we send for as long (its buffers are
   * bounded, but it would hold them, and our streams, for good). Called on
   * every tick: it notes when the peer stopped reading.
   */
  overdue(now: number, timeout: number): { code: 'timeout' | 'stalled'; reason: string } | null {
    if (this.peer === null && now - this.opened >= timeout) return { code: 'timeout', reason: `no hello within ${now - this.opened} ms` }
    // A hello without a nonce (a node before sessions, or any socket) that
    // then says nothing held its slot for good: the same bound.
    if (!this.spoke && this.peer !== null && this.session.peerHello?.nonce === undefined && now - this.opened >= timeout) {
      return { code: 'timeout', reason: `nothing since its hello within ${now - this.opened} ms (a hello without a nonce)` }
    }
    const stream = this.session.stream
    if (this.transport.writableNeedDrain || stream.readableLength >= stream.readableHighWaterMark) {
      if (this.stalledSince < 0) this.stalledSince = now
      else if (now - this.stalledSince >= timeout) return { code: 'stalled', reason: `not reading for ${now - this.stalledSince} ms` }
    } else {
      this.stalledSince = -1
    }
    return null
  }

  /** The peer's id once its hello was accepted, else null. */
  get peer(): string | null {
    return this.session?.isOpen === true ? this.session.peerId : null
  }

  /** What we send it, counted (once the session opened). */
  sent(m: { digest?: unknown; done?: unknown; key?: unknown; source_id?: unknown; version?: unknown }): void {
    const host = this.host
    if (m.digest !== true) {
      host.counters.updatesSent++
      if (m.source_id === host.gossip.id && typeof m.version === 'number' && m.version > this.ownSent) this.ownSent = m.version
      if (typeof m.key !== 'string' || !isMembershipKey(m.key)) this.moved++
    } else if (m.done !== true) this.entriesOut++
    else {
      host.onDigest?.('sent', this.entriesOut)
      this.entriesOut = 0
    }
  }

  entry(source_id: string, version: number): void {
    this.entriesIn++
    if (source_id === this.host.gossip.id) this.ownNamed = version
  }

  done(r: DoneReading, taken: boolean): void {
    const host = this.host
    this.spoke = true
    this.heardAt = Date.now()
    const heard = this.onHeard
    this.onHeard = null
    heard?.()
    this.held.clear()
    if (r.reply) {
      this.unanswered = 0
      // Quiet: nothing but heartbeats moved since the reply before.
      this.quiet = this.moved === 0
      this.moved = 0
      host.answeredBy(this)
      host.checkSynced()
    } else if (taken) {
      host.counters.answered++
    }
    if (taken) {
      host.onDigest?.('received', this.entriesIn)
      const gossip = host.gossip
      // A whole digest naming no source while this node holds some: the
      // peer takes nothing it is sent (or has just come).
      if (r.after === undefined && r.through === undefined) this.claimsNothing = this.entriesIn === 0 && gossip.history.sources.size > 0
      // What the peer holds of ours, if this digest (or part) covers our id.
      const own = gossip.id
      if ((r.after === undefined || own > r.after) && (r.through === undefined || own <= r.through)) {
        this.ownHeld = this.ownNamed
        this.digested = true
        const max = gossip.history.sources.get(own)?.max ?? -Infinity
        if (this.ownNamed < max && max > this.ownAsked) this.ownAsked = max
      }
      const peer = this.peer
      if (peer !== null && (r.after === undefined || peer > r.after) && (r.through === undefined || peer <= r.through)) {
        this.selfHeardAt = this.heardAt
      }
    }
    this.entriesIn = 0
    this.ownNamed = -Infinity
  }

  update(r: Reading): boolean {
    this.spoke = true
    this.host.counters.updatesReceived++
    const key = r.kind === Kind.Update || r.kind === Kind.Local ? r.key : undefined
    if (key === undefined || !isMembershipKey(key)) this.moved++
    // (Read before the update is applied: a version held already came from another link, or from here.)
    if (r.kind === Kind.Update && r.source_id === this.peer && r.version > this.selfShown && r.version > (this.host.gossip.history.sources.get(r.source_id)?.max ?? -Infinity)) this.selfShown = r.version
    return r.kind !== Kind.Update || this.memberAdmitted(r.source_id, r.key)
  }

  dropped(count: number): void {
    const host = this.host
    host.counters.digestsDropped++
    if (count === 1 || count % 1000 === 0) {
      host.say('digests_dropped', `peer ${this.peer ?? this.address}: digests past ${this.session.gate.limits.digestRate}/s dropped unanswered (${count} so far)`, 'warn')
    }
  }

  // A new member (its record or heartbeat, of an id not tracked yet) heard
  // from a peer other than itself: it takes one of the peer's member tokens
  // (memberRate per interval), and it may not fill the last eighth of
  // maxMembers, kept for members heard from themselves, so that forged
  // members relayed by one peer cannot keep a real node out. Without room,
  // it and the rest of its source's updates in this message wait for a
  // later exchange (a source's updates come in version order, and a gap
  // would never be asked for again).
  private memberAdmitted(source: string, key: string): boolean {
    if (this.held.has(source)) return false
    const host = this.host
    const m = host.membership
    if (m === null || source === this.peer) return true
    const prefix = key.startsWith(MEMBER_PREFIX) ? MEMBER_PREFIX : key.startsWith(HEARTBEAT_PREFIX) ? HEARTBEAT_PREFIX : null
    // Only a member's own record and heartbeat count for membership.
    if (prefix === null || key.slice(prefix.length) !== source || m.member(source) !== undefined) return true
    const now = Date.now()
    const rate = host.memberRate
    this.memberTokens = Math.min(rate, this.memberTokens + ((now - this.memberRefilled) / host.interval) * rate)
    this.memberRefilled = now
    const counts = m.counts()
    const room = counts.live + counts.dead - 1 < m.maxMembers - Math.max(1, Math.floor(m.maxMembers / 8))
    if (room && this.memberTokens >= 1) {
      this.memberTokens -= 1
      return true
    }
    this.held.add(source)
    host.count('member')
    if (this.memberSaid) return false
    this.memberSaid = true
    host.say(
      'member',
      room
        ? `peer ${this.peer}: introduces new members faster than ${rate} per interval; the rest wait for later exchanges (said once per connection) [member]`
        : `peer ${this.peer}: introduces new members into the last eighth of maxMembers (${m.maxMembers}), kept for members heard from themselves; they wait [member]`,
      'warn',
    )
    return false
  }

  /**
   * How far it holds our own writes, as far as this node can tell: what it
   * asked for, was sent, and named in a digest since (see ownSent). A peer
   * that names them unasked (it echoes our digest, or a twin's versions of
   * our id pass ours) shows nothing; one that takes them and drops them
   * cannot be told apart.
   */
  get ownReceived(): number {
    return Math.min(this.ownHeld, this.ownSent, this.ownAsked)
  }

  /** In sync: its last exchange found the same versions of every source, or moved nothing but membership's writes, with what was missing small enough to have gone whole in it. */
  get synced(): boolean {
    const stream = this.session.stream
    if (stream.synced) return true
    return this.quiet && stream.behind.them + stream.behind.us < this.host.gossip.mtu
  }
}
