/**
 * Twins: two live nodes with one id. Every hello says when its node
 * started; of two live nodes with one id, the one started later is the
 * twin, refused (code `twin`), and told so, so that it stops before either
 * loses an acknowledged write. Claims move a node only as far as they can
 * be believed: under keys (authenticated), fully; without, only on
 * evidence a claim cannot give (the refusing peer holds a version of the
 * id issued since this node started that it did not write, see refusedBy), and a node that has joined
 * (a peer answered it) is never stopped, since any socket can claim any
 * id. A node refused by every peer it has hands its acknowledged writes
 * over to one that refused it (see handOver), which writes them as its
 * own. A node that dials peers acknowledges local writes only
 * once one admitted it (see Twins.admitted): refused as the newer twin, it
 * answers them `twin` ({@link TwinError}) and takes them back; refused as a
 * twin by every peer it has, it does so until one admits it (see
 * Twins.refusal). A quiet link is a past incarnation's only once it fails
 * to answer a question (see Twins.admit). Design, invariants, limits: docs/twins.md.
 *
 * @packageDocumentation
 */
import type { Gossip } from '../gossip'
import { SessionError, type PeerHello, type SessionOptions } from '../wire/session'
import type { Connection } from './connection'
import { errand } from './dialer'
import { HANDOVER_BATCH, handOver, type HandedWrite } from './handover'
import { parseAddress } from './options'
import type { CloseCode, LogLevel } from './types'

/** What a node reports of a twin: another live node with its id. */
export interface TwinReport {
  /** This node is the newer of the two: it should stop. */
  newer: boolean
  /** Where the other one is, as far as known. */
  address: string | null
  /** When the other one started, ms since the epoch, if it said. */
  started: number | null
}

/** What the twin rule needs of its node. */
export interface TwinHost {
  readonly gossip: Gossip
  readonly startedAt: number
  readonly interval: number
  /** A peer has answered one of the node's questions. */
  readonly answeredOnce: boolean
  connections(): Iterable<Connection>
  /** The node's session options (to say hello to a twin's elder). */
  sessionOptions(): SessionOptions
  drop(c: Connection, code: CloseCode, reason: string): void
  /** Ask the peer on `c` a question (it answers with a digest). */
  ask(c: Connection): void
  /**
   * A twin of `id` was seen (counted; its versions may interleave with the
   * other's, so the node offers its mappings of `id` to peers again, as
   * Replica.twinned does), and one refused by code `twin`.
   */
  seen(id: string): void
  refused(): void
  /** The node learned of a twin of its own. */
  report(t: TwinReport): void
  /** Refused as the newer twin: take back every local write not acknowledged. */
  takeBack(): void
  /** This life's acknowledged writes not handed over yet (see Handing, handover.ts). */
  handing(): HandedWrite[]
  /** `writes` were handed over to `peer`, which wrote them as its own. */
  handed(writes: HandedWrite[], peer: string): void
  /** The wall clock, ms (the handover window). */
  now(): number
  /** Whether a peer's version `v` of this node's id was issued since this node started, not by it (evidence of a twin; its past is none). */
  foreign(v: number): boolean
  log(line: string, level?: LogLevel): void
}

// Twins refused that a node remembers (see Twins.refusedTwins), and how
// long past its last refusal one may hand writes over (a refused node
// hands over at the refusal, and redials within its backoff, each redial
// refused again; a handover refused is retried at the next refusal).
const REFUSED_KEPT = 256
const HANDOVER_WINDOW = 60_000

// The host a connection came from, for a hello that came in (null: one this
// node dialed, whose peer may hand over from another of its addresses).
function remoteHost(c: Connection): string | null {
  return c.direction === 'in' ? c.address.replace(/:\d+$/, '') : null
}

// A node as a twin refusal names it: its id and when it started.
const twinKey = (id: string, started: number | null): string => `${id}\u0000${started}`

// Whether a node started at `a` (nonce an) is older than one started at b:
// unknown times are youngest, equal ones are ordered by nonce.
function olderThan(a: number | null, an: string | undefined, b: number | null, bn: string | undefined): boolean {
  const x = a ?? Infinity
  const y = b ?? Infinity
  return x < y || (x === y && String(an) < String(bn))
}

/** A time for a log line. */
export function iso(ms: number | null): string {
  return ms === null ? 'at an unknown time' : new Date(ms).toISOString()
}

/**
 * A local write refused because another live node has this node's id:
 * this one is the newer and stops, or every peer it has refuses it as a
 * twin (see Twins.refusal).
 */
export class TwinError extends Error {
  /** `twin`, for logs and answers. */
  readonly code = 'twin'
  constructor(id: string, what: string, stops = true) {
    super(
      stops
        ? `write refused: ${what}; this node (${id}) is the newer and stops, and acknowledged none of its writes. Give it another --id`
        : `write refused: ${what}; this node (${id}) acknowledges no write until a peer admits it (stop the other node with this id, or give one another --id)`,
    )
    this.name = 'TwinError'
  }
}

/** The twin rule of one node (see the module's comment). */
export class Twins {
  // A twin being told that this node is its younger (see tellTwin).
  private telling: Promise<void> | null = null
  // Writes being handed over to a peer that refused this node (see handOver).
  private handing: Promise<void> | null = null
  // Whether local writes may be acknowledged (see admitted): null until
  // decided, then true, or the error twins are refused with.
  private admission: true | TwinError | null = null
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = []
  private timer: NodeJS.Timeout | null = null
  // Peers (by id) that refused this node as a twin since their last
  // session with it, and the refusal of local writes while none admits it
  // (see refusal).
  private readonly refusers = new Map<string, boolean>()
  private shut: TwinError | null = null
  // (Each refuser above maps to whether its refusal came with evidence, see
  // refusedBy.) Refused everywhere without evidence, the refusers' names
  // (see check); the peer that refused this node last, and where it is.
  private stranded: string | null = null
  private lastRefusal: { address: string; peer: string } | null = null
  // Refused as the newer twin on a claim nothing backs yet (see doubted).
  private doubt = false
  // More writes to hand over came while a handover was under way.
  private handMore = false
  // How many times the node was shut, its waiting writes taken back (see admitted).
  private shuts = 0
  // Connections admitted whose session is not open yet, and the question
  // asked of each quiet link with the id of a hello waiting (see admit).
  private readonly passed = new WeakSet<Connection>()
  private readonly probes = new Map<Connection, Promise<void>>()
  // The nonces of this node's own sessions, kept a window past their close
  // (the other end of a dial to itself may be closed first).
  private readonly nonces = new Set<string>()
  // The nodes (id and start) this node refused as twins, the newest
  // REFUSED_KEPT: only they may hand writes over, from the host their
  // refused hello came from, within HANDOVER_WINDOW of the refusal (see admit).
  private readonly refusedTwins = new Map<string, { host: string | null; at: number }>()

  /** `dials`: the node dials peers (without, no one can tell it is a twin before it writes). */
  constructor(
    private readonly host: TwinHost,
    dials: boolean,
  ) {
    if (!dials) this.admission = true
  }

  /**
   * Resolves once this node may acknowledge local writes: a node that dials
   * peers cannot know that no other live node has its id until a peer
   * admitted it (a peer that holds a live node with its id refuses it as a
   * twin). Writes wait for that, for every first dial to have ended without
   * it (no peer to ask: twins that meet later are told apart as they
   * write), or for `timeout` ms. Rejects with a TwinError once the node was
   * refused as the newer twin, while every peer it has refuses it as a
   * twin, or when that began since `epoch` (read before the write was
   * made): the write was taken back.
   */
  admitted(timeout: number, epoch: number): Promise<void> {
    const a = this.admission
    if (a !== null && a !== true) return Promise.reject(a)
    // Refused as a twin by every peer, or taken back when it was since the write.
    const refused = this.shut ?? (epoch === this.shuts ? null : new TwinError(this.host.gossip.id, 'every peer refused this node as a twin while it waited', false))
    if (refused !== null) return Promise.reject(refused)
    if (a === true) return Promise.resolve()
    if (this.timer === null) {
      this.timer = setTimeout(() => this.settle(null), timeout)
      this.timer.unref()
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /**
   * Refused as the newer twin with no evidence yet: the versions a live
   * twin writes pass this node's start only some time after it (a clock
   * lags the wall clock by up to a second, heartbeats come an interval
   * apart), and its past gives none. So writes keep waiting past the
   * first dials (see admitted) for the evidence of a later refusal, until
   * the timeout; then, a claim alone, they are served (and handed over).
   */
  get doubted(): boolean {
    return this.doubt
  }

  /** Read before a local write is made, and passed to admitted. */
  get epoch(): number {
    return this.shuts
  }

  /**
   * Why local writes are refused now, or null: this node is the newer twin
   * and stops, or every peer it has refused it as a twin and none admits
   * it, so its writes would reach no one (without --keys a joined node is
   * not stopped by a claim: the newer twin, joined first through a peer,
   * keeps it, and the elder can only wait).
   */
  get refusal(): TwinError | null {
    const a = this.admission
    return a !== null && a !== true ? a : this.shut
  }

  /**
   * A peer's session opened (it admitted this node), or one closed: whether
   * peers admit this node (see refusal). Refused by every peer it has, it
   * refuses local writes only on evidence that another node writes as it
   * (see refusedBy); without, it serves them and hands each over to a peer
   * that refused it (`stranded`), since a claim alone proves nothing.
   */
  check(opened?: Connection): void {
    const host = this.host
    const peer = opened?.peer ?? null
    if (peer !== null) this.refusers.delete(peer)
    // (The newer twin, stopping, refuses writes for good.)
    if (this.admission instanceof TwinError) return
    let open: Connection | null = null
    for (const e of host.connections()) {
      if (!e.closed && e.peer !== null) {
        open = e
        break
      }
    }
    const everywhere = this.refusers.size > 0 && open === null
    if (!everywhere) this.stranded = null
    const shut = everywhere && [...this.refusers.values()].some((e) => e)
    const who = [...this.refusers.keys()].slice(0, 8).join(', ')
    if (everywhere && !shut && this.stranded === null) {
      this.stranded = who
      host.log(
        `twin: every peer this node has refuses it as a twin (${who}), on a claim nothing backs (no --keys, and no peer holds a version of ${host.gossip.id} this node did not write): ` +
          'it keeps serving local writes, and hands each over to a peer that refused it',
        'warn',
      )
      this.handOverAgain()
    }
    if (shut === (this.shut !== null)) return
    if (!shut) {
      this.shut = null
      if (open !== null) host.log(`twin: peer ${open.peer} admitted this node: local writes are served again`, 'warn')
      return
    }
    this.stranded = null
    const what = `every peer this node has refuses it as a twin (${who}): another live node has id ${host.gossip.id}`
    this.shut = new TwinError(host.gossip.id, what, false)
    // Writes not acknowledged yet would reach no one: taken back, answered 'twin'.
    this.shuts++
    host.takeBack()
    for (const w of this.waiters.splice(0)) w.reject(this.shut)
    host.log(`twin: ${what}: local writes are refused (code twin) until a peer admits this node; it keeps running`, 'warn')
  }

  /** A local write was acknowledged: while stranded (see check), it is handed over. */
  wrote(): void {
    if (this.stranded !== null) this.handOverAgain()
  }

  // Hand over what is left to the peer that refused this node last.
  private handOverAgain(): void {
    const last = this.lastRefusal
    if (last !== null) this.handOver(last.address, last.peer)
  }

  /** Decide admission (see admitted): null to allow acknowledgements, or the error of a newer twin. */
  settle(refusal: TwinError | null): void {
    if (this.admission !== null) return
    this.admission = refusal ?? true
    if (this.timer !== null) clearTimeout(this.timer)
    if (refusal !== null) this.host.takeBack()
    for (const w of this.waiters.splice(0)) {
      if (refusal === null) w.resolve()
      else w.reject(refusal)
    }
  }

  /**
   * The node's policy on a hello the session accepted (and, under keys,
   * authenticated): a refusal, or null to admit. Each hello says when its
   * node started; of two live nodes with one id, the one started later is
   * the twin. Where a link with the peer's id has gone quiet, the answer
   * waits on a question asked there (see probe).
   */
  admit(c: Connection, hello: PeerHello): SessionError | null | Promise<SessionError | null> {
    const host = this.host
    const id = hello.id
    const started = hello.started ?? null
    // A node refused as a twin hands its writes over: no gossip, no twin
    // rule (its writes become this node's own, see handOver). Only one this
    // node refused: a handover makes this node write as itself, which no
    // other peer may have it do (under --keys, not even one with a key).
    // (Before the nonce check: a handover hello without a nonce is refused too.)
    if (hello.handover === true) {
      if (this.own(hello.nonce)) return new SessionError('self', 'connected to itself')
      // (Without --keys anyone may get itself refused as b: this keeps a
      // third party from using another's refusal, no more; docs/twins.md, R6.)
      const r = this.refusedTwins.get(twinKey(id, started))
      const from = remoteHost(c)
      if (r !== undefined && host.now() - r.at <= HANDOVER_WINDOW && (r.host === null || from === null || r.host === from)) return null
      return new SessionError('handover', `a handover from ${id}, which this node did not refuse as a twin from ${from ?? c.address} in the last ${HANDOVER_WINDOW / 1000} s: only a node refused as a twin hands its writes over (docs/operations.md, "Twins")`)
    }
    // A hello without a nonce (a node before sessions) cannot be told from
    // this node's own, nor from another's: no twin rule for it.
    if (hello.nonce === undefined) return id === host.gossip.id ? new SessionError('self', 'connected to itself') : null
    const trusted = c.session.authenticated
    if (id === host.gossip.id) {
      // This node's own dial (its address in --connect, by any name): the
      // hello carries the nonce of one of its own sessions, which no other
      // node has seen unless this node said hello to it.
      if (this.own(hello.nonce)) return new SessionError('self', 'connected to itself')
      // Another node with this node's id.
      host.seen(id)
      const where = `at ${hello.address ?? c.address}, started ${iso(started)}`
      if (olderThan(started, hello.nonce, host.startedAt, c.session.nonce)) {
        // (A hello is a claim, not evidence: without keys it stops nothing.)
        this.twin({ newer: true, address: hello.address ?? c.address, started }, trusted && 'authenticated', `another live node runs as ${id} (${where}), before this one`)
        if (hello.address !== undefined) this.handOver(hello.address, id)
        this.refusedTwin(id, started, c)
        return new SessionError('twin', `this node (${id}) started after you: it stops`)
      }
      host.log(`twin: another node started as ${id} (${where}) while this one runs: refused; it stops, or must be given another --id`, 'warn')
      const err = new SessionError('twin', `another live node runs as ${id} since ${iso(host.startedAt)}: give this one another --id`)
      err.twinStarted = host.startedAt
      err.twinHolds = this.holds(id)
      this.refusedTwin(id, started, c)
      return err
    }
    for (const e of host.connections()) {
      if (e === c || e.closed || (e.peer ?? (this.passed.has(e) ? e.session.peerId : null)) !== id) continue
      const theirs = e.session.peerHello as PeerHello
      if (theirs.nonce === undefined) continue
      // The same node on a second link (each dialed the other): it started
      // when the first did, and listens where it does, which no other live
      // node can. No twin: admitted (refused, it was counted and logged as
      // one, and its dialer refused again and again).
      if (theirs.started !== undefined && theirs.started === started && theirs.address !== undefined && theirs.address === hello.address) continue
      // A link heard from lately, or too fresh to have answered yet, is a
      // live node's (attack: the elder's link, its first answer not in yet,
      // was dropped as a past incarnation's and the newcomer kept). A quiet
      // one may be a live node's too (with many peers, each asks one an
      // interval): asked a question first, it is a past incarnation's only
      // if it does not answer (a past incarnation's socket normally closed
      // when its process died).
      if (e.peer !== null && Date.now() - e.heardAt >= this.window) return this.probe(e).then(() => (c.closed ? null : this.admit(c, hello)))
      host.seen(id)
      if (trusted && e.session.authenticated && olderThan(started, hello.nonce, theirs.started ?? null, theirs.nonce)) {
        // Both proved the id: the newcomer is the elder, the younger goes.
        host.log(`twin: two live nodes say they are ${id}; the one at ${e.address} started later (${iso(theirs.started ?? null)}): closing it`, 'warn')
        host.refused()
        host.drop(e, 'twin', `twin of ${id}, started later than the one at ${c.address}`)
        this.refusedTwin(id, theirs.started ?? null, e)
        this.passed.add(c)
        return null
      }
      // Without keys, where the newcomer heartbeats (as its twin, with its id
      // and configuration, would), the link kept holds its slot only on
      // evidence (docs/twins.md, rule 3): a version of the id it showed since
      // the newcomer started. A live twin shows one within a few heartbeats;
      // a link that showed none once that passed is a claim, and both are
      // served (a squatter kept the real node refused for as long as it stayed).
      const since = started ?? -Infinity
      const evidence = !trusted && e.selfShown >= since * 1000
      const beats = hello.beats
      if (!trusted && !evidence && beats !== undefined && e.selfHeardAt >= since + 3 * Math.max(beats, host.interval) + 1000) {
        host.log(
          `twin: two nodes say they are ${id} (at ${e.address}, started ${iso(theirs.started ?? null)}, and at ${c.address}, started ${iso(started)}); the first showed no write of ${id} since the second started, so its claim keeps no slot: both are served`,
          'warn',
        )
        this.passed.add(c)
        return null
      }
      host.log(
        `twin: two live nodes say they are ${id} (at ${e.address}, started ${iso(theirs.started ?? null)}, and at ${c.address}, started ${iso(started)}): the one connected first is kept, the other refused${trusted || evidence ? '' : ' until the window for evidence has passed'}`,
        'warn',
      )
      const err = new SessionError('twin', `another live node runs as ${id} since ${iso(theirs.started ?? null)}${theirs.address === undefined ? '' : ` at ${theirs.address}`}: give this one another --id`)
      err.twinAddress = theirs.address
      err.twinStarted = theirs.started
      err.twinHolds = evidence ? e.selfShown : this.holds(id)
      this.refusedTwin(id, started, c)
      return err
    }
    this.passed.add(c)
    return null
  }

  // Node `id` started at `started` was refused as a twin: it may hand its writes over.
  private refusedTwin(id: string, started: number | null, on: Connection): void {
    const k = twinKey(id, started)
    this.refusedTwins.delete(k)
    this.refusedTwins.set(k, { host: remoteHost(on), at: this.host.now() })
    if (this.refusedTwins.size > REFUSED_KEPT) this.refusedTwins.delete(this.refusedTwins.keys().next().value as string)
  }

  // The highest version of `id` this node holds, if any (said in a twin
  // refusal: the refused node's evidence that another node writes as it).
  private holds(id: string): number | undefined {
    const max = this.host.gossip.history.sources.get(id)?.max
    return max === undefined || !Number.isFinite(max) ? undefined : max
  }

  // How long a live node's link may stay quiet, and a quiet one take to
  // answer a question: three intervals and a second.
  private get window(): number {
    return 3 * this.host.interval + 1000
  }

  // Ask quiet link `e` a question (once, for every hello waiting on it);
  // resolves once it answers or closes, or, past the window without an
  // answer, once it is dropped as a past incarnation's. Probes are at most
  // one a window per link (an answer makes it heard), so a stream of
  // hellos with its id cannot push its peer past its digest rate.
  private probe(e: Connection): Promise<void> {
    const host = this.host
    const id = e.peer as string
    let p = this.probes.get(e)
    if (p !== undefined) return p
    const quiet = Date.now() - e.heardAt
    host.log(`peer ${id} said hello again while its connection (${e.address}) is quiet for ${quiet} ms: asking that one whether it is live before answering`)
    p = new Promise<void>((resolve) => {
      const end = (answered: boolean) => {
        clearTimeout(timer)
        e.onHeard = null
        e.transport.off('close', closed)
        this.probes.delete(e)
        if (!answered && !e.closed) {
          host.drop(e, 'new_incarnation', `peer ${id} connected again (a new incarnation): this connection, quiet for ${quiet} ms, did not answer a question within ${this.window} ms`)
        }
        resolve()
      }
      const closed = () => end(true)
      const timer = setTimeout(() => end(false), this.window)
      timer.unref()
      e.onHeard = () => end(true)
      e.transport.once('close', closed)
    })
    this.probes.set(e, p)
    host.ask(e)
    return p
  }

  /** A session of this node began on `c`: a hello with its nonce is this node's own (see admit). */
  began(c: Connection): void {
    const nonce = c.session.nonce
    this.nonces.add(nonce)
    c.transport.once('close', () => setTimeout(() => this.nonces.delete(nonce), this.window).unref())
  }

  /** Whether `nonce` is one of this node's own sessions' (a hello with it is this node's own). */
  own(nonce: string | undefined): boolean {
    return nonce !== undefined && this.nonces.has(nonce)
  }

  /**
   * A peer refused this node as a twin (err: its refusal, on `c`). Without
   * --keys a refusal is a claim: any socket can say hello to a peer with
   * this node's id first. It moves this node (stops it as the newer, or
   * refuses its writes while every peer refuses it) only with evidence a
   * claim cannot give by itself: an authenticated session, or the peer
   * holding a version of this id issued since this node started that it
   * did not write (another node does: its past, which a restart from
   * nothing finds at every peer, is no evidence).
   */
  refusedBy(c: Connection, err: SessionError): void {
    const host = this.host
    host.seen(host.gossip.id)
    const t = { address: err.twinAddress ?? null, started: err.twinStarted ?? null }
    const evidence = c.session.authenticated ? 'authenticated' : err.twinHolds !== undefined && host.foreign(err.twinHolds)
    if (olderThan(host.startedAt, c.session.nonce, t.started, undefined)) {
      // The elder, refused where a younger twin got in first: tell it.
      host.log(`twin: peer ${c.session.peerId} holds another node with this node's id, started later${t.address === null ? '' : ` at ${t.address}`}: telling it to stop`, 'warn')
    } else {
      if (evidence === false) this.doubt = true
      this.twin({ newer: true, ...t }, evidence, `another live node has id ${host.gossip.id}${t.address === null ? '' : ` (at ${t.address})`}, started ${iso(t.started)}, before this one`)
    }
    const peer = c.session.peerId
    const at = c.dialer?.address ?? c.session.peerHello?.address
    if (at !== undefined && peer !== null) this.lastRefusal = { address: typeof at === 'string' ? at : `${at.host}:${at.port}`, peer }
    // Refused by every peer it has, on evidence, this node acknowledges no write (see refusal).
    if (peer !== null) this.refusers.set(peer, evidence !== false || this.refusers.get(peer) === true)
    this.check()
    if (t.address !== null) this.tell(t.address)
    // Its acknowledged writes would reach no one: handed to the peer that refused it.
    this.handOverAgain()
  }

  /**
   * Hand this life's acknowledged writes over to the peer at `address`
   * (`peer`), which refused this node as a twin (see handover.ts). Without this, writes a node acknowledged before it
   * met its twin (alone, its peers unreachable) would be lost. One handover
   * at a time; a refusal after it hands over what is left.
   */
  private handOver(address: string, peer: string): void {
    // (A node admitted by a peer has its writes reach the cluster itself.)
    if (this.refusal === null && this.stranded === null) return
    if (this.handing !== null) {
      this.handMore = true
      return
    }
    const all = this.host.handing()
    if (all.length === 0) return
    // At most HANDOVER_BATCH a session (a peer takes no more at once); the rest next.
    const writes = all.slice(0, HANDOVER_BATCH)
    if (all.length > writes.length) this.handMore = true
    let to: { host: string; port: number }
    try {
      to = parseAddress(address)
    } catch {
      return
    }
    const host = this.host
    this.handing = handOver(host.gossip, host.sessionOptions(), to, writes).then((why) => {
      this.handing = null
      if (why !== null) {
        host.log(`twin: could not hand ${writes.length} acknowledged writes of this life to peer ${peer} at ${address}: ${why.reason}; tried again at its next refusal${why.code === undefined ? '' : ` [${why.code}]`}`, 'warn')
        return
      }
      host.handed(writes, peer)
      host.log(`twin: handed ${writes.length} acknowledged writes of this life to peer ${peer} (at ${address}), which wrote them as its own: none is lost`, 'warn')
      // Writes acknowledged meanwhile (stranded, see check) go next; after a failure, at the next refusal.
      if (this.handMore) {
        this.handMore = false
        this.handOver(address, peer)
      }
    })
  }

  // This node learned of a twin of its own. When it is the newer, and the
  // claim can be believed (`evidence`, see refusedBy), it reports that it
  // should stop: authenticated, or backed by a write, before it joined.
  private twin(t: TwinReport, evidence: boolean | 'authenticated', what: string): void {
    const host = this.host
    const stop = t.newer && (evidence === 'authenticated' || (evidence && !host.answeredOnce))
    // Writes waiting to be acknowledged never are: taken back, answered 'twin'.
    if (stop) this.settle(new TwinError(host.gossip.id, what))
    host.log(
      stop
        ? `twin: ${what}: this node should stop, so that no acknowledged write of either is lost`
        : t.newer
          ? `twin: ${what}; ${evidence === false ? 'no write of that node backs it, ' : ''}${host.answeredOnce ? 'this node has joined and ' : ''}the claim is not authenticated (no --keys): it keeps running`
          : `twin: ${what}`,
      'warn',
    )
    host.report({ ...t, newer: stop })
  }

  // A peer refused this node as the younger twin of the node at `address`:
  // say hello there once, so that the elder hears of it too (its log and
  // metrics), then hang up. close() waits for it, at most two seconds.
  private tell(address: string): void {
    if (this.telling !== null) return
    let to: { host: string; port: number }
    try {
      to = parseAddress(address)
    } catch {
      return
    }
    this.telling = errand(this.host.gossip, this.host.sessionOptions(), to, 2000, (s, done) => {
      s.on('refused', () => done(null))
      s.on('open', () => done(null))
    }).then(() => {})
  }

  /** Wait for a twin being told, if any. */
  async close(): Promise<void> {
    if (this.telling !== null) await this.telling
    if (this.handing !== null) await this.handing
  }
}
