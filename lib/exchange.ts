/**
 * The exchange with one peer (the paper's push-pull, section 3.1): what
 * the peer's digest named, our questions outstanding, whether the peer is
 * in sync, and the messages each message of the peer calls for:
 * `(state, message) -> messages out`. A stream drives it: it hands each
 * object the peer wrote to `take`, with the outbox the messages that go
 * back to the peer are pushed onto (the stream itself: its buffer says what
 * the peer has read); any outbox will do, so an exchange runs without a
 * stream (test/exchange.test.ts). The outbox is given per call, not kept:
 * pushing onto it allocates nothing, where returning each answer as an
 * array cost a sync of 50,000 keys 2.7% more instructions outside
 * compiling (5.1% in all; bench/instructions.ts, measured).
 *
 * A question is our digest and its end; the peer answers with the deltas
 * we lack, its own digest and its end, which we answer with the deltas it
 * lacks. Only a digest marked as a reply is not answered with ours, so
 * stray or repeated digests cannot ping-pong.
 *
 * Flow (docs/ALGORITHM.md, "Flow and backpressure"): every message of the
 * peer is taken in at once, whether or not the peer reads what we send; what
 * it calls for goes out while the stream's buffer is below its high-water
 * mark, and is owed otherwise: one record per stream (how many questions
 * wait for their reply, and the peer's newest digest), paid one answer at
 * a time as the peer reads.
 */
import type { Deletes } from './deletes'
import type { StreamLike } from './markers'
import { behind, digestEnd, MAX_HEARD, named, sameDigest, writeDigest, type DigestPeer } from './digest'
import { both, compileFilter, type Passes } from './filter'
import { overflowed, type FlowControl } from './flow'
import type { SourceLog } from './history'
import type { PastPeer } from './incarnation'
import { ALL, cutToBytes, deltas, ordered, type IdRange } from './reconcile'
import type { FillCursor } from './fills'
import { aheadReason, type Sender } from './intake'
import type { Replica } from './replica'
import { reportInvalid } from './codes'
import { classify, Kind, PROTOCOL, updateFields, type DoneReading, type Reading } from './shape'
import type { Comparator, Filter, Message, Order, StreamOptions, Update } from './types'

/** What an exchange needs of its node. */
export interface ExchangeNode {
  readonly replica: Replica
  readonly flow: FlowControl | null
  /** Deltas per exchange. */
  readonly mtu: number
  /** Most bytes of a message; Infinity when unbounded. */
  readonly mtuBytes: number
  readonly order: Order
  readonly random: () => number
  readonly sort: Comparator
  /** Whether the node signs its writes (`config.security`). */
  readonly signed: boolean
  /** Whether streams take `{key, value}` as local writes unless told otherwise. */
  readonly localWrites: boolean
  /** Before our digest names our own max: admit what flow control lets through. */
  pump(): void
  /** Every open exchange of the node. */
  exchanges(): Iterable<Exchange>
  /** An exchange found its peer in sync: the node is once every exchange is. */
  peerSynced(): void
  /** A local write (`{key, value}`) that came through `ex`. */
  writeLocal(ex: Exchange, chunk: unknown, key: string, value: unknown): void
}

/**
 * Where the messages an exchange sends its peer go, given with each call:
 * the stream that carries them, or any sink. Its length against its
 * high-water mark is what the peer has not read yet: at the mark, what a
 * message calls for is owed, not pushed (see the module's comment).
 */
export interface Outbox {
  push(m: Message): boolean
  readonly readableLength: number
  readonly readableHighWaterMark: number
}

/** Where an exchange reports its events (`'invalid'`, `'sync'`), and whether its peer is gone: the stream, for its listeners. */
export interface ExchangeEvents {
  emit(event: string | symbol, ...args: unknown[]): boolean
  readonly destroyed: boolean
}

/** One peer's exchange with the node (see the module's comment). */
export class Exchange implements DigestPeer, Sender, PastPeer, FillCursor, StreamLike {
  /** False: we send no updates to this peer (`readable: false`). */
  readonly sends: boolean
  /** False: we take no updates from this peer (`writable: false`). */
  readonly takes: boolean
  /** The filter applied both ways, if any. */
  readonly streamFilter: Filter | undefined
  /** The filter's test (null: everything passes). */
  readonly passes: Passes
  /** What our digests to this peer name: through our filter and the one it announced. */
  digestPasses: Passes
  /**
   * How far apart the peer and the node were at the last exchange: `them`,
   * updates the node held that the peer lacked; `us`, updates the peer held
   * that the node lacked (as the peer said).
   */
  readonly behind = { them: 0, us: 0 }
  /**
   * Since when the peer's answers have said the node lacks more than one
   * exchange carries (mtu), ms since the epoch; -1 once one said less
   * (caught up), -2 before any answer. A node's readiness.
   */
  lackingSince = -2
  /** One of the peer's answers said the node lacked less than that. */
  caughtUpOnce = false
  /** The last exchange found the peer and the node holding the same versions of every source. */
  synced = false
  /** There has been an exchange (it counts for the node's 'synced'). */
  exchanged = false
  /** The part of the ids our last digest covered. */
  part: IdRange = ALL
  /** The bytes of our last digest, its end included (with mtu_bytes). */
  digestBytes = 0
  /** Where our digest whose answer is still coming asked for our own past from, or null. */
  askFrom: number | null = null
  /** The peer answered a question for our past completely. */
  verified = false
  /** The peer's latest digest end said it refetches our own id (withholds its copy of it). */
  withholdsOwn = false
  /** The peer has answered a question of ours whole (nothing it held that we lacked was left out). */
  answeredWhole = false
  /** The peer has shown us every update of ours up to here. */
  ownSeen = -Infinity
  /** What our latest digest to the peer named our own id at (-Infinity: not at all). */
  ownNamed = -Infinity
  /** Our latest digest to the peer asked for our past. */
  asksPast = false
  /**
   * The peer named or sent a version of ours from a past incarnation: we
   * ask it (and only the peers that show one) for our past, so a peer lying
   * about us costs one answer of ours from itself, not one from every peer.
   */
  pastShown = false
  /** The peer kept showing our id above our writes: a twin or a liar. */
  twin = false
  /** How far, in the node's list of gap fills, this peer has been looked at. */
  fillAt = 0
  /** Gap fills this peer was behind on when looked at. */
  fillWait: Update[] | null = null
  /** How far our own rebuilt log has been offered to this peer (see GapFills.fillsFor). */
  pastAt = -Infinity
  // StreamOptions.local_writes, when given.
  private readonly localWrites: boolean | undefined
  // The peer's authenticated id (see StreamOptions.peer).
  private authenticated: string | undefined
  // The peer is this source, asking for its past: it is sent all we hold
  // of it, above a max held back by a refused late value too (rule 5).
  peerPast: string | undefined = undefined
  // The digest the peer is sending us, until its end.
  private heard = new Map<string, number>()
  // What the peer's digests called for that its buffer had no room for (see Owed).
  private owed: Owed | null = null
  // Our questions this peer has not answered yet.
  private asked = 0

  /** Our questions not answered yet (see StaleCopies.serve). */
  get questions(): number {
    return this.asked
  }
  // Deltas received since our last digest: fewer than the mtu means the
  // peer's answer was complete.
  private received = 0
  // The peer's end markers announce a filter: what it sends may have gaps.
  private peerFiltered = false
  // Until its first end marker says whether it filters: the maxes its
  // updates moved, with what they were, to be put back if it does.
  private movedMax: Map<SourceLog, number> | null = null
  // The log movedMax last took in: updates come in runs of one source, so
  // the run's later updates need no lookup.
  private lastMoved: SourceLog | null = null
  private doneSeen = false
  // The protocol the peer's digests say, on their first entry and their
  // end (PROTOCOL until one does: updates written straight in are taken).
  // Below PROTOCOL its updates are refused (docs/wire.md, "Protocol"): an
  // older release drops `first`, and a copy taken without it splits replicas.
  private peerProtocol = PROTOCOL
  // The peer's digest is under way: an entry came since its last end.
  private inDigest = false
  // Digests in parts: whether every part of the current cycle matched ours.
  private cycleSame = true
  // The peer's updates are read into this, one at a time (take() does not
  // run again before it returns: the stream holds writes made meanwhile).
  private readonly fields = updateFields()

  constructor(
    private readonly node: ExchangeNode,
    private readonly events: ExchangeEvents,
    options: StreamOptions,
    nodeFilter: Filter | undefined,
  ) {
    this.localWrites = options.local_writes
    this.sends = options.readable !== false
    this.takes = options.writable !== false
    this.streamFilter = options.filter ?? nodeFilter
    this.authenticated = options.peer
    this.passes = compileFilter(this.streamFilter)
    this.digestPasses = this.passes
  }

  /** The peer's authenticated id, when the transport knows it. */
  get peer(): string | undefined {
    return this.authenticated
  }

  /** The transport authenticated the peer as `id`. @throws Error when bound to another peer. */
  authenticate(id: string): void {
    if (this.authenticated !== undefined && this.authenticated !== id) throw new Error(`this stream's peer is ${this.authenticated}, not ${id}`)
    this.authenticated = id
  }

  /** Whether `{key, value}` from this peer is a local write of the node. */
  get acceptsLocalWrites(): boolean {
    return this.localWrites ?? this.node.localWrites
  }

  /** The stream is closed. */
  get destroyed(): boolean {
    return this.events.destroyed
  }

  emit(event: string, ...args: unknown[]): boolean {
    return this.events.emit(event, ...args)
  }

  /** Whether updates from this peer may move a source's max (no filter at either end). */
  gapFree(): boolean {
    return this.passes === null && !this.peerFiltered
  }

  /** An update from this peer is about to move `log.max`. */
  movingMax(log: SourceLog): void {
    if (this.doneSeen || log === this.lastMoved) return
    const moved = (this.movedMax ??= new Map())
    if (!moved.has(log)) moved.set(log, log.max)
    this.lastMoved = log
  }

  /**
   * Start an exchange: our digest and its end, onto `out`. False, and
   * nothing queued, while the peer has not read what was queued before (a
   * stalled peer is not sent more).
   */
  ask(out: Outbox): boolean {
    if (!room(out) || this.owed !== null) return false
    const replica = this.node.replica
    this.asked++
    this.received = 0
    replica.collect()
    // Once the node has seen a sign of a past incarnation, each stream asks
    // its peer for the node's own updates until it has seen them all.
    this.askFrom = this.digest(out, replica.incarnation.asks(this))
    out.push(this.end(false))
    return true
  }

  /**
   * A transport's limits (see `wire/gate.ts`): sees each message of the
   * peer as classified, before the exchange acts on it; false drops it.
   */
  admit: ((r: Reading) => boolean) | null = null

  /** An object the peer wrote: an update, a local write, a digest entry or a digest's end; what it calls for goes onto `out`. */
  take(chunk: unknown, out: Outbox): void {
    const r = classify(chunk, this.fields)
    if (this.admit !== null && !this.admit(r)) return
    switch (r.kind) {
      case Kind.Update:
        this.received++
        if (this.peerProtocol < PROTOCOL) reportInvalid(this, chunk, oldReason(this.peerProtocol), 'old_peer')
        else if (!this.takes) reportInvalid(this, chunk, 'this stream takes no updates (writable: false)', 'one_way')
        // What our filter keeps out was announced to the peer: drop it.
        else if (this.passes === null || this.passes(r.source_id, r.key)) this.node.replica.take(this, chunk, r)
        break
      case Kind.Local:
        // A peer must never write as this node (it would sign the write),
        // nor through a stream that takes nothing from it.
        if (!this.takes) reportInvalid(this, chunk, 'this stream takes no updates (writable: false)', 'one_way')
        else if (this.acceptsLocalWrites) this.node.writeLocal(this, chunk, r.key, r.value)
        else reportInvalid(this, chunk, 'local writes ({key, value}) are not accepted on this stream', 'local_write')
        break
      case Kind.Digest:
        // A digest's first entry says the peer's protocol (none: an older
        // release), before any delta of the reply it may begin.
        if (!this.inDigest) {
          this.inDigest = true
          this.peerProtocol = r.protocol ?? 1
        }
        this.hear(chunk, r.source_id, r.version)
        break
      case Kind.Done:
        this.inDigest = false
        this.peerProtocol = r.protocol
        this.answer(r, out)
        break
      default:
        reportInvalid(this, chunk, r.reason, r.code)
    }
  }

  private hear(chunk: unknown, source_id: string, version: number): void {
    const replica = this.node.replica
    if (!replica.clock.accepts(version)) {
      reportInvalid(this, chunk, aheadReason(version), 'ahead')
      return
    }
    const heard = this.heard
    // An honest digest names at most DIGEST_PART sources (a longer one is
    // sent in parts): more is a flood.
    if (!heard.has(source_id) && heard.size >= MAX_HEARD) {
      reportInvalid(this, chunk, `digest names more than ${MAX_HEARD} sources`, 'digest')
      return
    }
    heard.set(source_id, version)
    if (source_id === replica.id) replica.incarnation.heardSelf(this, version)
  }

  // The peer's digest ended: answer it.
  private answer(fields: DoneReading, out: Outbox): void {
    const node = this.node
    const replica = node.replica
    const deletes: Deletes = replica.deletes
    const heard = this.heard
    const range: IdRange = fields.after === undefined && fields.through === undefined ? ALL : { after: fields.after, through: fields.through }
    const peerHas = fields.behind ?? 0
    const peerTakes = !fields.refuses
    const passes = fields.filter === undefined ? this.passes : both(this.passes, compileFilter(fields.filter))
    // A filter at the peer's end only: its updates before this marker moved
    // maxes past what it kept out; they go back (a lower max only asks more).
    if (fields.filter !== undefined && !this.peerFiltered) {
      this.peerFiltered = true
      this.digestPasses = passes
    }
    if (!this.doneSeen) {
      this.doneSeen = true
      if (this.peerFiltered && this.movedMax !== null) for (const [log, max] of this.movedMax) if (log.max > max) log.max = max
      this.movedMax = null
      this.lastMoved = null
    }
    // Only a digest marked as a reply is not answered with ours: a counter of
    // our questions alone would go wrong once a digest is lost or repeated.
    const isAnswer = fields.reply
    const past = fields.past
    this.peerPast = past !== undefined && past !== replica.id && (!node.signed || this.authenticated === past) ? past : undefined
    // Deletes: nonces, late reports, stale notices, and whether this peer's
    // copy of a source is behind markers we collected (docs/deletes.md).
    deletes.onDone(this, fields, heard, range, this.gapFree())
    this.withholdsOwn = fields.withheld === true || fields.withheld?.has(replica.id) === true
    // Twins the peer knows of: their mappings are offered on from here too.
    if (fields.twins !== undefined) for (const [id, ms] of fields.twins) replica.fills.twinned(id, ms)
    if (isAnswer && this.asked > 0) this.answered(fields, heard.get(replica.id))
    const them = behind(replica.history, heard, range, passes)
    this.settled(heard, range, them, peerHas, this.sends && peerTakes, this.takes && !fields.silent)
    if (fields.reply) {
      this.lackingSince = peerHas < node.mtu ? -1 : this.lackingSince < 0 ? Date.now() : this.lackingSince
      if (peerHas < node.mtu) this.caughtUpOnce = true
    }
    // Every update of this answer is in, and this peer counts as exchanged:
    // our past may be settled now (the peer that answered our question
    // first was not yet counted), and what waited for it runs.
    const incarnation = replica.incarnation
    if (!incarnation.settled) incarnation.pastAnswered(node.exchanges(), deletes.activeTime, deletes.grace)
    incarnation.checkSettled()
    const sends = this.sends && peerTakes
    // Their answer was cut: flow control counts the exchange as overflowed.
    const cut = isAnswer && this.received >= node.mtu
    if (this.owed === null && room(out)) {
      this.respond(out, heard, range, passes, sends, !isAnswer, fields.rate, cut)
      heard.clear()
    } else {
      // No room: owed. A newer digest of the peer supersedes an older one
      // (it names more); each question still gets its own reply. Merged
      // digests count as an overflow: the peer is not keeping up.
      const merged = this.owed !== null
      const o = (this.owed ??= { questions: 0, heard: new Map(), range: ALL, passes: null, sends: false, rate: undefined, cut: false })
      if (!isAnswer) o.questions++
      o.cut = o.cut || cut || merged
      this.heard = o.heard
      this.heard.clear()
      o.heard = heard
      o.range = range
      o.passes = passes
      o.sends = sends
      o.rate = fields.rate
    }
    replica.collect()
    replica.storeObject?.viewCheck(node.exchanges())
  }

  /** Whether anything the peer's digests called for is still owed to it. */
  get owes(): boolean {
    return this.owed !== null
  }

  /**
   * The peer reads (the stream's _read): push what is owed to it onto
   * `out`, at least one reply (the stream asks before it takes the chunk
   * read off its buffer), then while the buffer has room.
   */
  pay(out: Outbox): void {
    for (let o = this.owed; o !== null; o = room(out) ? this.owed : null) {
      // The oldest question waiting gets its reply, or, with none, the
      // peer's reply its deltas: each with the deltas the peer's newest
      // digest calls for, so that every reply is whole as a reply sent at
      // once is (fewer than mtu deltas: nothing more was missing).
      const digest = o.questions > 0
      if (digest) o.questions--
      this.respond(out, o.heard, o.range, o.passes, o.sends, digest, o.rate, o.cut)
      o.cut = false
      if (o.questions === 0) this.owed = null
    }
  }

  // What a digest end of the peer calls for (`heard` over `range`): with
  // `digest`, a question's reply (our digest, the deltas, our end marked as
  // a reply); else, for its reply to our question, the deltas alone.
  private respond(to: Outbox, heard: ReadonlyMap<string, number>, range: IdRange, passes: Passes, sends: boolean, digest: boolean, rate: unknown, cut: boolean): void {
    const node = this.node
    const replica = node.replica
    // Push-pull: a question is answered with our digest, the deltas the
    // peer lacks, and the digest's end, which also ends the answer. The
    // digest goes first so that the peer learns how far we hold its own id
    // before it reads the deltas (see Incarnation).
    // A digest that asks for our past: the peer's answer to it (deltas
    // alone) carries our id in version order from where it asked. One that
    // does not: what of our id comes next is no such answer (R7).
    if (digest) {
      const from = this.digest(to, false)
      if (this.asked === 0) this.askFrom = from
    }
    let out: Update[] = []
    if (sends) {
      // Sources the peer is being told are stale here wait for its refetch.
      out = this.deltas(heard, range, passes, replica.deletes.staleCopies.telling(this, heard, !digest), !digest)
    }
    // Flow control: this exchange overflowed if our answer or theirs was cut.
    const flow = node.flow
    if (flow !== null) {
      flow.exchanged(cut || out.length < this.chosen || overflowed(replica.history, heard, node.mtu, out.length, range), rate)
    }
    const id = replica.id
    const incarnation = replica.incarnation
    for (let i = 0; i < out.length; i++) {
      const u = out[i]
      if (u.source_id === id) incarnation.sent(u.version)
      to.push(u)
    }
    if (digest) to.push(this.end(true))
  }

  // The peer answered our question (its digest named our id at `named`).
  // A peer that withholds suspects (docs/deletes.md, rule 6) does not answer whole.
  private answered(fields: DoneReading, named: number | undefined): void {
    this.asked--
    if (!this.answeredWhole && !fields.withheld && this.holdsAll()) this.answeredWhole = true
    // Asked for our past: complete if the answer was not cut, or if the
    // peer has now shown us everything of ours it holds.
    const node = this.node
    // A peer that withholds suspects of another source still shows us our
    // own id whole: it counts once it has shown all of ours it names (one
    // that refetches our id names it below what it withholds). Settling our
    // past must not wait for refetches, which may wait for us (attack round
    // 3, finding E).
    // An answer that tells us our own id is stale there left our id out
    // (rule 6: nothing of a source goes with its notice to a peer naming
    // it), however few updates it carried (attack found a node restarted
    // from nothing settling without the past such a peer held).
    const toldOwn = fields.stale !== undefined && fields.stale.has(node.replica.id)
    if (
      this.askFrom !== null &&
      ((this.received < node.mtu && node.mtuBytes === Infinity && (!fields.withheld || (named === undefined && !this.withholdsOwn)) && !toldOwn) ||
        (named !== undefined && named <= this.ownSeen))
    ) {
      this.verified = true
      const incarnation = node.replica.incarnation
      if (named !== undefined) incarnation.answeredSelf(named)
    }
    // The answer is over: an update of our id the peer sends later (a gap
    // fill it passes back) is no part of it, and shows nothing of what its
    // copy lacks below it (R7; outside red team, B4: taken for one, it hid
    // the past's value below it, which then stayed at that peer alone).
    if (this.asked === 0) this.askFrom = null
  }

  // Whether we now hold every other source as far as the peer's digest
  // named it. (Its count of what we lack is no measure: it counts versions
  // its log still lists that were replaced since, and never sends them;
  // attack found a view check that waited for them forever.)
  private holdsAll(): boolean {
    const replica = this.node.replica
    const sources = replica.history.sources
    for (const [id, v] of this.heard) {
      if (id === replica.id) continue
      if ((sources.get(id)?.max ?? -Infinity) < v) return false
    }
    return true
  }

  // How many deltas were chosen before mtu_bytes cut them (see deltas).
  private chosen = 0

  // The deltas the peer lacks, up to the mtu (and mtu_bytes: the answer
  // gets what the digest left of the message). Mappings that filled a gap
  // here go first to a peer that passed them; the rest fill the mtu.
  // Sources in `skip` go in neither. They are skipped, not filtered out: a
  // filter sends what passes above our max too, which the peer, reading no
  // filter, would take as our copy whole up to there (model property, seed
  // 1959680320: a max held back below a refused value was passed on).
  private deltas(heard: ReadonlyMap<string, number>, range: IdRange, passes: Passes, skip: ReadonlySet<string> | null, isAnswer: boolean): Update[] {
    const node = this.node
    const replica = node.replica
    const fills = replica.fills.fillsFor(this, heard, skip === null ? passes : both(passes, (source_id) => !skip.has(source_id)), node.mtu)
    const room = fills === null ? node.mtu : node.mtu - fills.length
    let chosen = ordered(deltas(replica.history, heard, room, node.order, node.random, range, passes, null, skip, this.peerPast), node.sort)
    if (fills !== null) chosen = chosen.length === 0 ? fills : fills.concat(chosen)
    chosen = replica.deletes.staleCopies.sendable(chosen)
    this.chosen = chosen.length
    return node.mtuBytes === Infinity ? chosen : cutToBytes(chosen, node.mtuBytes - (isAnswer ? 0 : this.digestBytes))
  }

  // 'sync' once a digest (or a whole cycle of parts) shows the peer holding
  // the same versions of every source as the node.
  // On a one-way stream only the way updates flow counts: the receiving end
  // is in sync once it holds what the sender does, and the other way round.
  private settled(heard: ReadonlyMap<string, number>, range: IdRange, all: number, peerHas: number, out: boolean, inn: boolean): void {
    const them = out ? all : 0
    const us = inn ? peerHas : 0
    this.behind.them = them
    this.behind.us = us
    this.exchanged = true
    if (range.after === undefined) this.cycleSame = true
    const replica = this.node.replica
    this.cycleSame = this.cycleSame && them === 0 && us === 0 && sameDigest(replica.history, heard, range, (log) => named(replica, this, log), out, inn)
    if (range.through !== undefined) return
    const was = this.synced
    this.synced = this.cycleSame
    if (this.synced && !was) {
      this.emit('sync', { them, us })
      this.node.peerSynced()
    }
  }

  // Our digest's entries to the peer (see writeDigest), after admitting
  // what flow control lets through.
  private digest(out: Outbox, askAll: boolean): number | null {
    const node = this.node
    node.pump()
    return writeDigest(node.replica, this, out, askAll, node.mtuBytes, node.flow !== null)
  }

  // Our digest's end (see digestEnd).
  private end(reply: boolean): Message {
    const node = this.node
    return digestEnd(node.replica, this, reply, node.flow, node.signed)
  }
}

function oldReason(protocol: number): string {
  return `the peer speaks protocol ${protocol}, older than this release's ${PROTOCOL}: its updates are refused (it drops a copy's first; docs/wire.md, "Protocol")`
}

// The outbox is below its high-water mark: the peer has read what was sent.
function room(out: Outbox): boolean {
  return out.readableLength < out.readableHighWaterMark
}

/**
 * What a stream owes its peer while the peer does not read (see the
 * module's comment): O(1) whatever the peer writes, so a peer that writes
 * without reading cannot grow the node's buffer.
 */
interface Owed {
  /** The peer's questions whose reply waits (each gets one); with none, the deltas for its reply to ours. */
  questions: number
  /** The peer's newest digest, over `range`, through `passes`. */
  heard: Map<string, number>
  range: IdRange
  passes: Passes
  /** We send the peer updates (our stream sends, the peer takes). */
  sends: boolean
  /** The `rate` of the peer's newest digest end. */
  rate: unknown
  /** An answer of the peer's was cut, or digests were merged: the exchange overflowed. */
  cut: boolean
}
