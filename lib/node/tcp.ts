/**
 * A gossip node over TCP: one {@link Gossip} per process, a stream per
 * connected peer, newline-delimited JSON on the sockets, optional durable
 * state. `simple-scuttle node` is this with a command line around it.
 *
 * Each connection starts with one hello line, `{"hello":"simple-scuttle",
 * "id":ID,"codecs":["binary","ndjson"]}`, then speaks the gossip protocol
 * in the wire format the hellos agree on (see `lib/wire/handshake.ts`):
 * binary frames between nodes of this version, NDJSON with older ones or
 * when `codecs` says so. With `ws`, browsers (or any WebSocket client) join
 * the same way over a WebSocket: the same hello, the same formats, the same
 * limits. The hello also names the node's cluster (`"cluster":NAME`): a
 * peer of another cluster (a hello without `cluster` is of `"default"`) is
 * refused with a logged reason, so two clusters that can reach each other
 * never merge. A peer is disconnected, with
 * a logged reason, when it sends anything the protocol refuses (garbage,
 * over-long lines, invalid or forged updates), floods (more updates in a
 * row than `floodLimit` without ending them with a digest), or stops reading
 * for `stallTimeout` ms. Everything buffered per connection is bounded, so
 * one bad peer costs the others nothing but a share of the CPU.
 *
 * @packageDocumentation
 */
import * as net from 'net'
import { Duplex, Transform } from 'readable-stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { Gossip, PeerStream, isAheadRefusal } from '../core/gossip'
import { Membership, type Member, type MembershipOptions } from '../core/membership'
import { badName } from '../core/shape'
import { Store, type StoreOptions } from './store'
import type { Config, Resolve, Security } from '../core/types'
import { MAX_FRAME_LENGTH } from '../wire/binary'
import { FORMATS, parse, serialize, type Format } from '../wire/codec'
import { checkCodecs, chooseFormat, codecsOf, helloLine, HelloReader, type Hello } from '../wire/handshake'
import { websocketStream, type WebSocketLike } from '../wire/websocket'

/** `host:port` as an object. */
export interface Address {
  host: string
  port: number
}

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** This node's source id. */
  id: string
  /** Where to accept peers. Default 127.0.0.1, port 0 (any free port). */
  listen?: Partial<Address>
  /** Peers to dial, and redial with backoff while they are away. */
  connect?: Address[]
  /** Data directory for durable state; none keeps state in memory only. */
  data?: string
  /** Store options for `data`. */
  store?: StoreOptions
  /** Milliseconds between exchanges with one random connected peer. Default 1000. */
  interval?: number
  /** Deltas per exchange. Default `base.config.mtu`. */
  mtu?: number
  /** Further gossip configuration (`max_history`, `order`, ...). */
  config?: Partial<Config>
  /** Resolution policy (or `config.resolve`). Required: there is no safe default (see `base.resolution`). */
  resolve?: Resolve
  /** Signed updates; see `ed25519`. */
  security?: Security
  /** Where log lines go, one line each. Default: stderr, each line prefixed with `[ID] `. */
  log?: (line: string) => void
  /** Longest NDJSON line accepted from a peer. Default 1 MiB. */
  maxLineLength?: number
  /** Longest binary frame accepted from a peer, in bytes. Default MAX_FRAME_LENGTH (4 MiB). */
  maxFrameLength?: number
  /**
   * Wire formats this node speaks, preferred first: it writes the first of
   * these that the peer's hello lists. Default `['binary', 'ndjson']`;
   * `['ndjson']` keeps every connection readable by people.
   */
  codecs?: Format[]
  /**
   * Also accept peers over WebSocket here (browsers: see `joinNode`). Off
   * by default; `{}` is 127.0.0.1 on any free port.
   */
  ws?: Partial<Address>
  /** Invalid objects tolerated from one peer before it is disconnected. Default 0. */
  maxInvalid?: number
  /** Updates accepted in a row from a peer before a digest must end them. Default max(1000, 10 × mtu). */
  floodLimit?: number
  /**
   * A peer that has not read what we sent for this long, or has not said
   * hello, is disconnected. Default max(10 s, 10 × interval).
   */
  stallTimeout?: number
  /**
   * Most connections at once, in and out; a new one past it is refused.
   * Default 64.
   */
  maxConnections?: number
  /**
   * Digests (questions or replies) answered per second for one peer, on
   * average; past it a peer's digests are dropped unanswered, so no peer can
   * make this node send more than its share. Default max(4, 4 per interval).
   */
  digestRate?: number
  /** First and longest redial delay, ms. Default 100 and 5000. */
  backoff?: { min?: number; max?: number }
  /** Random numbers in [0, 1), for peer choice and jitter. Default Math.random. */
  random?: () => number
  /**
   * The cluster's name, said in the hello: a peer of another cluster is
   * refused. At most 128 characters, no control characters. Default
   * `"default"`.
   */
  cluster?: string
  /**
   * Membership and failure detection (see {@link Membership}): `true`, or
   * its options. The node advertises its listening address (or
   * `membership.address`) and heartbeats every `interval` unless told
   * otherwise. Default off: its keys (`member/…`, `heartbeat/…`) would
   * appear in the state of a program that did not ask for them.
   */
  membership?: boolean | MembershipOptions
  /** Serve Prometheus metrics over HTTP here (`GET /metrics`). Default: none. */
  metrics?: Partial<Address>
}

/** Counters a node keeps from its start (`ScuttleNode.stats()`). */
export interface NodeStats {
  /** Exchanges this node started (questions asked). */
  asked: number
  /** Questions of peers this node answered. */
  answered: number
  /** Updates sent to and received from peers. */
  updatesSent: number
  updatesReceived: number
  /** Bytes sent to and received from peers (hello lines included). */
  bytesSent: number
  bytesReceived: number
  /** Peers' digests dropped unanswered past `digestRate`. */
  digestsDropped: number
  /** Invalid inputs from peers and refused hellos, by reason (a fixed set of names: see `invalidReason`). */
  invalid: Record<string, number>
  /** Connections closed with a reason (not those a peer closed cleanly). */
  closed: number
}


/** A connected peer, as `peers()` lists it. */
export interface PeerInfo {
  /** The peer's id (null until its hello arrives). */
  id: string | null
  /** Its address as seen from here. */
  address: string
  /** 'in' if it dialed us, 'out' if we dialed it. */
  direction: 'in' | 'out'
  /** How it is connected. */
  transport: 'tcp' | 'ws'
  /** Its last exchange left it and this node holding the same versions of every source. */
  synced: boolean
  /** Updates still wanted after its last exchange: by the peer (`them`) and by this node (`us`). */
  behind: { them: number; us: number }
}

/** The cluster of a node, or of a hello, that names none. */
export const DEFAULT_CLUSTER = 'default'
const MAX_CLUSTER_LENGTH = 128

/** Why a cluster name is refused, or null. */
export function badCluster(name: unknown): string | null {
  if (typeof name !== 'string') return 'it is not a string'
  if (name.length === 0) return 'it is empty'
  if (name.length > MAX_CLUSTER_LENGTH) return `it is longer than ${MAX_CLUSTER_LENGTH} characters`
  if (CONTROL.test(name)) return 'it holds control characters'
  return null
}

/**
 * The name under which an invalid input is counted (metrics label values
 * must be a small fixed set): the kind of the reason logged.
 */
export function invalidReason(reason: string): string {
  if (/not JSON|not valid UTF-8|UTF-8/.test(reason)) return 'not_json'
  if (/line longer/.test(reason)) return 'line_too_long'
  if (/signature/.test(reason)) return 'signature'
  if (/local writes/.test(reason)) return 'local_write'
  if (/flood/.test(reason)) return 'flood'
  if (/digest/.test(reason)) return 'digest'
  if (/hello|cluster/.test(reason)) return 'hello'
  if (/threw|failed/.test(reason)) return 'node_error'
  if (/version|clock|hour/.test(reason)) return 'version'
  if (/value/.test(reason)) return 'value'
  if (/key/.test(reason)) return 'key'
  if (/source_id|\bid\b/.test(reason)) return 'source_id'
  return 'other'
}

/** One connection to a peer. */
class Connection {
  peer: string | null = null
  invalid = 0
  /** The twin report of its stream was logged (see ScuttleNode.invalid). */
  twinSaid = false
  /** A version too far ahead from it was logged (see ScuttleNode.invalid). */
  aheadSaid = false
  // Updates since the peer's last digest end.
  run = 0
  // Our questions this peer has not answered (a digest marked reply answers),
  // and whether it ever answered one.
  unanswered = 0
  answered = false
  // Digest budget (a token bucket), whether the digest coming in is being
  // dropped, and how many were.
  tokens: number
  refilled = Date.now()
  dropping = false
  inDigest = false
  dropped = 0
  // Digests dropped since one was answered.
  droppedRun = 0
  // When our output to this peer last made progress, or started waiting.
  stalledSince = -1
  closed = false
  // Entries of the digest coming in, and of the one going out.
  entriesIn = 0
  entriesOut = 0
  // The version of our own id this peer named in its digest (-Infinity:
  // none yet), while its digest comes in and once it ended; and whether
  // one ended at all.
  ownNamed = -Infinity
  ownHeld = -Infinity
  digested = false
  // Transport bytes already counted in the node's stats.
  countedIn = 0
  countedOut = 0
  readonly opened = Date.now()
  readonly stream: PeerStream

  constructor(
    readonly node: ScuttleNode,
    // Bytes to and from the peer: the TCP socket, or a WebSocket's stream.
    readonly transport: Duplex | net.Socket,
    readonly address: string,
    readonly direction: 'in' | 'out',
    readonly kind: 'tcp' | 'ws',
    // Ends the connection at once.
    readonly kill: () => void,
  ) {
    // A remote peer never writes as this node.
    this.stream = node.gossip.createStream({ local_writes: false })
    this.tokens = BURST
  }
}

// Digests a peer may send at once before its rate applies.
const BURST = 8
/** Digests dropped in a row past the rate, beyond which a peer is closed as flooding. */
const DIGEST_FLOOD = 1000
// Own writes remembered for peers' staleness.
const OWN_TIMES = 4096

// C0 and C1 control characters, and DEL.
// Control characters, and the invisible ones that reorder or hide text
// (bidi overrides, zero-width marks): none belongs in an id or a log line.
/** @internal */
export const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u
const CONTROLS = new RegExp(CONTROL.source, 'gu')

// A log line with control characters shown as escapes: no peer can end a
// line of ours or send a terminal an escape sequence.
function printable(line: string): string {
  return CONTROL.test(line) ? line.replace(CONTROLS, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`) : line
}

function parseAddress(text: string): Address {
  const i = text.lastIndexOf(':')
  const port = Number(text.slice(i + 1))
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`not HOST:PORT: "${text}"`)
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  return { host, port }
}

export { parseAddress }

/** A running node; see {@link startNode}. */
export class ScuttleNode {
  /** The node's state and protocol. */
  readonly gossip: Gossip
  /** Its durable state, if it has a data directory. */
  readonly store: Store | null
  private readonly server: net.Server
  private wsServer: WebSocketServer | null = null
  private readonly codecs: Format[]
  private readonly conns = new Set<Connection>()
  private readonly dialers: {
    address: Address
    timer: NodeJS.Timeout | null
    delay: number
    socket: net.Socket | null
    // The last attempt failed (its error was logged; the next ones are not).
    failing: boolean
  }[] = []
  private timer: NodeJS.Timeout | null = null
  private closing = false
  /** The cluster this node belongs to (said in its hello). */
  readonly cluster: string
  /** Membership and failure detection, when `options.membership` asked for it (set once listening). */
  membership: Membership | null = null
  /** When the node started, ms since the epoch. */
  readonly startedAt = Date.now()
  private readonly membershipOptions: MembershipOptions | null
  private readonly counters: NodeStats = {
    asked: 0,
    answered: 0,
    updatesSent: 0,
    updatesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    digestsDropped: 0,
    invalid: Object.create(null) as Record<string, number>,
    closed: 0,
  }
  // Our own writes, [version, ms] pairs in version order (the latest
  // OWN_TIMES), for the staleness of peers.
  private ownTimes: number[] = []
  // The peers the last "in sync" log line named.
  private syncedWith = ''
  private metricsServer: { close(): Promise<void>; address(): Address } | null = null
  private readonly metricsAt: Partial<Address> | undefined
  // Peer addresses refused for the same reason last time (a dialer retries
  // with backoff; the reason is logged once until it changes).
  private readonly refusals = new Map<string, number>()
  // Invalid membership reports logged so far (one in 100 is logged).
  private memberInvalid = 0
  private membershipStarted = false
  /** @internal Called with each digest's number of entries, sent or received (the metrics' histogram). */
  onDigest: ((direction: 'sent' | 'received', entries: number) => void) | null = null
  private readonly log: (line: string) => void
  private readonly opts: Required<
    Pick<NodeOptions, 'interval' | 'maxLineLength' | 'maxFrameLength' | 'maxInvalid' | 'floodLimit' | 'stallTimeout' | 'maxConnections' | 'digestRate'>
  > & {
    min: number
    max: number
    random: () => number
  }

  /** @internal Use {@link startNode}. */
  constructor(options: NodeOptions) {
    const interval = options.interval ?? 1000
    if (!(interval > 0)) throw new TypeError('interval must be a positive number of milliseconds')
    this.codecs = options.codecs === undefined ? [...FORMATS] : checkCodecs(options.codecs)
    const config: Config = {
      ...options.config,
      resolve: options.resolve ?? options.config?.resolve ?? null,
    }
    if (options.mtu !== undefined) config.mtu = options.mtu
    if (options.security !== undefined) config.security = options.security
    const cluster = options.cluster ?? DEFAULT_CLUSTER
    const bad = badCluster(cluster)
    if (bad !== null) throw new TypeError(`cluster name refused: ${bad}`)
    this.cluster = cluster
    const m = options.membership ?? false
    if (m !== false && m !== true && (typeof m !== 'object' || m === null)) throw new TypeError('membership must be a boolean or options')
    this.membershipOptions = m === false ? null : m === true ? {} : m
    this.metricsAt = options.metrics
    const random = options.random ?? Math.random
    // One line per entry, whatever a peer put in an id or a reason.
    const sink = options.log ?? ((line: string) => process.stderr.write(`[${printable(String(options.id))}] ${line}\n`))
    this.log = (line) => sink(printable(line))
    const store = options.data === undefined ? null : Store.open(options.data, options.id, { log: this.log, ...options.store })
    try {
      this.gossip = store?.state === undefined ? new Gossip(options.id, config) : Gossip.restore(options.id, config, store.state)
      store?.attach(this.gossip)
    } catch (err) {
      void store?.close()
      throw err
    }
    this.store = store
    const mtu = this.gossip.mtu
    this.opts = {
      interval,
      maxLineLength: options.maxLineLength ?? 1 << 20,
      maxFrameLength: options.maxFrameLength ?? MAX_FRAME_LENGTH,
      maxInvalid: options.maxInvalid ?? 0,
      floodLimit: options.floodLimit ?? Math.max(1000, 10 * mtu),
      stallTimeout: options.stallTimeout ?? Math.max(10_000, 10 * interval),
      maxConnections: options.maxConnections ?? 64,
      digestRate: options.digestRate ?? Math.max(4, 4000 / interval),
      min: options.backoff?.min ?? 100,
      max: options.backoff?.max ?? 5000,
      random,
    }
    const own = this.gossip.id
    this.gossip.history.on('update', (u) => {
      if (u.source_id !== own) return
      const times = this.ownTimes
      if (times.length >= 2 * OWN_TIMES) this.ownTimes = times.slice(OWN_TIMES)
      this.ownTimes.push(u.version, Date.now())
    })
    // A reset drops what this node holds: an operator must hear of it.
    this.gossip.on('reset', (below: number, dropped: number) =>
      this.log(
        `reset by a peer that collected deletes this node had not seen (below version ${below}): ` +
          `dropped ${dropped} mappings, taking them again from peers (a partition longer than the grace period, or without --keys a hostile peer)`,
      ),
    )
    // 'synced' follows every write that reaches every peer: logged only
    // when the peers it covers changed, so a settled cluster logs it once.
    this.gossip.on('synced', () => {
      const peers = this.peers()
      if (peers.length === 0 || !this.synced()) return
      const ids = peers.map((p) => p.id).sort().join(', ')
      if (ids === this.syncedWith) return
      this.syncedWith = ids
      this.log(`in sync with every connected peer (${ids})`)
    })
    this.server = net.createServer((socket) => this.acceptSocket(socket, 'in'))
    for (const address of options.connect ?? []) {
      this.dialers.push({ address, timer: null, delay: this.opts.min, socket: null, failing: false })
    }
  }

  /** @internal */
  async start(listen: Partial<Address>, ws?: Partial<Address>): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.server.on('error', (err) => this.log(`server error: ${err.message}`))
    const a = this.address()
    this.log(`${this.gossip.id} listening on ${a.host}:${a.port} (cluster ${JSON.stringify(this.cluster)})`)
    if (ws !== undefined) {
      const server = new WebSocketServer({
        host: ws.host ?? '127.0.0.1',
        port: ws.port ?? 0,
        // A message is refused before it is buffered past one frame.
        maxPayload: this.opts.maxFrameLength + 4096,
        perMessageDeflate: false,
      })
      this.wsServer = server
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.once('listening', () => {
          server.off('error', reject)
          resolve()
        })
      })
      server.on('error', (err) => this.log(`WebSocket server error: ${err.message}`))
      server.on('connection', (socket, req) => this.acceptWebSocket(socket, `${req.socket.remoteAddress}:${req.socket.remotePort}`))
      const w = this.wsAddress() as Address
      this.log(`${this.gossip.id} accepting WebSockets on ws://${w.host}:${w.port}`)
    }
    if (this.membershipOptions !== null) this.startMembership(this.membershipOptions, `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`)
    if (this.metricsAt !== undefined) {
      const { serveMetrics } = await import('./metrics')
      this.metricsServer = await serveMetrics(this, this.metricsAt, this.log)
      const m = this.metricsServer.address()
      this.log(`serving metrics on http://${m.host}:${m.port}/metrics`)
    }
    for (const d of this.dialers) this.dial(d)
    this.timer = setInterval(() => this.tick(), this.opts.interval)
  }

  private startMembership(options: MembershipOptions, address: string): void {
    const m = new Membership(this.gossip, { interval: this.opts.interval, ...options, address: options.address ?? address })
    this.membership = m
    const where = (member: Member) => (member.address === null ? '' : ` at ${member.address}`)
    m.on('live', (member: Member) => this.log(`member ${member.id} is live${where(member)}`))
    m.on('dead', (member: Member) =>
      this.log(
        `member ${member.id} is dead${where(member)}: no heartbeat for ${member.lastHeard} ms ` +
          `(phi ${member.phi.toFixed(1)} > ${m.threshold}; heartbeats came every ${Math.round(member.interval ?? 0)} ms)`,
      ),
    )
    m.on('restart', (member: Member) => this.log(`member ${member.id} restarted (a new incarnation${where(member)})`))
    m.on('collected', (member: Member, deleted: boolean) =>
      this.log(
        deleted
          ? `member ${member.id} collected: dead for ${m.grace} ms or more, dropped from the member list, its record and heartbeat deleted`
          : `member ${member.id} collected early: dead longest, dropped from the member list to make room (maxMembers)`,
      ),
    )
    m.on('invalid', (id: string, reason: string) => {
      if (this.memberInvalid++ % 100 === 0) this.log(`member ${id}: ${reason} (${this.memberInvalid} such reports so far)`)
    })
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
    if (c.answered) return
    c.answered = true
    const m = this.membership
    if (m !== null && !this.membershipStarted) {
      this.membershipStarted = true
      m.start()
    }
  }

  /** Counters since the node started. */
  stats(): NodeStats {
    for (const c of this.conns) this.countBytes(c)
    const s = this.counters
    return { ...s, invalid: { ...s.invalid } }
  }

  // Bytes of a TCP connection (a WebSocket's are not counted).
  private countBytes(c: Connection): void {
    if (!(c.transport instanceof net.Socket)) return
    const s = this.counters
    const read = c.transport.bytesRead
    const written = c.transport.bytesWritten
    s.bytesReceived += read - c.countedIn
    s.bytesSent += written - c.countedOut
    c.countedIn = read
    c.countedOut = written
  }

  /** Connections open now, hello said or not. */
  connections(): number {
    return this.conns.size
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
    const now = Date.now()
    const times = this.ownTimes
    const out: { id: string; ms: number }[] = []
    for (const c of this.conns) {
      if (c.peer === null || !c.digested) continue
      let ms = 0
      if (times.length > 0 && times[times.length - 2] > c.ownHeld) {
        // The first of our writes above what the peer holds.
        let lo = 0
        let hi = times.length / 2 - 1
        while (lo < hi) {
          const mid = (lo + hi) >> 1
          if (times[2 * mid] > c.ownHeld) hi = mid
          else lo = mid + 1
        }
        ms = now - times[2 * lo + 1]
      }
      out.push({ id: c.peer, ms })
    }
    return out
  }

  /** Where the node accepts peers. */
  address(): Address {
    const a = this.server.address() as net.AddressInfo
    return { host: a.address, port: a.port }
  }

  /** Where the node accepts WebSocket peers, or null without `ws`. */
  wsAddress(): Address | null {
    const a = this.wsServer?.address()
    return a === undefined || a === null || typeof a === 'string' ? null : { host: a.address, port: a.port }
  }

  /** The peers connected now (those that said hello). */
  peers(): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const c of this.conns) {
      if (c.peer === null) continue
      const { them, us } = c.stream.behind
      out.push({ id: c.peer, address: c.address, direction: c.direction, transport: c.kind, synced: c.stream.synced, behind: { them, us } })
    }
    return out
  }

  /** Whether every connected peer is in sync with this node (true with none). */
  synced(): boolean {
    for (const c of this.conns) if (c.peer !== null && !c.closed && !c.stream.synced) return false
    return true
  }

  /**
   * Write `key` locally; resolves with the write's version once it is
   * durable (at once without a data directory).
   * @throws TypeError (synchronously) for a bad key or a value JSON cannot carry.
   */
  async set(key: string, value: unknown): Promise<number> {
    this.gossip.set(key, value)
    return this.durable()
  }

  /**
   * Delete `key` locally (a tombstone, see the README, "Deletes"); resolves
   * with the delete's version once it is durable.
   * @throws TypeError (synchronously) for a bad key.
   */
  async delete(key: string): Promise<number> {
    this.gossip.delete(key)
    return this.durable()
  }

  private async durable(): Promise<number> {
    const version = this.gossip.version
    if (this.store !== null) await this.store.flush()
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
    if (!c.stream.gossip()) return false
    c.unanswered++
    this.counters.asked++
    return true
  }

  /** Stop: close every connection and the server, flush and close the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.timer !== null) clearInterval(this.timer)
    this.membership?.stop()
    if (this.metricsServer !== null) await this.metricsServer.close()
    for (const d of this.dialers) {
      if (d.timer !== null) clearTimeout(d.timer)
      d.socket?.destroy()
    }
    for (const c of this.conns) this.drop(c, null)
    if (this.wsServer !== null) {
      for (const client of this.wsServer.clients) client.terminate()
      await new Promise<void>((resolve) => (this.wsServer as WebSocketServer).close(() => resolve()))
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    if (this.store !== null) await this.store.close()
  }

  private tick(): void {
    const now = Date.now()
    for (const c of this.conns) {
      if (c.peer === null && now - c.opened >= this.opts.stallTimeout) {
        this.drop(c, `no hello within ${now - c.opened} ms`)
        continue
      }
      // A peer that does not read what we send is dropped: its buffers are
      // bounded, but it would hold them, and our streams, for good.
      if (c.transport.writableNeedDrain || c.stream.readableLength >= c.stream.readableHighWaterMark) {
        if (c.stalledSince < 0) c.stalledSince = now
        else if (now - c.stalledSince >= this.opts.stallTimeout) this.drop(c, `not reading for ${now - c.stalledSince} ms`)
      } else {
        c.stalledSince = -1
      }
    }
    this.gossipOnce()
  }

  private dial(d: (typeof this.dialers)[number]): void {
    if (this.closing) return
    d.timer = null
    const socket = net.connect({ host: d.address.host, port: d.address.port })
    d.socket = socket
    let conn: Connection | null = null
    socket.once('connect', () => {
      d.failing = false
      conn = this.acceptSocket(socket, 'out')
    })
    socket.on('error', (err) => {
      if (conn !== null || d.failing) return
      d.failing = true
      this.log(`dial ${d.address.host}:${d.address.port}: ${err.message} (retrying with backoff)`)
    })
    socket.once('close', () => {
      d.socket = null
      if (this.closing) return
      // Back off while the peer stays away or misbehaves; only a connection
      // that answered one of our questions starts the backoff again.
      if (conn?.answered === true) d.delay = this.opts.min
      const jitter = 0.5 + this.opts.random()
      const wait = Math.min(this.opts.max, d.delay) * jitter
      d.delay = Math.min(this.opts.max, d.delay * 2)
      d.timer = setTimeout(() => this.dial(d), wait)
    })
  }

  private inbound(): number {
    let n = 0
    for (const c of this.conns) if (c.direction === 'in') n++
    return n
  }

  // The incoming connection to let go for a new one: the oldest that never
  // answered a question of ours (or never said hello), else the one that
  // let the most go unanswered since its last answer, two at least (one
  // may just be in flight): a peer that answers is kept.
  private idlest(): Connection | null {
    let never: Connection | null = null
    let lapsed: Connection | null = null
    for (const c of this.conns) {
      if (c.direction !== 'in') continue
      if (!c.answered) {
        if (never === null || c.opened < never.opened) never = c
      } else if (c.unanswered >= 2 && (lapsed === null || c.unanswered > lapsed.unanswered)) lapsed = c
    }
    return never ?? lapsed
  }

  private acceptSocket(socket: net.Socket, direction: 'in' | 'out'): Connection {
    socket.setNoDelay(true)
    const c = this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`, direction, 'tcp', () => socket.destroy())
    socket.on('error', (err) => this.drop(c, `socket error: ${err.message}`))
    return c
  }

  private acceptWebSocket(ws: WebSocket, address: string): Connection {
    const transport = websocketStream(ws as unknown as WebSocketLike)
    const c = this.accept(transport, address, 'in', 'ws', () => ws.terminate())
    // ws closes a connection whose message passes maxPayload (1009).
    ws.on('close', (code: number) => {
      if (code === 1009) this.drop(c, `WebSocket message over ${this.opts.maxFrameLength + 4096} bytes`)
    })
    transport.on('error', (err: Error) => this.drop(c, `WebSocket error: ${err.message}`))
    return c
  }

  private accept(transport: Duplex | net.Socket, address: string, direction: 'in' | 'out', kind: 'tcp' | 'ws', kill: () => void): Connection {
    const c = new Connection(this, transport, address, direction, kind, kill)
    if (this.closing) {
      kill()
      return c
    }
    // Past maxConnections an incoming connection takes the slot of one that
    // does not answer our questions (see idlest), so that a crowd of peers
    // that say hello (and perhaps answer once) and then nothing cannot keep
    // the cluster out; our own dials always get in (--connect bounds them).
    if (direction === 'in' && this.inbound() >= this.opts.maxConnections) {
      const idle = this.idlest()
      if (idle === null) {
        this.refuse(c, `refusing connections: already ${this.opts.maxConnections} that answer (maxConnections)`)
        return c
      }
      this.refuse(idle, `closing a connection that leaves our questions unanswered: its slot taken by a new one (maxConnections ${this.opts.maxConnections} reached)`)
    }
    this.conns.add(c)
    transport.on('close', () => this.drop(c, null))
    transport.write(helloLine(this.gossip.id, this.codecs, this.cluster))
    const invalid = (what: unknown, reason: string) => this.invalid(c, what, reason)
    c.stream.on('invalid', invalid)
    c.stream.on('error', (err: Error) => this.drop(c, err.message))
    const reader = new HelloReader()
    reader.on('invalid', (_what: unknown, reason: string) => this.refuse(c, reason))
    reader.on('hello', (hello: Hello) => this.hello(c, reader, hello, invalid))
    ;(transport as Duplex).pipe(reader)
    return c
  }

  // The peer said hello: check it, agree on the formats, and start.
  private hello(c: Connection, reader: HelloReader, hello: Hello, invalid: (what: unknown, reason: string) => void): void {
    if (c.closed) return
    const id = hello.id
    const cluster = hello.cluster ?? DEFAULT_CLUSTER
    if (badName('id', id) !== null || CONTROL.test(id)) {
      this.refuse(c, `hello with a bad id: ${badName('id', id) ?? 'it holds control characters'}`)
      return
    }
    if (badCluster(cluster) !== null) {
      this.refuse(c, `hello with a bad cluster name: ${badCluster(cluster)}`)
      return
    }
    if (cluster !== this.cluster) {
      this.refuse(
        c,
        `peer ${id} is of cluster ${JSON.stringify(cluster)}, this node of ${JSON.stringify(this.cluster)}: refused, ` +
          'so that the two clusters do not merge (if they are one, give both the same --cluster)',
      )
      return
    }
    if (id === this.gossip.id) {
      this.drop(c, 'connected to itself')
      return
    }
    const theirs = codecsOf(hello)
    const writing = chooseFormat(this.codecs, theirs)
    const reading = chooseFormat(theirs, this.codecs)
    if (writing === null || reading === null) {
      this.drop(c, `no wire format in common (ours: ${this.codecs.join(', ')}; theirs: ${theirs.join(', ')})`)
      return
    }
    const out = serialize({ format: writing })
    const input = parse({ format: reading, maxLineLength: this.opts.maxLineLength, maxFrameLength: this.opts.maxFrameLength })
    input.on('invalid', invalid)
    out.on('invalid', invalid)
    // What we send, counted (attached as the stream is piped, so that
    // nothing flows before the pipe takes it).
    c.stream.on('data', (m: { digest?: unknown; done?: unknown }) => {
      if (m.digest !== true) this.counters.updatesSent++
      else if (m.done !== true) c.entriesOut++
      else {
        this.onDigest?.('sent', c.entriesOut)
        c.entriesOut = 0
      }
    })
    if (this.store === null) {
      c.stream.pipe(out).pipe(c.transport as Duplex)
    } else {
      // Nothing leaves before it is durable: a crash never takes back what
      // a peer already has.
      const barrier = this.store.barrier()
      barrier.on('error', (err: Error) => this.drop(c, `store failed: ${err.message}`))
      c.stream.pipe(barrier).pipe(out).pipe(c.transport as Duplex)
    }
    reader.pipe(input).pipe(this.gate(c)).pipe(c.stream)
    c.peer = id
    this.log(`peer ${id} connected (${c.direction}, ${c.kind === 'ws' ? 'WebSocket, ' : ''}${c.address}, ${writing === reading ? writing : `${writing} out, ${reading} in`})`)
    // Ask at once: whether it answers decides how often it is asked.
    this.ask(c)
  }

  // Between the parsed input and the peer's gossip stream: counts updates
  // to catch a flood, and digests against the peer's rate.
  private gate(c: Connection): Transform {
    const node = this
    return new Transform({
      objectMode: true,
      highWaterMark: 16,
      transform(chunk: Record<string, unknown>, _encoding, callback) {
        // What a closed connection still had in its buffers goes nowhere.
        if (c.closed) {
          callback()
          return
        }
        if (typeof chunk === 'object' && chunk !== null && chunk.digest === true) {
          // Rate: a digest's first object takes a token, or the whole digest
          // (its entries and its end) is dropped unanswered.
          if (!c.inDigest) {
            c.inDigest = true
            c.dropping = !node.take(c)
            c.entriesIn = 0
            c.ownNamed = -Infinity
          }
          if (chunk.done === true) {
            c.inDigest = false
            // Only a digest taken ends a run of updates: dropped ones would
            // let a flood through.
            if (!c.dropping) c.run = 0
            if (chunk.reply === true) {
              c.unanswered = 0
              node.answeredBy(c)
            } else if (!c.dropping) {
              node.counters.answered++
            }
            if (!c.dropping) {
              node.onDigest?.('received', c.entriesIn)
              // What the peer holds of ours, if this digest (or part) covers our id.
              const own = node.gossip.id
              const after = chunk.after
              const through = chunk.through
              if ((typeof after !== 'string' || own > after) && (typeof through !== 'string' || own <= through)) {
                c.ownHeld = c.ownNamed
                c.digested = true
              }
            }
          } else {
            c.entriesIn++
            const source = chunk.source_id ?? chunk.id
            const version = chunk.version
            if (source === node.gossip.id && typeof version === 'number') c.ownNamed = version
          }
          if (c.dropping) {
            callback()
            return
          }
        } else if (++c.run > node.opts.floodLimit) {
          node.count('flooding')
          node.drop(c, `flooding: more than ${node.opts.floodLimit} updates without a digest`)
          callback()
          return
        } else {
          node.counters.updatesReceived++
        }
        callback(null, chunk)
      },
    })
  }

  // One digest's worth of c's budget, if there is one.
  private take(c: Connection): boolean {
    const now = Date.now()
    const rate = this.opts.digestRate
    c.tokens = Math.min(BURST, c.tokens + ((now - c.refilled) / 1000) * rate)
    c.refilled = now
    if (c.tokens >= 1) {
      c.tokens -= 1
      c.droppedRun = 0
      return true
    }
    this.counters.digestsDropped++
    c.dropped++
    // A peer a thousand digests past its rate without one answered floods:
    // an honest one sends one question per interval.
    if (++c.droppedRun > DIGEST_FLOOD) {
      this.count('flooding')
      this.drop(c, `flooding: more than ${DIGEST_FLOOD} digests past ${rate}/s in a row`)
      return false
    }
    if (c.dropped === 1 || c.dropped % 1000 === 0) {
      this.log(`peer ${c.peer ?? c.address}: digests past ${rate}/s dropped unanswered (${c.dropped} so far)`)
    }
    return false
  }

  // A refused hello, counted, and logged the first time and every 100th
  // after for one reason (and one address we dial: a dialer retries with
  // backoff, and would say the same every time).
  private refuse(c: Connection, reason: string): void {
    if (c.closed) return
    this.count(reason)
    const key = c.direction === 'out' ? `${c.address} ${reason}` : reason
    const seen = this.refusals.get(key) ?? 0
    if (this.refusals.size >= 1000) this.refusals.clear()
    this.refusals.set(key, seen + 1)
    if (seen % 100 === 0) {
      this.drop(c, seen === 0 ? reason : `${reason} (${seen + 1} times)`)
      return
    }
    c.closed = true
    this.conns.delete(c)
    this.countBytes(c)
    this.counters.closed++
    c.kill()
    c.stream.unpipe()
    c.stream.destroy()
  }

  private count(reason: string): void {
    const name = invalidReason(reason)
    const invalid = this.counters.invalid
    invalid[name] = (invalid[name] ?? 0) + 1
  }

  private invalid(c: Connection, what: unknown, reason: string): void {
    if (c.closed) return
    this.count(reason)
    // A twin (see Clock.TWIN_LIMIT) is reported once per stream, and the peer
    // kept: it may only relay what a twin or a liar wrote as us.
    if (c.stream.twin && !c.twinSaid) {
      c.twinSaid = true
      this.log(`peer ${c.peer ?? c.address}: ${reason} (its claims on our id are ignored from now on)`)
      return
    }
    // A version too far ahead is refused and the peer kept: an honest peer
    // relays what a node with a wrong clock wrote (logged once per
    // connection; what a flood of them costs, floodLimit bounds).
    if (isAheadRefusal(reason)) {
      if (!c.aheadSaid) {
        c.aheadSaid = true
        this.log(`peer ${c.peer ?? c.address}: refused ${reason} (said once per connection; the peer is kept)`)
      }
      return
    }
    c.invalid++
    if (c.invalid > this.opts.maxInvalid) this.drop(c, `sent invalid input: ${reason}`)
    else this.log(`peer ${c.peer ?? c.address}: invalid input dropped: ${reason}`)
  }

  private drop(c: Connection, reason: string | null): void {
    if (c.closed) return
    c.closed = true
    this.conns.delete(c)
    this.countBytes(c)
    if (reason !== null) this.counters.closed++
    if (reason !== null) this.log(`closing connection to ${c.peer ?? c.address}: ${reason}`)
    else if (c.peer !== null && !this.closing) this.log(`peer ${c.peer} disconnected`)
    c.kill()
    c.stream.unpipe()
    c.stream.destroy()
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
