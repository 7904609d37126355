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
 * @packageDocumentation
 */
import * as fs from 'fs'
import * as http from 'http'
import * as net from 'net'
import { EventEmitter } from 'events'
import { Transform, type Duplex } from 'readable-stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { Gossip } from '../gossip'
import { Clock } from '../clock'
import { isMembershipKey, Membership, MEMBER_PREFIX, type Member, type MembershipOptions } from '../membership'
import { Store, type StoreOptions } from './store'
import { barrier } from '../barrier'
import type { Config, Resolve, Security, Update } from '../types'
import { MAX_FRAME_LENGTH } from '../wire/binary'
import { FORMATS, type Format } from '../wire/codec'
import { checkCodecs } from '../wire/handshake'
import { badCluster, CONTROL, Session, SessionError, type HelloAuth, type InputCode, type PeerHello, type RefusalCode } from '../wire/session'
import { websocketStream, type WebSocketLike } from '../wire/websocket'
import { randomNonce } from './security'
import { Dialer } from './dialer'
import { serveMetrics, type MetricsServer } from './metrics'
import type { Address, NodeStats, PeerInfo } from './types'

export type { Address, NodeStats, PeerInfo }
export { badCluster }

/** The port `simple-scuttle node` listens on unless told otherwise (its admin endpoint: {@link DEFAULT_ADMIN_PORT}). */
export const DEFAULT_PORT = 7946
/** The port of the admin endpoint (`--admin`) unless told otherwise. */
export const DEFAULT_ADMIN_PORT = 7947

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** This node's source id. */
  id: string
  /** Where to accept peers. Default 127.0.0.1, port 0 (any free port; the command's default is {@link DEFAULT_PORT}). */
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
  /**
   * What to do with this node's writes that peers refuse as late (made
   * before deletes they collected, while this node heard from none of them;
   * see docs/deletes.md, rule 7): `'keep'` writes them again, `'drop'`
   * withdraws them. Unset: the node's `'late'` event is left to the caller.
   */
  late?: 'keep' | 'drop'
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
  /**
   * Hello proofs (`helloAuth`): every peer must prove its id with its key,
   * and a peer without one is refused. `simple-scuttle node --keys` sets it.
   */
  auth?: HelloAuth
  /**
   * Origins a browser's WebSocket may come from (its `Origin` header, as
   * `https://host:port`), besides the node's own host. Clients that send no
   * Origin (not browsers) are not asked. Default: none besides the own host.
   */
  wsOrigins?: string[]
  /**
   * New members (records `member/<id>` of an id not yet held) one peer may
   * introduce per interval, besides itself; the rest wait for a later
   * exchange. Bounds how fast one peer can fill `maxMembers`. Default 8.
   */
  memberRate?: number
  /** The address said in this node's hello (where a twin is told its elder is). Default: the listening address. */
  advertise?: string
}


/** The cluster of a node, or of a hello, that names none. */
export const DEFAULT_CLUSTER = 'default'

/**
 * The code under which an input the gossip stream or the codec refused is
 * counted and logged. The stream says why in text (the core's reasons);
 * this reads the update itself where it can (a version too far ahead) and
 * the reason's kind otherwise.
 */
export function invalidReason(reason: string, what?: unknown, code?: string): InputCode {
  // The core's own codes, where it gives one (see Gossip's 'invalid').
  if (code === 'late' || code === 'notice_unsigned' || code === 'restored_stale') return code
  const v = (what as { version?: unknown } | null)?.version
  if (typeof v === 'number' && typeof (what as { source_id?: unknown }).source_id === 'string' && v > Clock.now() + Clock.AHEAD) return 'ahead'
  if (/not JSON|not valid UTF-8|UTF-8/.test(reason)) return 'not_json'
  if (/line longer/.test(reason)) return 'line_too_long'
  if (/frame|opcode|malformed|cut at the end/.test(reason)) return 'frame'
  if (/signature/.test(reason)) return 'signature'
  if (/local writes/.test(reason)) return 'local_write'
  if (/flood/.test(reason)) return 'flood'
  if (/digest/.test(reason)) return 'digest'
  if (/threw|failed/.test(reason)) return 'node_error'
  if (/version|clock|hour/.test(reason)) return 'version'
  if (/value/.test(reason)) return 'value'
  if (/key/.test(reason)) return 'key'
  if (/source_id|\bid\b/.test(reason)) return 'source_id'
  return 'other'
}

/** One connection to a peer. */
class Connection {
  invalid = 0
  /** The twin report of its stream was logged (see ScuttleNode.invalid). */
  twinSaid = false
  /** A version too far ahead from it was logged (see ScuttleNode.invalid). */
  aheadSaid = false
  /** A value refused as late from it was logged (see ScuttleNode.invalid). */
  lateSaid = false
  /** Sources whose versions far ahead it brought were logged (see ScuttleNode.ahead). */
  aheadOf: Set<string> | null = null
  // Updates since the peer's last digest end.
  run = 0
  // Our questions this peer has not answered (a digest marked reply answers),
  // whether it ever answered one, and when it last did.
  unanswered = 0
  answered = false
  answeredAt = 0
  // Digest budget (a token bucket), whether the digest coming in is being
  // dropped, and how many were.
  tokens: number
  refilled = Date.now()
  dropping = false
  inDigest = false
  dropped = 0
  // Digests dropped since one was answered.
  droppedRun = 0
  // New members this peer may still introduce (a token bucket), and the
  // sources whose updates wait for a later exchange in this message.
  memberTokens: number
  memberRefilled = Date.now()
  held = new Set<string>()
  // A new member it introduced waited (said once per connection).
  memberSaid = false
  // Its last whole digest named no source, though this node holds some.
  claimsNothing = false
  // Updates other than heartbeats moved either way since the peer's last
  // reply, and at the reply before (see quiet).
  moved = 0
  quiet = false
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
  session!: Session

  constructor(
    // Bytes to and from the peer: the TCP socket, or a WebSocket's stream.
    readonly transport: Duplex | net.Socket,
    readonly address: string,
    readonly direction: 'in' | 'out',
    readonly kind: 'tcp' | 'ws',
    // Ends the connection at once, or once what was written is sent.
    readonly kill: () => void,
    readonly end: () => void,
    memberRate: number,
  ) {
    this.tokens = BURST
    this.memberTokens = memberRate
  }

  /** The peer's id once its hello was accepted, else null. */
  get peer(): string | null {
    return this.session?.isOpen === true ? this.session.peerId : null
  }
}

// Digests a peer may send at once before its rate applies.
const BURST = 8
/** Digests dropped in a row past the rate, beyond which a peer is closed as flooding. */
const DIGEST_FLOOD = 1000
// Ms a new connection has to answer before a newcomer may take its slot.
const GRACE = 1000
// Own writes remembered for peers' staleness.
const OWN_TIMES = 4096
const HEARTBEAT_PREFIX = 'heartbeat/'

export { CONTROL }
const CONTROLS = new RegExp(CONTROL.source, 'gu')

// A log line with control characters shown as escapes: no peer can end a
// line of ours or send a terminal an escape sequence.
function printable(line: string): string {
  return CONTROL.test(line) ? line.replace(CONTROLS, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`) : line
}

/** `HOST:PORT` (`[v6]:PORT`; `:PORT` is 127.0.0.1) as an {@link Address}. @throws TypeError saying what is wrong. */
export function parseAddress(text: string): Address {
  const i = text.lastIndexOf(':')
  if (i < 0) throw new TypeError(`not HOST:PORT: "${text}"`)
  const portText = text.slice(i + 1)
  const port = Number(portText)
  if (portText === '' || !Number.isInteger(port)) throw new TypeError(`the port of "${text}" is not a number`)
  if (port < 0 || port > 65535) throw new TypeError(`port ${port} of "${text}" is out of range (0 to 65535)`)
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  return { host, port }
}

const hostPort = (a: Address): string => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`

/** What a node reports of a twin: another live node with its id. */
export interface TwinReport {
  /** This node is the newer of the two: it should stop. */
  newer: boolean
  /** Where the other one is, as far as known. */
  address: string | null
  /** When the other one started, ms since the epoch, if it said. */
  started: number | null
}

/**
 * A running node; see {@link startNode}. Emits `'twin'` ({@link TwinReport})
 * when another live node has its id (`newer: true`: this one should stop;
 * `simple-scuttle node` then exits), `'synced'` once every connected peer is
 * in sync (see {@link ScuttleNode.synced}), and `'store-failed'` (err) once
 * its data directory cannot be written.
 */
export class ScuttleNode extends EventEmitter {
  /** The node's state and protocol. */
  readonly gossip: Gossip
  /** Its durable state, if it has a data directory. */
  readonly store: Store | null
  private readonly server: net.Server
  private wsServer: WebSocketServer | null = null
  private wsHttp: http.Server | null = null
  // WebSocket upgrades under way (their sockets): counted against maxConnections.
  private readonly upgrading = new Set<net.Socket>()
  private readonly codecs: Format[]
  private readonly conns = new Set<Connection>()
  private readonly dialers: Dialer[] = []
  private timer: NodeJS.Timeout | null = null
  private closing = false
  /** The cluster this node belongs to (said in its hello). */
  readonly cluster: string
  /** Membership and failure detection, when `options.membership` asked for it (set once listening). */
  membership: Membership | null = null
  /** When the node started, ms since the epoch. */
  readonly startedAt = Date.now()
  /** A peer answered one of this node's questions (it has joined the cluster), or it dials no one. */
  joined: boolean
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
    refused: Object.create(null) as Record<string, number>,
    closed: 0,
    twins: 0,
    writesRefused: 0,
  }
  // Our own writes, [version, ms] pairs in version order (the latest
  // OWN_TIMES), for the staleness of peers.
  private ownTimes: number[] = []
  // The peers the last "in sync" log line named.
  private syncedWith = ''
  private metricsServer: MetricsServer | null = null
  private readonly metricsAt: Partial<Address> | undefined
  // Refusals seen per code (and address we dial: a dialer retries with
  // backoff; the reason is logged once until it changes).
  private readonly refusals = new Map<string, number>()
  // Invalid membership reports logged so far (one in 100 is logged).
  private memberInvalid = 0
  private membershipStarted = false
  // The store failed: local writes are refused (reads and gossip go on).
  private storeFailure: Error | null = null
  // The highest version of ours durable when the store failed.
  private durableAtFailure = Infinity
  // Local writes (set, delete) not yet durable, each followed by the
  // mapping of ours it replaced: [write, previous, ...] (see takeBack).
  private pending: (Update | undefined)[] = []
  // A set or delete is under way (a failure inside it is handled as it returns).
  private writing = false
  // Whether local writes may be acknowledged (see admitted): null until
  // decided, then true, or the error twins are refused with.
  private admission: true | TwinError | null = null
  private admissionWaiters: { resolve: () => void; reject: (err: Error) => void }[] = []
  private admissionTimer: NodeJS.Timeout | null = null
  // --connect addresses whose first dial has not ended yet.
  private undialed = 0
  private dataIno: number | undefined = undefined
  // A peer answered one of this node's questions (it has joined).
  private answeredOnce = false
  // A twin being told that this node is its younger (see tellTwin).
  private telling: Promise<void> | null = null
  private readonly auth: HelloAuth | undefined
  private readonly wsOrigins: string[]
  private readonly memberRate: number
  private advertised: string | undefined
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
    super()
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
    this.auth = options.auth
    this.wsOrigins = options.wsOrigins ?? []
    this.memberRate = options.memberRate ?? 8
    this.advertised = options.advertise
    this.joined = (options.connect ?? []).length === 0
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
      // (A write taken back restores an older version: not a new write.)
      if (times.length > 0 && u.version <= times[times.length - 2]) return
      if (times.length >= 2 * OWN_TIMES) this.ownTimes = times.slice(OWN_TIMES)
      this.ownTimes.push(u.version, Date.now())
    })
    // A record of this node's own id that says it started after this node
    // did: no past incarnation wrote it; another live node with this id did
    // (or a peer forged it). Said once.
    const ownRecord = MEMBER_PREFIX + own
    let twinRecordSaid = false
    this.gossip.history.on('update', (u) => {
      if (twinRecordSaid || u.source_id !== own || u.key !== ownRecord || this.membership === null) return
      const record = u.value as { address?: unknown; started?: unknown } | null
      const started = record?.started
      const ours = this.membership.member(own)?.started ?? null
      if (typeof started !== 'number' || ours === null || started <= ours) return
      twinRecordSaid = true
      this.counters.twins++
      this.log(
        `twin: a record of this node's own id ${own}, at ${JSON.stringify(record?.address ?? null)}, started ${iso(started)}, after this node: ` +
          'another live node has this id (or a peer forged it); their writes can hide each other\'s: give each node its own id',
      )
    })
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
    this.gossip.on('synced', () => this.checkSynced())
    this.server = net.createServer((socket) => this.acceptSocket(socket, 'in'))
    for (const address of options.connect ?? []) {
      this.dialers.push(
        new Dialer(address, {
          min: this.opts.min,
          max: this.opts.max,
          random,
          log: this.log,
          connected: (socket) => this.acceptSocket(socket, 'out'),
          firstEnded: () => {
            if (--this.undialed === 0) this.settleAdmission(null)
          },
        }),
      )
    }
    this.undialed = this.dialers.length
    // No one to ask: writes are acknowledged once durable.
    if (this.undialed === 0) this.admission = true
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
    this.advertised ??= hostPort(a)
    this.log(`${this.gossip.id} listening on ${a.host}:${a.port} (cluster ${JSON.stringify(this.cluster)})`)
    if (ws !== undefined) await this.startWebSockets(ws)
    if (this.membershipOptions !== null) this.startMembership(this.membershipOptions, hostPort(a))
    if (this.metricsAt !== undefined) {
      this.metricsServer = await serveMetrics(this, this.metricsAt, this.log)
      const m = this.metricsServer.address()
      this.log(`serving metrics on http://${m.host}:${m.port}/metrics`)
    }
    if (this.store !== null) this.store.onFail = (err) => this.storeFailed(err)
    for (const d of this.dialers) d.dial()
    this.timer = setInterval(() => this.tick(), this.opts.interval)
  }

  private async startWebSockets(ws: Partial<Address>): Promise<void> {
    // Our own HTTP server, so that upgrades under way count against
    // maxConnections and a half-sent one is cut within 5 s.
    const web = http.createServer({ headersTimeout: 5000, requestTimeout: 5000, connectionsCheckingInterval: 1000 }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('a WebSocket endpoint: upgrade required\n')
    })
    this.wsHttp = web
    const server = new WebSocketServer({
      noServer: true,
      // A message is refused before it is buffered past one frame.
      maxPayload: this.opts.maxFrameLength + 4096,
      perMessageDeflate: false,
    })
    this.wsServer = server
    web.on('connection', (socket: net.Socket) => {
      if (this.upgrading.size + this.inbound() >= this.opts.maxConnections) {
        // The oldest upgrade still under way makes room, else the newcomer goes.
        const oldest = this.upgrading.values().next().value as net.Socket | undefined
        if (oldest === undefined || this.closing) {
          this.countRefusal('full')
          socket.destroy()
          return
        }
        this.countRefusal('timeout')
        this.upgrading.delete(oldest)
        oldest.destroy()
      }
      this.upgrading.add(socket)
      socket.once('close', () => this.upgrading.delete(socket))
    })
    web.on('clientError', (_err, socket) => socket.destroy())
    web.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.upgrading.delete(socket)
      const origin = req.headers.origin
      if (origin !== undefined && !this.originAllowed(origin, req.headers.host)) {
        this.countRefusal('bad_hello')
        this.logRefusal('origin', `WebSocket from origin ${JSON.stringify(origin.slice(0, 100))} refused: not this host's, nor in --ws-origin`)
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
        return
      }
      server.handleUpgrade(req, socket, head, (client) => this.acceptWebSocket(client, `${socket.remoteAddress}:${socket.remotePort}`))
    })
    await new Promise<void>((resolve, reject) => {
      web.once('error', reject)
      web.listen(ws.port ?? 0, ws.host ?? '127.0.0.1', () => {
        web.off('error', reject)
        resolve()
      })
    })
    web.on('error', (err) => this.log(`WebSocket server error: ${err.message}`))
    const w = this.wsAddress() as Address
    this.log(`${this.gossip.id} accepting WebSockets on ws://${hostPort(w)}`)
  }

  // A browser's Origin: the host the page asked for (same host), or one
  // the operator allowed.
  private originAllowed(origin: string, host: string | undefined): boolean {
    if (this.wsOrigins.includes(origin) || this.wsOrigins.includes('*')) return true
    let u: URL
    try {
      u = new URL(origin)
    } catch {
      return false
    }
    return host !== undefined && u.host === host
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
    m.on('restart', (member: Member, previous: number) => {
      // A record that goes back to an earlier start is no restart: two live
      // nodes write it in turn (or a clock went back).
      if (member.started !== null && member.started < previous) {
        this.counters.twins++
        this.log(
          `twin: member ${member.id}'s record went back from a start at ${iso(previous)} to ${iso(member.started)}${where(member)}: ` +
            `two live nodes say they are ${member.id} (or its clock went back); their writes can hide each other's: give each its own id`,
        )
      } else this.log(`member ${member.id} restarted (a new incarnation${where(member)})`)
    })
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
    c.answeredAt = Date.now()
    this.answeredOnce = true
    if (c.answered) return
    c.answered = true
    if (!this.joined) {
      this.joined = true
      this.log(`joined the cluster: peer ${c.peer} answered`)
    }
    this.settleAdmission(null)
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
    return { ...s, invalid: { ...s.invalid }, refused: { ...s.refused } }
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

  /** Connections open now, hello said or not (WebSocket upgrades under way included). */
  connections(): number {
    return this.conns.size + this.upgrading.size
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
    const a = this.wsHttp?.address()
    return a === undefined || a === null || typeof a === 'string' ? null : { host: a.address, port: a.port }
  }

  /** The peers connected now (those whose hello was accepted). */
  peers(): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const c of this.conns) {
      const id = c.peer
      if (id === null) continue
      const { them, us } = c.session.stream.behind
      out.push({
        id,
        address: c.address,
        direction: c.direction,
        transport: c.kind,
        authenticated: c.session.authenticated,
        synced: this.peerSynced(c),
        behind: { them, us },
      })
    }
    return out
  }

  // In sync with c: its last exchange found the same versions of every
  // source, or moved nothing but membership's own writes (heartbeats, and
  // records it rewrites) either way, with what was missing small enough
  // to have gone whole in that exchange.
  private peerSynced(c: Connection): boolean {
    const stream = c.session.stream
    if (stream.synced) return true
    return c.quiet && stream.behind.them + stream.behind.us < this.gossip.mtu
  }

  /**
   * Whether every connected peer is in sync with this node (true with
   * none): its last exchange found nothing missing on either side but
   * membership's writes. With membership on, heartbeats are written every
   * interval (and records now and then), so two live nodes never hold the
   * very same versions for long: a peer counts as in sync when an exchange
   * moved only those.
   */
  synced(): boolean {
    for (const c of this.conns) if (c.peer !== null && !c.closed && !this.peerSynced(c)) return false
    return true
  }

  /** Joined (a peer answered, or it dials no one) and in sync with every connected peer: what `/ready` says. */
  ready(): boolean {
    return this.joined && this.synced() && !this.closing
  }

  private checkSynced(): void {
    const peers = this.peers()
    if (peers.length === 0 || !this.synced()) return
    const ids = peers.map((p) => p.id).sort().join(', ')
    if (ids === this.syncedWith) return
    this.syncedWith = ids
    this.log(`in sync with every connected peer (${ids})`)
    this.emit('synced')
  }

  /** Why local writes are refused now (the data directory cannot be written), or null. */
  get writeRefusal(): Error | null {
    return this.storeFailure
  }

  // A data directory removed or replaced while the node runs takes writes
  // nowhere (SQLite writes on into the unlinked files): said, and writes
  // refused, as for one that cannot be written.
  private checkDataDir(): void {
    const store = this.store
    if (store === null || this.storeFailure !== null) return
    const st = fs.statSync(store.dir, { throwIfNoEntry: false })
    this.dataIno ??= st?.ino
    if (st === undefined || st.ino !== this.dataIno) this.storeFailed(new Error(st === undefined ? 'it vanished' : 'it was replaced'))
  }

  private storeFailed(err: Error): void {
    if (this.storeFailure !== null) return
    this.storeFailure = err
    this.durableAtFailure = this.store?.durableTo ?? -Infinity
    // (Inside a write, the write takes them back as it returns.)
    if (!this.writing) this.takeBack()
    this.log(
      `data directory ${this.store?.dir} cannot be written (${err.message}): local writes are refused from now on; ` +
        'the node keeps serving reads and gossip. Fix the directory (permissions, space, mount) and restart the node',
    )
    this.emit('store-failed', err)
  }

  /**
   * Write `key` locally; resolves with the write's version once it is
   * durable (at once without a data directory).
   * @throws TypeError (synchronously) for a bad key or a value JSON cannot carry.
   * @throws StoreFailedError (code `store_failed`) once the data directory cannot be written.
   */
  async set(key: string, value: unknown): Promise<number> {
    this.writable()
    return this.durable(this.write(key, () => this.gossip.set(key, value)))
  }

  /**
   * Delete `key` locally (a tombstone, see docs/guide.md, "Deletes"); resolves
   * with the delete's version once it is durable.
   * @throws TypeError (synchronously) for a bad key.
   * @throws StoreFailedError (code `store_failed`) once the data directory cannot be written.
   */
  async delete(key: string): Promise<number> {
    this.writable()
    return this.durable(this.write(key, () => this.gossip.delete(key)))
  }

  private writable(): void {
    if (this.storeFailure === null) return
    this.counters.writesRefused++
    throw new StoreFailedError(this.store?.dir ?? '', this.storeFailure)
  }

  // Make a local write of `key`; with a store, remember what it replaced
  // until it is durable (see takeBack). Returns the write, if one was made.
  private write(key: string, make: () => void): Update | undefined {
    const g = this.gossip
    const previous = g.history.mapping(g.id, key)
    this.writing = true
    try {
      make()
    } finally {
      this.writing = false
    }
    const u = g.history.mapping(g.id, key)
    if (u === previous || u === undefined || this.store === null) return undefined
    this.pending.push(u, previous)
    if (this.storeFailure !== null) this.takeBack()
    return u
  }

  // The store failed (or the node is a newer twin): every local write
  // not durable by then (above `from`) is taken back (never acknowledged,
  // never sent: see barrier), newest first, so that each key holds what
  // it held before.
  private takeBack(from = this.durableAtFailure): void {
    const pending = this.pending
    this.pending = []
    for (let i = pending.length - 2; i >= 0; i -= 2) {
      const u = pending[i] as Update
      if (u.version > from) this.gossip.replica.revert(u, pending[i + 1])
    }
  }

  /**
   * Resolves once this node may acknowledge local writes: a node that dials
   * peers (--connect) cannot know that no other live node has its id until
   * a peer admitted it (a peer that holds a live node with its id refuses
   * it as a twin). Writes wait for that, for every dial to have ended
   * without it (no peer to ask: twins that meet later are told apart as
   * they write), or for stallTimeout. Rejects with a TwinError when the
   * node was refused as the newer twin (its writes are taken back).
   */
  private admitted(): Promise<void> {
    const a = this.admission
    if (a === true) return Promise.resolve()
    if (a !== null) return Promise.reject(a)
    this.admissionTimer ??= setTimeout(() => this.settleAdmission(null), this.opts.stallTimeout)
    this.admissionTimer.unref()
    return new Promise((resolve, reject) => this.admissionWaiters.push({ resolve, reject }))
  }

  // Decide admission (see admitted): null to allow acknowledgements, or
  // the error of a newer twin.
  private settleAdmission(refusal: TwinError | null): void {
    if (this.admission !== null) return
    this.admission = refusal ?? true
    if (this.admissionTimer !== null) clearTimeout(this.admissionTimer)
    if (refusal !== null) this.takeBack(-Infinity)
    for (const w of this.admissionWaiters.splice(0)) {
      if (refusal === null) w.resolve()
      else w.reject(refusal)
    }
  }

  // Resolves with the version of write `u` once it is durable; rejects with
  // a StoreFailedError once the store failed without making it so (the
  // write is then taken back).
  private async durable(u: Update | undefined): Promise<number> {
    const version = u?.version ?? this.gossip.version
    const store = this.store
    if (store !== null) {
      try {
        await store.flush()
      } catch (err) {
        this.storeFailed(err as Error)
      }
    }
    if (this.admission !== true) await this.admitted()
    if (store === null) return version
    if (this.storeFailure !== null) {
      if (u === undefined || u.version > this.durableAtFailure) throw new StoreFailedError(store.dir, this.storeFailure)
      return version
    }
    // What is durable now need not be taken back.
    const pending = this.pending
    let n = 0
    while (n < pending.length && (pending[n] as Update).version <= store.durableTo) n += 2
    if (n > 0) pending.splice(0, n)
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
    c.unanswered++
    this.counters.asked++
    return true
  }

  /** Stop: close every connection and the server, flush and close the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.timer !== null) clearInterval(this.timer)
    if (this.telling !== null) await this.telling
    this.membership?.stop()
    if (this.metricsServer !== null) await this.metricsServer.close()
    for (const d of this.dialers) d.stop()
    for (const c of this.conns) this.drop(c, null)
    for (const s of this.upgrading) s.destroy()
    if (this.wsServer !== null) {
      for (const client of this.wsServer.clients) client.terminate()
      await new Promise<void>((resolve) => (this.wsServer as WebSocketServer).close(() => resolve()))
    }
    if (this.wsHttp !== null) {
      this.wsHttp.closeAllConnections()
      await new Promise<void>((resolve) => (this.wsHttp as http.Server).close(() => resolve()))
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    if (this.store !== null) {
      try {
        await this.store.close()
      } catch (err) {
        // A directory that cannot be written cannot be flushed: said, not thrown.
        if (this.storeFailure === null) throw err
      }
    }
  }

  private tick(): void {
    const now = Date.now()
    this.checkDataDir()
    for (const c of this.conns) {
      if (c.peer === null && now - c.opened >= this.opts.stallTimeout) {
        this.drop(c, `no hello within ${now - c.opened} ms`, 'timeout')
        continue
      }
      // A peer that does not read what we send is dropped: its buffers are
      // bounded, but it would hold them, and our streams, for good.
      const stream = c.session.stream
      if (c.transport.writableNeedDrain || stream.readableLength >= stream.readableHighWaterMark) {
        if (c.stalledSince < 0) c.stalledSince = now
        else if (now - c.stalledSince >= this.opts.stallTimeout) this.drop(c, `not reading for ${now - c.stalledSince} ms`)
      } else {
        c.stalledSince = -1
      }
    }
    this.gossipOnce()
  }

  private inbound(): number {
    let n = 0
    for (const c of this.conns) if (c.direction === 'in') n++
    return n
  }

  // The incoming connection to let go for a new one, among those that had
  // a second to answer (a new one must have the time to, before a crowd of
  // reconnecting squatters can push it out): the oldest that never
  // answered a question of ours (or never said hello); else the oldest
  // whose answers name no source though this node holds some (it takes
  // nothing it is sent: an empty reply to every question squats a slot
  // while seeming to answer); else the one that let the most, two at least
  // (one may be in flight), go unanswered since its last answer. A peer
  // that answers and holds what it is sent is kept.
  private idlest(): Connection | null {
    let never: Connection | null = null
    let empty: Connection | null = null
    let lapsed: Connection | null = null
    const now = Date.now()
    for (const c of this.conns) {
      if (c.direction !== 'in' || now - c.opened < GRACE) continue
      if (!c.answered) {
        if (never === null || c.opened < never.opened) never = c
      } else if (c.claimsNothing) {
        if (empty === null || c.opened < empty.opened) empty = c
      } else if (c.unanswered >= 2 && (lapsed === null || c.unanswered > lapsed.unanswered)) lapsed = c
    }
    return never ?? empty ?? lapsed
  }

  private acceptSocket(socket: net.Socket, direction: 'in' | 'out'): Connection {
    socket.setNoDelay(true)
    const c = this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`, direction, 'tcp', () => socket.destroy(), () => endSoon(socket))
    socket.on('error', (err) => this.drop(c, `socket error: ${err.message}`))
    return c
  }

  private acceptWebSocket(ws: WebSocket, address: string): Connection {
    const transport = websocketStream(ws as unknown as WebSocketLike)
    const c = this.accept(transport, address, 'in', 'ws', () => ws.terminate(), () => {
      transport.end()
      setTimeout(() => ws.terminate(), 1000).unref()
    })
    // ws closes a connection whose message passes maxPayload (1009).
    ws.on('close', (code: number) => {
      if (code !== 1009) return
      this.count('frame')
      this.drop(c, `WebSocket message over ${this.opts.maxFrameLength + 4096} bytes`)
    })
    transport.on('error', (err: Error) => this.drop(c, `WebSocket error: ${err.message}`))
    return c
  }

  private accept(transport: Duplex | net.Socket, address: string, direction: 'in' | 'out', kind: 'tcp' | 'ws', kill: () => void, end: () => void): Connection {
    const c = new Connection(transport, address, direction, kind, kill, end, this.memberRate)
    if (this.closing) {
      kill()
      return c
    }
    // Past maxConnections an incoming connection takes the slot of one that
    // does not answer our questions (see idlest), so that a crowd of peers
    // that say hello (and perhaps answer once) and then nothing cannot keep
    // the cluster out; our own dials always get in (--connect bounds them).
    // Under --keys only authenticated peers hold a slot past their hello.
    if (direction === 'in' && this.inbound() + this.upgrading.size >= this.opts.maxConnections) {
      const idle = this.idlest()
      if (idle === null) {
        this.countRefusal('full')
        this.logRefusal('full', `refusing connections: already ${this.opts.maxConnections} that answer, or are new (maxConnections)`)
        kill()
        c.closed = true
        return c
      }
      this.drop(idle, `its slot taken by a new connection: it leaves our questions unanswered (maxConnections ${this.opts.maxConnections} reached)`, null, true)
    }
    this.conns.add(c)
    transport.on('close', () => this.drop(c, null))
    const session = new Session(this.gossip, transport as Duplex, {
      cluster: this.cluster,
      codecs: this.codecs,
      started: this.startedAt,
      address: this.advertised,
      auth: this.auth,
      nonce: randomNonce,
      maxLineLength: this.opts.maxLineLength,
      maxFrameLength: this.opts.maxFrameLength,
      admit: (hello) => this.admit(c, hello),
      gate: this.gate(c),
      // Nothing leaves before it is durable: a crash never takes back what
      // a peer already has.
      barrier: this.store === null ? undefined : this.barrier(c),
    })
    c.session = session
    session.on('refused', (err: SessionError, ours: boolean) => this.refused(c, err, ours))
    session.on('invalid', (what: unknown, reason: string, code?: string) => this.invalid(c, what, reason, code))
    session.stream.on('error', (err: Error) => this.drop(c, err.message))
    session.stream.on('ahead', (source: string, version: number) => this.ahead(c, source, version))
    session.on('open', () => this.opened(c))
    return c
  }

  // Nothing of ours leaves before it is durable. Once the data directory
  // failed, nothing more will be, and no write of ours is acknowledged any
  // more: what is held then flows, so that gossip (heartbeats included)
  // goes on for the node's reads and its peers.
  private barrier(c: Connection): Transform {
    const store = this.store as Store
    const node = this
    const history = this.gossip.history
    const b = barrier({
      id: store.id,
      get durableTo() {
        return node.storeFailure === null ? store.durableTo : Infinity
      },
      flush: () =>
        store.flush().catch((err: unknown) => {
          if (node.storeFailure === null) throw err
        }),
      // A write taken back (see takeBack) is not ours to send.
      sends: (chunk) => node.storeFailure === null || history.mapping(store.id, chunk.key as string)?.version === chunk.version,
    })
    b.on('error', (err: Error) => this.drop(c, `store failed: ${err.message}`))
    return b
  }

  // The node's own policy on a hello the session accepted (and, under
  // keys, authenticated): twins. Every hello says when its node started;
  // of two live nodes with one id, the one started later is the twin.
  // Claims move the node only as far as they can be believed: under keys
  // (authenticated), fully; without, a node that has joined (a peer
  // answered it) is never stopped by one, since any peer can claim any id.
  private admit(c: Connection, hello: PeerHello): SessionError | null {
    const id = hello.id
    const started = hello.started ?? null
    // A hello without a nonce (a node before sessions) cannot be told from
    // this node's own, nor from another's: no twin rule for it.
    if (hello.nonce === undefined) return id === this.gossip.id ? new SessionError('self', 'connected to itself') : null
    const trusted = c.session.authenticated
    if (id === this.gossip.id) {
      // Another node with this node's id (its own dials are 'self').
      this.counters.twins++
      const where = `at ${hello.address ?? c.address}, started ${iso(started)}`
      if (olderThan(started, hello.nonce, this.startedAt, c.session.nonce)) {
        this.twin({ newer: true, address: hello.address ?? c.address, started }, trusted, `another live node runs as ${id} (${where}), before this one`)
        return new SessionError('twin', `this node (${id}) started after you: it stops`)
      }
      this.log(`twin: another node started as ${id} (${where}) while this one runs: refused; it stops, or must be given another --id`)
      const err = new SessionError('twin', `another live node runs as ${id} since ${iso(this.startedAt)}: give this one another --id`)
      err.twinStarted = this.startedAt
      return err
    }
    for (const e of this.conns) {
      if (e === c || e.closed || e.peer !== id) continue
      const theirs = e.session.peerHello as PeerHello
      if (theirs.nonce === undefined) continue
      // The one connected answers our questions: two live nodes say they are id.
      const live = Date.now() - e.answeredAt < 3 * this.opts.interval + 1000
      if (!live) {
        this.drop(e, `peer ${id} connected again (a new incarnation): this connection went quiet`)
        continue
      }
      this.counters.twins++
      if (trusted && e.session.authenticated && olderThan(started, hello.nonce, theirs.started ?? null, theirs.nonce)) {
        // Both proved the id: the newcomer is the elder, the younger goes.
        this.log(`twin: two live nodes say they are ${id}; the one at ${e.address} started later (${iso(theirs.started ?? null)}): closing it`)
        this.drop(e, `twin of ${id}, started later than the one at ${c.address}`, 'twin')
        return null
      }
      this.log(`twin: two live nodes say they are ${id} (at ${e.address}, started ${iso(theirs.started ?? null)}, and at ${c.address}, started ${iso(started)}): the one connected first is kept, the other refused`)
      const err = new SessionError('twin', `another live node runs as ${id} since ${iso(theirs.started ?? null)}${theirs.address === undefined ? '' : ` at ${theirs.address}`}: give this one another --id`)
      err.twinAddress = theirs.address
      err.twinStarted = theirs.started
      return err
    }
    return null
  }

  // This node learned of a twin of its own. When it is the newer, and the
  // claim can be believed (see admit), it reports that it should stop.
  private twin(t: TwinReport, trusted: boolean, what: string): void {
    const stop = t.newer && (trusted || !this.answeredOnce)
    // Writes waiting to be acknowledged never are: taken back, answered 'twin'.
    if (stop) this.settleAdmission(new TwinError(this.gossip.id, what))
    this.log(
      stop
        ? `twin: ${what}: this node should stop, so that no acknowledged write of either is lost`
        : t.newer
          ? `twin: ${what}; this node has joined and the claim is not authenticated (no --keys): it keeps running`
          : `twin: ${what}`,
    )
    this.emit('twin', { ...t, newer: stop } satisfies TwinReport)
  }

  // The session is open: gossip flows.
  private opened(c: Connection): void {
    if (c.closed) return
    const s = c.session
    // What we send, counted.
    s.stream.on('data', (m: { digest?: unknown; done?: unknown; key?: unknown }) => {
      if (m.digest !== true) {
        this.counters.updatesSent++
        if (typeof m.key !== 'string' || !isMembershipKey(m.key)) c.moved++
      } else if (m.done !== true) c.entriesOut++
      else {
        this.onDigest?.('sent', c.entriesOut)
        c.entriesOut = 0
      }
    })
    const how = s.writing === s.reading ? s.writing : `${s.writing} out, ${s.reading} in`
    this.log(`peer ${c.peer} connected (${c.direction}, ${c.kind === 'ws' ? 'WebSocket, ' : ''}${c.address}, ${how}${s.authenticated ? ', authenticated' : ''})`)
    // Ask at once: whether it answers decides how often it is asked.
    this.ask(c)
  }

  // A version far ahead of the wall clock came from c (see Clock.NOTICE):
  // our own id (the clock jumped past it), or another source's max jumped
  // there. Said once per connection and source.
  private ahead(c: Connection, source: string, version: number): void {
    const seen = (c.aheadOf ??= new Set())
    if (seen.has(source) || seen.size >= 16) return
    seen.add(source)
    const minutes = ((version - Date.now() * 1000) / 60e6).toFixed(1)
    const peer = c.peer ?? c.address
    const why = `a forged update (without --keys any peer can write as any id), or ${source === this.gossip.id ? 'a twin' : source} with a clock that is wrong`
    this.log(
      source === this.gossip.id
        ? `clock: peer ${peer} holds this node's own id ${source} at a version ${minutes} minutes ahead of the wall clock: ${why}; the clock jumps past it, so that this node's writes stay above it and are seen`
        : `peer ${peer}: sent an update of ${source} ${minutes} minutes ahead of this node's clock, above all of ${source} before (taken: up to ${Clock.AHEAD / 3.6e9} h is believed): ${why}`,
    )
  }

  // A session refused, by us or by the peer.
  private refused(c: Connection, err: SessionError, ours: boolean): void {
    if (c.closed) return
    const code = ours ? err.code : (`${err.peerCode ?? 'refused'}` as RefusalCode)
    this.countRefusal(ours ? err.code : 'refused_by_peer')
    if (!ours && err.peerCode === 'twin') {
      this.counters.twins++
      const t = { address: err.twinAddress ?? null, started: err.twinStarted ?? null }
      if (olderThan(this.startedAt, c.session.nonce, t.started, undefined)) {
        // The elder, refused where a younger twin got in first: tell it.
        this.log(`twin: peer ${c.session.peerId} holds another node with this node's id, started later${t.address === null ? '' : ` at ${t.address}`}: telling it to stop`)
        if (t.address !== null) this.tellTwin(t.address)
      } else {
        this.twin({ newer: true, ...t }, c.session.authenticated, `another live node has id ${this.gossip.id}${t.address === null ? '' : ` (at ${t.address})`}, started ${iso(t.started)}, before this one`)
        if (t.address !== null) this.tellTwin(t.address)
      }
    }
    // Said once per reason (and address we dial), then every 100th.
    const key = c.direction === 'out' ? `${c.address} ${code} ${err.message}` : err.message
    const seen = this.refusals.get(key) ?? 0
    if (this.refusals.size >= 1000) this.refusals.clear()
    this.refusals.set(key, seen + 1)
    const said = seen % 100 === 0
    this.drop(c, said ? (seen === 0 ? err.message : `${err.message} (${seen + 1} times)`) : null, null, !said, true)
  }

  // A peer refused this node as the younger twin of the node at `address`:
  // say hello there once, so that the elder hears of it too (its log and
  // metrics), then hang up. close() waits for it, at most two seconds.
  private tellTwin(address: string): void {
    if (this.telling !== null) return
    let to: Address
    try {
      to = parseAddress(address)
    } catch {
      return
    }
    this.telling = new Promise<void>((resolve) => {
      const socket = net.connect({ host: to.host, port: to.port })
      let session: Session | null = null
      const done = () => {
        clearTimeout(timer)
        session?.destroy()
        socket.destroy()
        resolve()
      }
      const timer = setTimeout(done, 2000)
      socket.on('error', done)
      socket.once('close', done)
      socket.once('connect', () => {
        session = new Session(this.gossip, socket as unknown as Duplex, { cluster: this.cluster, codecs: this.codecs, started: this.startedAt, address: this.advertised, auth: this.auth, nonce: randomNonce })
        session.on('refused', done)
        session.on('open', done)
      })
    })
  }

  private countRefusal(code: RefusalCode): void {
    const r = this.counters.refused
    r[code] = (r[code] ?? 0) + 1
  }

  // Refusals outside sessions (full, origin): said once per 100.
  private logRefusal(key: string, line: string): void {
    const seen = this.refusals.get(key) ?? 0
    this.refusals.set(key, seen + 1)
    if (seen % 100 === 0) this.log(seen === 0 ? line : `${line} (${seen + 1} times)`)
  }

  // Between the parsed input and the peer's gossip stream: counts updates
  // to catch a flood, digests against the peer's rate, and new members
  // against its member rate.
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
            c.held.clear()
            // Only a digest taken ends a run of updates: dropped ones would
            // let a flood through.
            if (!c.dropping) c.run = 0
            if (chunk.reply === true) {
              c.unanswered = 0
              // Quiet: nothing but heartbeats moved since the reply before.
              c.quiet = c.moved === 0
              c.moved = 0
              node.answeredBy(c)
              node.checkSynced()
            } else if (!c.dropping) {
              node.counters.answered++
            }
            if (!c.dropping) {
              node.onDigest?.('received', c.entriesIn)
              // A whole digest naming no source while this node holds some:
              // the peer takes nothing it is sent (or has just come).
              if (chunk.after === undefined && chunk.through === undefined) c.claimsNothing = c.entriesIn === 0 && node.gossip.history.sources.size > 0
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
          node.count('flood')
          node.drop(c, `flooding: more than ${node.opts.floodLimit} updates without a digest`)
          callback()
          return
        } else {
          node.counters.updatesReceived++
          if (typeof chunk === 'object' && chunk !== null) {
            const key = chunk.key
            if (typeof key !== 'string' || !isMembershipKey(key)) c.moved++
            if (!node.memberAdmitted(c, chunk)) {
              callback()
              return
            }
          }
        }
        callback(null, chunk)
      },
    })
  }

  // A new member (its record or heartbeat, of an id not tracked yet) heard
  // from a peer other than itself: it takes one of the peer's member tokens
  // (memberRate per interval), and it may not fill the last eighth of
  // maxMembers, kept for members heard from themselves, so that forged
  // members relayed by one peer cannot keep a real node out. Without room,
  // it and the rest of its source's updates in this message wait for a
  // later exchange (a source's updates come in version order, and a gap
  // would never be asked for again).
  private memberAdmitted(c: Connection, u: Record<string, unknown>): boolean {
    const source = u.source_id
    if (typeof source !== 'string') return true
    if (c.held.has(source)) return false
    const key = u.key
    const m = this.membership
    if (m === null || typeof key !== 'string' || source === c.peer) return true
    const prefix = key.startsWith(MEMBER_PREFIX) ? MEMBER_PREFIX : key.startsWith(HEARTBEAT_PREFIX) ? HEARTBEAT_PREFIX : null
    // Only a member's own record and heartbeat count for membership.
    if (prefix === null || key.slice(prefix.length) !== source || m.member(source) !== undefined) return true
    const now = Date.now()
    c.memberTokens = Math.min(this.memberRate, c.memberTokens + ((now - c.memberRefilled) / this.opts.interval) * this.memberRate)
    c.memberRefilled = now
    const counts = m.counts()
    const room = counts.live + counts.dead - 1 < m.maxMembers - Math.max(1, Math.floor(m.maxMembers / 8))
    if (room && c.memberTokens >= 1) {
      c.memberTokens -= 1
      return true
    }
    c.held.add(source)
    this.count('member')
    if (c.memberSaid) return false
    c.memberSaid = true
    this.log(
      room
        ? `peer ${c.peer}: introduces new members faster than ${this.memberRate} per interval; the rest wait for later exchanges (said once per connection; counted as scuttle_invalid_total{reason="member"})`
        : `peer ${c.peer}: introduces new members into the last eighth of maxMembers (${m.maxMembers}), kept for members heard from themselves; they wait`,
    )
    return false
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
      this.count('flood')
      this.drop(c, `flooding: more than ${DIGEST_FLOOD} digests past ${rate}/s in a row`)
      return false
    }
    if (c.dropped === 1 || c.dropped % 1000 === 0) {
      this.log(`peer ${c.peer ?? c.address}: digests past ${rate}/s dropped unanswered (${c.dropped} so far)`)
    }
    return false
  }

  private count(code: InputCode): void {
    const invalid = this.counters.invalid
    invalid[code] = (invalid[code] ?? 0) + 1
  }

  private invalid(c: Connection, what: unknown, reason: string, given?: string): void {
    if (c.closed) return
    const stream = c.session.stream
    // A twin (see Clock.TWIN_LIMIT) is reported once per stream, and the peer
    // kept: it may only relay what a twin or a liar wrote as us.
    if (stream.twin && !c.twinSaid) {
      c.twinSaid = true
      this.count('twin_writes')
      this.counters.twins++
      this.log(`twin: peer ${c.peer ?? c.address}: ${reason} (its claims on our id are ignored from now on)`)
      return
    }
    const code = invalidReason(reason, what, given)
    this.count(code)
    // A value refused as late (docs/deletes.md, rule 5) is no fault of the
    // peer, which may relay it: counted, said once per connection, kept.
    if (code === 'late') {
      if (!c.lateSaid) {
        c.lateSaid = true
        this.log(`peer ${c.peer ?? c.address}: refused ${reason} (said once per connection; the peer is kept)`)
      }
      return
    }
    // Restored from an older state than peers collected of our own deletes:
    // the operator must choose (see docs/deletes.md, Limits).
    if (code === 'restored_stale') {
      this.emit('restoredStale', reason)
      return
    }
    // A version too far ahead is refused and the peer kept: an honest peer
    // relays what a node with a wrong clock wrote (logged once per
    // connection; what a flood of them costs, floodLimit bounds).
    if (code === 'ahead') {
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

  // Close c: logged with `reason` (null: quietly), counted under `code` when
  // it is a refusal, and ended gracefully when a refusal was written to it.
  private drop(c: Connection, reason: string | null, code: RefusalCode | null = null, countClosed = false, graceful = false): void {
    if (c.closed) return
    c.closed = true
    this.conns.delete(c)
    this.countBytes(c)
    if (code !== null) this.countRefusal(code)
    if (reason !== null || countClosed) this.counters.closed++
    if (reason !== null) this.log(`closing connection to ${c.peer ?? c.session?.peerId ?? c.address}: ${reason}`)
    else if (c.peer !== null && !this.closing) this.log(`peer ${c.peer} disconnected`)
    if (graceful) c.end()
    else c.kill()
    c.session?.destroy()
  }
}

/** A local write refused because the data directory cannot be written. */
export class StoreFailedError extends Error {
  /** `store_failed`, for logs and answers. */
  readonly code = 'store_failed'
  constructor(
    readonly dir: string,
    override readonly cause: Error,
  ) {
    super(`write refused: data directory ${dir} cannot be written (${cause.message}); reads and gossip go on. Fix the directory and restart the node`)
    this.name = 'StoreFailedError'
  }
}

/** A local write refused because this node is the newer of two live nodes with its id: it stops. */
export class TwinError extends Error {
  /** `twin`, for logs and answers. */
  readonly code = 'twin'
  constructor(id: string, what: string) {
    super(`write refused: ${what}; this node (${id}) is the newer and stops, and acknowledged none of its writes. Give it another --id`)
    this.name = 'TwinError'
  }
}

// Whether a node started at `a` (nonce an) is older than one started at b:
// unknown times are youngest, equal ones are ordered by nonce.
function olderThan(a: number | null, an: string | undefined, b: number | null, bn: string | undefined): boolean {
  const x = a ?? Infinity
  const y = b ?? Infinity
  return x < y || (x === y && String(an) < String(bn))
}

function iso(ms: number | null): string {
  return ms === null ? 'at an unknown time' : new Date(ms).toISOString()
}

// End a socket once what was written is sent, or in a second.
function endSoon(socket: net.Socket): void {
  socket.end()
  setTimeout(() => socket.destroy(), 1000).unref()
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
