/**
 * A gossip node over TCP: one {@link Gossip} per process, a session per
 * connected peer (see `lib/wire/session.ts`: hello, proof under keys, wire
 * format, limits), optional durable state. `simple-scuttle node` is this
 * with a command line around it.
 *
 * A peer of another cluster is refused, so two clusters that can reach
 * each other never merge. A peer is disconnected, with a logged reason and
 * a code, when it sends anything the protocol refuses (garbage, over-long
 * lines, invalid or forged updates), floods (more updates in a row than
 * `floodLimit` without ending them with a digest), or stops reading for
 * `stallTimeout` ms. Everything buffered per connection is bounded, so one
 * bad peer costs the others nothing but a share of the CPU.
 *
 * The node composes its parts: its options, checked (options.ts), where
 * peers come in (listener.ts; WebSockets, websocket.ts), who gets a slot
 * (admission.ts), one connection per peer and when it is overdue
 * (connection.ts, on a session), whether it is in sync and ready
 * (readiness.ts), the twin rule (twins.ts) and a refused twin's handover
 * (handover.ts), its data directory (durability.ts), dialing
 * (dialer.ts), what it makes of its peers' refusals and invalid input
 * (reports.ts), and what it says of membership (members.ts).
 *
 * @packageDocumentation
 */
import type * as net from 'net'
import { EventEmitter } from 'events'
import type { Duplex } from 'readable-stream'
import type * as WS from 'ws'
import type { InvalidCode } from '../codes'
import { Gossip } from '../gossip'
import { isMembershipKey, Membership, type MembershipOptions } from '../membership'
import type { Update } from '../types'
import type { Format } from '../wire/codec'
import { limitsFor, type Limits } from '../wire/gate'
import { badCluster, CONTROL, Session, SessionError, type SessionOptions } from '../wire/session'
import { Admission } from './admission'
import { Connection, type ConnectionHost } from './connection'
import { LogBudget } from './log-budget'
import { Dialer } from './dialer'
import { Durability, StoreFailedError } from './durability'
import { Handing, takeHandover, type TakenWrite } from './handover'
import { Listener } from './listener'
import { sayMembers, watchOwnRecord, type MembersHost } from './members'
import { Readiness, Staleness } from './readiness'
import { Reports } from './reports'
import { serveMetrics, type MetricsServer } from './metrics'
import { checkOptions, type CheckedOptions, DEFAULT_ADMIN_PORT, hostPort, type NodeOptions } from './options'
import { randomNonce } from './security'
import { Store } from './store'
import { TwinError, Twins, type TwinReport } from './twins'
import type { Address, CloseCode, LogLevel, NodeStats, PeerInfo } from './types'
import { WebSocketServer, wsTransport } from './websocket'

export type { Address, CloseCode, LogLevel, NodeOptions, NodeStats, PeerInfo, TwinReport }
export { badCluster, CONTROL, StoreFailedError, TwinError }
export { DEFAULT_ADMIN_PORT, DEFAULT_CLUSTER, DEFAULT_PORT, parseAddress } from './options'

const CONTROLS = new RegExp(CONTROL.source, 'gu')

// A log line with control characters shown as escapes: no peer can end a
// line of ours or send a terminal an escape sequence.
function printable(line: string): string {
  return CONTROL.test(line) ? line.replace(CONTROLS, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`) : line
}

/**
 * A running node; see {@link startNode}. Emits `'twin'` ({@link TwinReport})
 * when another live node has its id (`newer: true`: this one should stop;
 * `simple-scuttle node` then exits), `'synced'` once in sync with every
 * peer that answers (see {@link ScuttleNode.unsynced}), and `'store-failed'` (err) once
 * its data directory cannot be written.
 */
export class ScuttleNode extends EventEmitter {
  /** The node's state and protocol. */
  readonly gossip: Gossip
  /** Its durable state, if it has a data directory. */
  readonly store: Store | null
  /** The cluster this node belongs to (said in its hello). */
  readonly cluster: string
  /** Membership and failure detection, when `options.membership` asked for it (set once listening). */
  membership: Membership | null = null
  /** When the node started, ms since the epoch. */
  readonly startedAt = Date.now()
  /** A peer answered one of this node's questions (it has joined the cluster), or it dials no one. */
  joined: boolean
  /** @internal Called with each digest's number of entries, sent or received (the metrics' histogram). */
  onDigest: ((direction: 'sent' | 'received', entries: number) => void) | null = null
  private readonly codecs: Format[]
  private readonly conns = new Set<Connection>()
  private readonly dialers: Dialer[] = []
  private readonly listener: Listener
  // Its WebSocket server, once asked to listen for WebSockets.
  private ws: WebSocketServer | null = null
  private readonly wsOrigins: readonly string[]
  private readonly admission: Admission
  private readonly twins: Twins
  private readonly durability: Durability | null
  // What connections and the twin rule see of the node.
  private readonly host: ConnectionHost
  private timer: NodeJS.Timeout | null = null
  private closing = false
  // It was given peers to dial.
  private readonly dials: boolean
  private readonly membershipOptions: MembershipOptions | null
  // What membership's lines need of the node.
  private readonly members: MembersHost
  private readonly counters: NodeStats = {
    asked: 0,
    answered: 0,
    updatesSent: 0,
    updatesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    digestsDropped: 0,
    invalid: Object.create(null) as Record<string, number>,
    refused: Object.create(null) as Record<string, number>,
    connected: 0,
    logUnsaid: Object.create(null) as Record<string, number>,
    closed: 0,
    closedBy: Object.create(null) as Record<string, number>,
    twins: 0,
    handedOver: 0,
    handedIn: 0,
    writesRefused: 0,
  }
  // How stale each peer is.
  private readonly stale: Staleness
  private metricsServer: MetricsServer | null = null
  private readonly metricsAt: NodeOptions['metrics']
  private membershipStarted = false
  // A peer answered one of this node's questions (it has joined).
  private answeredOnce = false
  // What it would hand over, refused as a twin.
  private readonly handing: Handing
  // --connect addresses whose first dial has not ended yet (see Twins.admitted).
  private undialed = 0
  private readonly auth: SessionOptions['auth']
  private advertised: string | undefined
  private readonly log: (line: string, level?: LogLevel) => void
  // Lines a peer causes once per connection: bounded however fast it dials.
  private readonly budget: LogBudget
  // In sync with the cluster, and ready.
  private readonly readiness: Readiness
  // What peers' sessions report: refusals, invalid input, versions far ahead.
  private readonly reports: Reports
  private readonly limits: Limits
  private readonly opts: CheckedOptions
  // Longest WebSocket message: a frame and its envelope.
  private readonly maxMessage: number

  /** @internal Use {@link startNode}. */
  constructor(options: NodeOptions) {
    super()
    const checked = checkOptions(options)
    const { config, interval, random } = checked
    this.opts = checked
    this.codecs = checked.codecs
    this.maxMessage = checked.maxFrameLength + 4096
    this.cluster = checked.cluster
    this.membershipOptions = checked.membership
    this.metricsAt = options.metrics
    this.auth = options.auth
    this.advertised = options.advertise
    this.joined = (options.connect ?? []).length === 0
    this.dials = !this.joined
    // One line per entry, whatever a peer put in an id or a reason.
    const sink = options.log ?? ((line: string) => process.stderr.write(`[${printable(String(options.id))}] ${line}\n`))
    this.log = (line, level = 'info') => sink(printable(line), level)
    this.budget = new LogBudget(this.log, this.counters.logUnsaid)
    const node = this
    this.readiness = new Readiness({
      connections: () => this.conns,
      stallTimeout: checked.stallTimeout,
      dials: this.dials,
      get membership() {
        return node.membership
      },
      get joined() {
        return node.joined
      },
      get closing() {
        return node.closing
      },
      say: (kind, line, level) => this.budget.say(kind, line, level),
      synced: () => this.emit('synced'),
    })
    const store = options.data === undefined ? null : Store.open(options.data, options.id, { log: this.log, ...options.store })
    try {
      this.gossip = store?.state === undefined ? new Gossip(options.id, config) : Gossip.restore(options.id, config, store.state)
      store?.attach(this.gossip)
    } catch (err) {
      void store?.close()
      throw err
    }
    this.store = store
    this.durability = store === null ? null : new Durability(store, this.gossip, this.log, (err) => this.emit('store-failed', err))
    this.limits = limitsFor(this.gossip.mtu, interval, options)
    this.host = {
      gossip: this.gossip,
      get membership() {
        return node.membership
      },
      counters: this.counters,
      memberRate: options.memberRate ?? 8,
      interval,
      get onDigest() {
        return node.onDigest
      },
      log: this.log,
      say: (kind, line, level) => this.budget.say(kind, line, level),
      count: (code) => this.reports.count(code),
      answeredBy: (c) => this.answeredBy(c),
      checkSynced: () => this.readiness.check(),
    }
    this.admission = new Admission(this.opts.maxConnections, this.counters.refused, this.log)
    this.handing = new Handing(this.gossip)
    this.twins = new Twins({
      gossip: this.gossip,
      startedAt: this.startedAt,
      interval,
      get answeredOnce() {
        return node.answeredOnce
      },
      connections: () => this.conns,
      sessionOptions: () => this.sessionOptions(),
      drop: (c, code, reason) => this.drop(c, code, reason),
      ask: (c) => this.ask(c),
      seen: (id) => {
        this.counters.twins++
        // A refused twin's writes of a past life its twin's versions passed
        // reach peers only so (found by test/properties/twins.test.ts: one
        // acknowledged before a restart was lost once the twin stopped).
        this.gossip.twinned(id)
      },
      refused: () => this.admission.count('twin'),
      report: (t) => this.emit('twin', t),
      takeBack: () => this.durability?.takeBack(-Infinity),
      handing: () => this.handing.writes(this.conns, this.durability?.unsettled(), this.membership !== null),
      now: this.opts.now,
      // Only a version this life could have issued and did not: above its
      // clock's start (the wall clock when it started, and above any past
      // it restored). Below lies its past, which a restart from nothing
      // finds at every peer: no evidence (a squatter's claim then stopped
      // the real node at every restart).
      foreign: (v) => {
        const clock = this.gossip.incarnation.clock
        return v >= clock.start && !clock.issued(v)
      },
      handed: (writes) => {
        this.counters.handedOver += writes.length
        this.handing.handed(writes)
      },
      // Within the log budget: any peer can say hello as a twin, once a dial.
      log: (line, level) => this.budget.say('twin', line, level),
    }, this.dials)
    this.reports = new Reports({
      id: this.gossip.id,
      counters: this.counters,
      admission: this.admission,
      twins: this.twins,
      maxInvalid: checked.maxInvalid,
      log: this.log,
      say: (kind, line, level) => this.budget.say(kind, line, level),
      drop: (c, code, reason, graceful, limited) => this.drop(c, code, reason, graceful, limited),
      restoredStale: (reason) => this.emit('restoredStale', reason),
    })
    this.listener = new Listener({ socket: (socket) => this.acceptSocket(socket, 'in') }, this.log)
    this.wsOrigins = options.wsOrigins ?? []
    this.stale = new Staleness(this.gossip)
    const members: MembersHost = { gossip: this.gossip, counters: this.counters, log: this.log, say: (kind, line, level) => this.budget.say(kind, line, level) }
    this.members = members
    watchOwnRecord(members, () => this.membership)
    // A refetch and what it drops, and late writes: an operator must hear of them.
    this.gossip.on('refetch', (source: string, gc: number, held: number) =>
      this.log(
        `refetching ${source}: a peer collected its deletes up to version ${gc}, which this node had not seen (away longer than the grace period); ` +
          `${held} mappings of it wait to be sent again`,
      ),
    )
    this.gossip.on('refetched', (source: string, dropped: number) => this.log(`refetched ${source}: dropped ${dropped} mappings no peer holds any more`))
    this.gossip.on('refetchAbandoned', (source: string, gc: number, kept: number) =>
      this.log(
        `refetch of ${source} abandoned: for a grace period no peer held a fresh copy of it (up to version ${gc}) to refetch from; ` +
          `its ${kept} mappings in doubt are kept (a peer that collected its deletes and meets this node tells it again)`,
        'warn',
      ),
    )
    const late = options.late
    if (late !== undefined) {
      this.gossip.on('late', (updates: Update[]) => {
        this.log(`${updates.length} writes of this node refused by peers as late (made before deletes they collected); settling them: ${late}`)
        this.gossip.settleLate(late)
      })
    }
    // 'synced' follows every write that reaches every peer: said only when
    // the peers it covers changed, so a settled cluster says it once.
    this.gossip.on('synced', () => this.readiness.check())
    for (const address of options.connect ?? []) {
      const d: Dialer = new Dialer(address, {
        min: options.backoff?.min ?? 100,
        max: options.backoff?.max ?? 5000,
        random,
        log: (line) => this.log(line, 'warn'),
        connected: (socket) => {
          const c = this.acceptSocket(socket, 'out')
          c.dialer = d
          return c
        },
        firstEnded: () => {
          // (Refused as the newer twin on a bare claim, writes wait for evidence: see Twins.doubted.)
          if (--this.undialed === 0 && !this.twins.doubted) this.twins.settle(null)
        },
      })
      this.dialers.push(d)
    }
    this.undialed = this.dialers.length
  }

  /** @internal */
  async start(listen: Partial<Address>, ws?: Partial<Address>): Promise<void> {
    const a = await this.listener.listen(listen)
    this.advertised ??= hostPort(a)
    this.log(`${this.gossip.id} listening on ${a.host}:${a.port} (cluster ${JSON.stringify(this.cluster)})`)
    if (ws !== undefined) {
      this.ws = new WebSocketServer(
        {
          maxConnections: this.opts.maxConnections,
          maxMessage: this.maxMessage,
          wsOrigins: this.wsOrigins,
          inbound: () => this.inbound(),
          closing: () => this.closing,
          webSocket: (client, address) => this.acceptWebSocket(client, address),
          count: (code) => this.admission.count(code),
          refuseOrigin: (origin) => this.admission.refuse('origin', `WebSocket from origin ${JSON.stringify(origin.slice(0, 100))} refused: not in --ws-origin, nor this node's own IP address or localhost`),
        },
        this.log,
      )
      const w = await this.ws.listen(ws)
      this.log(`${this.gossip.id} accepting WebSockets on ws://${hostPort(w)}`)
    }
    if (this.membershipOptions !== null) this.startMembership(this.membershipOptions, hostPort(a))
    if (this.metricsAt !== undefined) {
      this.metricsServer = await serveMetrics(this, this.metricsAt, this.log)
      const m = this.metricsServer.address()
      this.log(`serving metrics on http://${m.host}:${m.port}/metrics`)
    }
    const durability = this.durability
    if (durability !== null) durability.store.onFail = (err) => durability.fail(err)
    for (const d of this.dialers) d.dial()
    this.timer = setInterval(() => this.tick(), this.opts.interval)
  }

  private startMembership(options: MembershipOptions, address: string): void {
    const m = new Membership(this.gossip, { interval: this.opts.interval, ...options, address: options.address ?? address })
    this.membership = m
    sayMembers(m, this.members)
    // The node writes its record and heartbeats once a peer has answered it
    // (see answeredBy), not before.
  }

  /**
   * A peer answered one of our questions. The first time, membership starts
   * writing: by then the node has heard what a peer holds of its own id.
   * A node restarted without saved state whose past ran ahead (its clock
   * was pushed ahead, then it lost its state) would otherwise write at
   * once, below that past; the core issues such writes again just above
   * the first version of the past it hears of, where they can collide with
   * versions of the past it has not heard of yet, and a peer holding one of
   * those then never sends it (see the report of issue #12). Until a peer
   * answers there is no one to advertise to anyway.
   */
  private answeredBy(c: Connection): void {
    this.answeredOnce = true
    if (c.answered) return
    c.answered = true
    if (!this.joined) {
      this.joined = true
      this.log(`joined the cluster: peer ${c.peer} answered`)
    }
    this.twins.settle(null)
    const m = this.membership
    if (m !== null && !this.membershipStarted) {
      this.membershipStarted = true
      m.start()
    }
  }

  // A peer refused as a twin hands its acknowledged writes over (see
  // handover.ts): each is written as this node's own.
  private takeHandover(c: Connection): void {
    const who = c.session.peerId ?? c.address
    takeHandover(c.session, who, {
      // (Membership's keys are each node's own record: never another's to hand over.)
      refuses: (key) => this.membership !== null && isMembershipKey(key),
      // (A delete counts: a key deleted here at or above it would come back.
      // At their places: a copy issued again above a past ranks at `first`.)
      holds: (key, version) => {
        for (const m of this.gossip.history.get(key)) if ((m.first ?? m.version) >= version) return true
        return false
      },
      // Rule 5, as for a value of `who` that came by gossip.
      late: (w) => {
        const deletes = this.gossip.deletes
        if (w.version > deletes.horizon && w.version > deletes.gcOf(who)) return false
        this.reports.invalid(c, `late: handed write of ${JSON.stringify(w.key)} at version ${w.version} of ${who} is older than deletes this node collected (horizon ${deletes.horizon}, gc of ${who} ${deletes.gcOf(who)}); not written (see docs/deletes.md, rule 5)`, 'late')
        return true
      },
      write: (w) => this.writeHanded(w),
      took: (fresh, held, late) => {
        this.counters.handedIn += fresh
        this.log(
          `twin: took ${fresh + held + late} writes handed over by ${who} (at ${c.address}), refused as a twin: ${fresh} written as this node's own, each at its version's place, so that none it acknowledged is lost` +
            (held > 0 ? `; ${held} left out, their keys holding them or a write at or above them here` : '') +
            (late > 0 ? `; ${late} refused as late, older than deletes this node collected (rule 5): lost unless no delete beat them` : ''),
          'warn',
        )
        this.drop(c, null, null, true)
      },
      failed: (err) => {
        this.log(`twin: could not take the writes ${who} handed over (refused as a twin): ${err.message}`, 'warn')
        this.drop(c, null, null, true)
      },
      bad: (reason) => this.drop(c, 'bad_hello', reason),
    })
  }

  /** Counters since the node started. */
  stats(): NodeStats {
    for (const c of this.conns) this.countBytes(c)
    const s = this.counters
    return { ...s, invalid: { ...s.invalid }, refused: { ...s.refused }, closedBy: { ...s.closedBy }, logUnsaid: { ...s.logUnsaid } }
  }

  // Bytes of a TCP connection (a WebSocket's are not counted).
  private countBytes(c: Connection): void {
    if (c.kind !== 'tcp') return
    const socket = c.transport as net.Socket
    const s = this.counters
    const read = socket.bytesRead
    const written = socket.bytesWritten
    s.bytesReceived += read - c.countedIn
    s.bytesSent += written - c.countedOut
    c.countedIn = read
    c.countedOut = written
  }

  /** Connections open now, hello said or not (WebSocket upgrades under way included). */
  connections(): number {
    return this.conns.size + this.upgrading()
  }

  /** Where metrics are served, or null. */
  metricsAddress(): Address | null {
    return this.metricsServer?.address() ?? null
  }

  /**
   * For each connected peer that has sent a digest: how long ago, in ms,
   * this node wrote the oldest of its own updates that the peer's last
   * digest did not hold (0: it held them all).
   */
  staleness(): { id: string; ms: number }[] {
    return this.stale.of(this.conns)
  }

  /** Where the node accepts peers. */
  address(): Address {
    return this.listener.address()
  }

  /** Where the node accepts WebSocket peers, or null without `ws`. */
  wsAddress(): Address | null {
    return this.ws?.address() ?? null
  }

  // WebSocket upgrades under way: they count against maxConnections.
  private upgrading(): number {
    return this.ws?.upgrading.size ?? 0
  }

  /** The peers connected now (those whose hello was accepted). */
  peers(): PeerInfo[] {
    const out: PeerInfo[] = []
    const now = Date.now()
    for (const c of this.conns) {
      const id = c.peer
      if (id === null) continue
      const { them, us } = c.session.stream.behind
      const answering = this.readiness.answers(c, now)
      out.push({
        id,
        address: c.address,
        direction: c.direction,
        transport: c.kind,
        authenticated: c.session.authenticated,
        answering,
        synced: answering && c.synced,
        behind: { them, us },
      })
    }
    return out
  }

  /**
   * In sync with the cluster (`status.synced`; see {@link unsynced}).
   */
  synced(): boolean {
    return this.unsynced() === null
  }

  /**
   * Why the node is not in sync with the cluster at this instant, or null
   * when it is: in sync with every peer that answers, and with one at
   * least when it dials peers or knows other members (see readiness.ts). A
   * peer is in sync when its last exchange found nothing missing on either
   * side but membership's writes (with membership on, heartbeats are
   * written every interval, so two live nodes never hold the very same
   * versions for long). A node taking writes is seldom in sync at an
   * instant: readiness asks less ({@link notReady}).
   */
  unsynced(): string | null {
    return this.readiness.unsynced()
  }

  /**
   * What `/ready` says: joined (a peer answered, or it dials no one); a
   * peer it should have answers (see readiness.ts); caught up (an answer
   * found it lacking no more than goes whole in one exchange, once since
   * it started); no answering peer has found it lacking more than that for
   * `stallTimeout`; and not every other member dead. A node cut off from
   * the cluster (links closed, or dropping everything) is thus not ready,
   * while one taking a steady trickle of writes is, though it is seldom in
   * sync at an instant ({@link unsynced}).
   */
  ready(): boolean {
    return this.notReady() === null
  }

  /** Why the node is not ready, or null when it is. */
  notReady(): string | null {
    return this.readiness.notReady()
  }

  /** Why local writes are refused now (the data directory cannot be written, or every peer refuses this node as a twin: see Twins.refusal), or null. */
  get writeRefusal(): Error | null {
    return this.durability?.refusal ?? this.twins.refusal
  }

  /**
   * Write `key` locally; resolves with the write's version once it is
   * durable (at once without a data directory) and, for a node that dials
   * peers, once one admitted it (see Twins.admitted).
   * @throws TypeError (synchronously) for a bad key or a value JSON cannot carry.
   * @throws StoreFailedError (code `store_failed`) once the data directory cannot be written (the write is taken back).
   * @throws TwinError (code `twin`) when this node is the newer of two live nodes with its id, or every peer it has refuses it as a twin (the write is taken back).
   */
  async set(key: string, value: unknown): Promise<number> {
    this.writable()
    const epoch = this.twins.epoch
    return this.durable(this.write(key, () => this.gossip.set(key, value)), epoch)
  }

  /**
   * Delete `key` locally (a tombstone, see docs/guide.md, "Deletes"); resolves
   * with the delete's version once it is durable.
   * @throws TypeError (synchronously) for a bad key.
   * @throws StoreFailedError (code `store_failed`) once the data directory cannot be written (the write is taken back).
   * @throws TwinError (code `twin`) when this node is the newer of two live nodes with its id, or every peer it has refuses it as a twin (the write is taken back).
   */
  async delete(key: string): Promise<number> {
    this.writable()
    const epoch = this.twins.epoch
    return this.durable(this.write(key, () => this.gossip.delete(key)), epoch)
  }

  // A handed write (handover.ts), as set or delete make one, placed at its
  // handed version (docs/twins.md, R6); without one (an older release), a write made now.
  private writeHanded(w: TakenWrite): Promise<number> {
    const version = w.version
    if (version === undefined) return w.deleted ? this.delete(w.key) : this.set(w.key, w.value)
    this.writable()
    const epoch = this.twins.epoch
    return this.durable(this.write(w.key, () => this.gossip.handed(w.key, w.value, w.deleted, version)), epoch)
  }

  // A write refused now is not made.
  private writable(): void {
    const d = this.durability
    const twin = this.twins.refusal
    if ((d === null || d.failure === null) && twin === null) return
    this.counters.writesRefused++
    d?.writable()
    throw twin
  }

  // Make a local write; with a data directory, remembered until durable.
  private write(key: string, make: () => void): Update | undefined {
    const d = this.durability
    if (d !== null) return d.write(key, make)
    make()
    return undefined
  }

  // Resolves with the version of write `u` once it is durable and this
  // node may acknowledge it (see Twins.admitted; `epoch`: read before it).
  private async durable(u: Update | undefined, epoch: number): Promise<number> {
    const version = u?.version ?? this.gossip.version
    const d = this.durability
    await d?.flushed()
    await this.twins.admitted(this.opts.stallTimeout, epoch)
    d?.settled(u)
    this.twins.wrote()
    return version
  }

  /**
   * Exchange with one random connected peer now, preferring peers that
   * answered our last question: a crowd of peers that say hello and then
   * never answer must not slow gossip among those that do. A silent peer is
   * still asked one time in ten, so that it can come back.
   */
  gossipOnce(): boolean {
    const ready: Connection[] = []
    const silent: Connection[] = []
    for (const c of this.conns) {
      if (c.peer === null || c.closed) continue
      if (c.unanswered === 0) ready.push(c)
      else silent.push(c)
    }
    const random = this.opts.random
    const pool = ready.length > 0 && (silent.length === 0 || random() >= 0.1) ? ready : silent
    if (pool.length === 0) return false
    return this.ask(pool[Math.floor(random() * pool.length)])
  }

  private ask(c: Connection): boolean {
    if (!c.session.stream.gossip()) return false
    if (c.unanswered++ === 0) c.askedAt = Date.now()
    this.counters.asked++
    return true
  }

  /** Stop: close every connection and the server, flush and close the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    await this.untilHeld()
    if (this.timer !== null) clearInterval(this.timer)
    await this.twins.close()
    this.membership?.stop()
    if (this.metricsServer !== null) await this.metricsServer.close()
    for (const d of this.dialers) d.stop()
    for (const c of this.conns) this.drop(c, null, null)
    await this.ws?.close()
    await this.listener.close()
    this.budget.close()
    if (this.store !== null) {
      try {
        await this.store.close()
      } catch (err) {
        // A directory that cannot be written cannot be flushed: said, not thrown.
        if (this.writeRefusal === null) throw err
      }
    }
  }

  // A clean stop waits, up to stopWait, until some peer asked for our
  // writes, was sent them, and named them since (Connection.ownReceived): until then they are in our directory
  // alone, and a restore from an older backup would lose them (red team 5).
  // Naming them is not enough: a peer that echoed our digest ended the wait
  // at once (found by an attack test), and so did a twin's versions of our
  // id above ours. Gossip goes on meanwhile (the timer still runs); no
  // peer, no wait, but a warning.
  private async untilHeld(): Promise<void> {
    const wait = this.opts.stopWait
    const own = this.gossip.history.sources.get(this.gossip.id)?.max ?? -Infinity
    const some = (f: (c: Connection) => boolean): boolean => {
      for (const c of this.conns) if (f(c)) return true
      return false
    }
    const held = (): boolean => some((c) => c.ownReceived >= own)
    const peered = (): boolean => some((c) => c.peer !== null && !c.closed)
    if (wait <= 0 || own === -Infinity || held()) return
    // No peer to wait for: the operator must still hear where the writes are.
    if (!peered()) return this.log(`stop: no peer is connected to hold this node's writes up to ${own}: the latest may be in this data directory only (see operations.md, Backups)`, 'warn')
    const began = Date.now()
    this.gossipOnce()
    while (!held() && peered() && Date.now() - began < wait) await new Promise((resolve) => setTimeout(resolve, 20))
    if (held()) this.log(`stop: a peer holds this node's writes (waited ${Date.now() - began} ms)`)
    else this.log(`stop: no peer holds this node's writes up to ${own} after ${Date.now() - began} ms: the latest are in this data directory only (see operations.md, Backups)`, 'warn')
  }

  private tick(): void {
    const now = Date.now()
    this.durability?.check()
    for (const c of this.conns) {
      const overdue = c.overdue(now, this.opts.stallTimeout)
      if (overdue === null) continue
      if (overdue.code === 'timeout') this.admission.count('timeout')
      this.drop(c, overdue.code, overdue.reason)
    }
    this.gossipOnce()
    // A silent peer that stops counting can leave the node in sync without an exchange.
    this.readiness.check()
  }

  private inbound(): number {
    let n = 0
    for (const c of this.conns) if (c.direction === 'in') n++
    return n
  }

  // The options of every session of this node (and of its hello to a twin's elder).
  private sessionOptions(): SessionOptions {
    return { cluster: this.cluster, codecs: this.codecs, started: this.startedAt, address: this.advertised, auth: this.auth, nonce: randomNonce, beats: this.membership?.interval }
  }

  private acceptSocket(socket: net.Socket, direction: 'in' | 'out'): Connection {
    socket.setNoDelay(true)
    const end = () => {
      // Once what was written is sent, or in a second.
      socket.end()
      setTimeout(() => socket.destroy(), 1000).unref()
    }
    const c = this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`, direction, 'tcp', () => socket.destroy(), end)
    socket.on('error', (err) => this.drop(c, 'transport', `socket error: ${err.message}`))
    return c
  }

  private acceptWebSocket(ws: WS.WebSocket, address: string): Connection {
    let c: Connection | null = null
    const t = wsTransport(ws, () => {
      if (c === null) return
      this.reports.count('frame')
      this.drop(c, 'frame', `WebSocket message over ${this.maxMessage} bytes`)
    })
    const conn = this.accept(t.transport, address, 'in', 'ws', t.kill, t.end)
    c = conn
    t.transport.on('error', (err: Error) => this.drop(conn, 'transport', `WebSocket error: ${err.message}`))
    return conn
  }

  private accept(transport: Duplex | net.Socket, address: string, direction: 'in' | 'out', kind: 'tcp' | 'ws', kill: () => void, end: () => void): Connection {
    const c = new Connection(this.host, transport, address, direction, kind, kill, end)
    if (this.closing) {
      kill()
      return c
    }
    if (direction === 'in') {
      const room = this.admission.room(this.conns, this.upgrading())
      if (room === null) {
        this.admission.refuse('full', `refusing connections: already ${this.opts.maxConnections} that answer, or are new (maxConnections)`)
        kill()
        c.closed = true
        return c
      }
      if (room !== true) {
        // Said as refusals are: the first, then every 100th (squatters redial: each was said).
        const seen = this.admission.said('evicted')
        const why = `its slot taken by a new connection: it leaves our questions unanswered (maxConnections ${this.opts.maxConnections} reached)`
        this.drop(room, 'evicted', seen % 100 !== 0 ? null : seen === 0 ? why : `${why} (${seen + 1} times)`, false, true)
      }
    }
    this.conns.add(c)
    transport.on('close', () => this.drop(c, null, null))
    const durability = this.durability
    // Nothing leaves before it is durable: a crash never takes back what a
    // peer already has.
    const barrier = durability?.barrier()
    barrier?.on('error', (err: Error) => this.drop(c, 'store_failed', `store failed: ${err.message}`))
    const session = new Session(this.gossip, transport as Duplex, {
      ...this.sessionOptions(),
      maxLineLength: this.opts.maxLineLength,
      maxFrameLength: this.opts.maxFrameLength,
      admit: (hello) => this.twins.admit(c, hello),
      // A browser or curl pointed at the peer port is told where to go, in HTTP.
      httpAnswer:
        direction === 'in' && kind === 'tcp'
          ? `this is the peer port of simple-scuttle node ${this.gossip.id}, which speaks its gossip protocol, not HTTP: the admin endpoint is the port of its --admin (default ${DEFAULT_ADMIN_PORT}); /health and /ready are served there and on --metrics`
          : undefined,
      limits: this.limits,
      observer: c,
      barrier,
    })
    c.session = session
    this.twins.began(c)
    session.on('refused', (err: SessionError, ours: boolean) => this.reports.refused(c, err, ours))
    session.on('invalid', (what: unknown, reason: string, code: InvalidCode) => this.reports.invalid(c, reason, code))
    session.on('exceeded', (code: InvalidCode, reason: string) => {
      this.reports.count(code)
      this.drop(c, code, reason)
    })
    session.stream.on('error', (err: Error) => this.drop(c, 'node_error', err.message))
    session.stream.on('ahead', (source: string, version: number) => this.reports.ahead(c, source, version))
    session.on('open', () => this.opened(c))
    session.on('handover', () => this.takeHandover(c))
    return c
  }

  // The session is open: gossip flows.
  private opened(c: Connection): void {
    if (c.closed) return
    const s = c.session
    s.stream.on('data', (m: { digest?: unknown; done?: unknown; key?: unknown; source_id?: unknown; version?: unknown }) => c.sent(m))
    const how = s.writing === s.reading ? s.writing : `${s.writing} out, ${s.reading} in`
    this.counters.connected++
    this.budget.say('connected', `peer ${c.peer} connected (${c.direction}, ${c.kind === 'ws' ? 'WebSocket, ' : ''}${c.address}, ${how}${s.authenticated ? ', authenticated' : ''})`)
    this.twins.check(c)
    // Ask at once: whether it answers decides how often it is asked.
    this.ask(c)
  }

  // Close c. With a code: counted under it, and logged with `reason`
  // unless that is null (a refusal said often), within the log budget
  // unless the caller `limited` its lines itself. Without: the peer went,
  // or this node stops. Ended gracefully when a refusal was written to it.
  private drop(c: Connection, code: CloseCode | null, reason: string | null, graceful = false, limited = false): void {
    if (c.closed) return
    c.closed = true
    this.conns.delete(c)
    this.countBytes(c)
    this.handing.confirm(c)
    if (code !== null) {
      this.counters.closed++
      const by = this.counters.closedBy
      by[code] = (by[code] ?? 0) + 1
      const line = `closing connection to ${c.peer ?? c.session?.peerId ?? c.address}: ${reason} [${code}]`
      if (reason !== null && limited) this.log(line, 'warn')
      else if (reason !== null) this.budget.say(`closed:${code}`, line, 'warn')
    } else if (c.peer !== null && !this.closing) this.budget.say('disconnected', `peer ${c.peer} disconnected`)
    if (graceful) c.end()
    else c.kill()
    c.session?.destroy()
    if (!this.closing) this.twins.check()
  }
}

/**
 * Start a node: restore its state from `data` if given, listen, dial the
 * peers, and gossip every `interval` ms with one random connected peer.
 */
export async function startNode(options: NodeOptions): Promise<ScuttleNode> {
  const node = new ScuttleNode(options)
  try {
    await node.start(options.listen ?? {}, options.ws)
  } catch (err) {
    await node.close()
    throw err
  }
  return node
}
