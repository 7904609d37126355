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
 * limits. A peer is disconnected, with
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
import { Gossip, PeerStream } from '../core/gossip'
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
  /** Where log lines go. Default: stderr. */
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
}

/** One connection to a peer. */
class Connection {
  peer: string | null = null
  invalid = 0
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
  // When our output to this peer last made progress, or started waiting.
  stalledSince = -1
  closed = false
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

// C0 and C1 control characters, and DEL.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g

// A log line with control characters shown as escapes: no peer can end a
// line of ours or send a terminal an escape sequence.
function printable(line: string): string {
  return CONTROL.test(line) ? line.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : line
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
    const random = options.random ?? Math.random
    // One line per entry, whatever a peer put in an id or a reason.
    const sink = options.log ?? ((line: string) => process.stderr.write(`${line}
`))
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
    this.log(`${this.gossip.id} listening on ${a.host}:${a.port}`)
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
    for (const d of this.dialers) this.dial(d)
    this.timer = setInterval(() => this.tick(), this.opts.interval)
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
      if (c.peer !== null) out.push({ id: c.peer, address: c.address, direction: c.direction, transport: c.kind })
    }
    return out
  }

  /**
   * Write `key` locally; resolves with the write's version once it is
   * durable (at once without a data directory).
   * @throws TypeError (synchronously) for a bad key or a value JSON cannot carry.
   */
  async set(key: string, value: unknown): Promise<number> {
    this.gossip.set(key, value)
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
    return true
  }

  /** Stop: close every connection and the server, flush and close the store. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.timer !== null) clearInterval(this.timer)
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
    if (this.conns.size >= this.opts.maxConnections) {
      this.log(`refusing ${c.address}: already ${this.conns.size} connections (maxConnections)`)
      kill()
      return c
    }
    this.conns.add(c)
    transport.on('close', () => this.drop(c, null))
    transport.write(helloLine(this.gossip.id, this.codecs))
    const invalid = (what: unknown, reason: string) => this.invalid(c, what, reason)
    c.stream.on('invalid', invalid)
    // A twin of this node (see Clock.TWIN_LIMIT) ends the connection, said why.
    c.stream.on('error', (err: Error) => this.drop(c, err.message))
    const reader = new HelloReader()
    reader.on('invalid', (_what: unknown, reason: string) => this.drop(c, reason))
    reader.on('hello', (hello: Hello) => this.hello(c, reader, hello, invalid))
    ;(transport as Duplex).pipe(reader)
    return c
  }

  // The peer said hello: check it, agree on the formats, and start.
  private hello(c: Connection, reader: HelloReader, hello: Hello, invalid: (what: unknown, reason: string) => void): void {
    if (c.closed) return
    const id = hello.id
    if (badName('id', id) !== null || CONTROL.test(id)) {
      this.drop(c, `hello with a bad id: ${badName('id', id) ?? 'it holds control characters'}`)
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
        if (typeof chunk === 'object' && chunk !== null && chunk.digest === true) {
          // Rate: a digest's first object takes a token, or the whole digest
          // (its entries and its end) is dropped unanswered.
          if (!c.inDigest) {
            c.inDigest = true
            c.dropping = !node.take(c)
          }
          if (chunk.done === true) {
            c.inDigest = false
            c.run = 0
            if (chunk.reply === true) {
              c.unanswered = 0
              c.answered = true
            }
          }
          if (c.dropping) {
            callback()
            return
          }
        } else if (++c.run > node.opts.floodLimit) {
          node.drop(c, `flooding: more than ${node.opts.floodLimit} updates without a digest`)
          callback()
          return
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
      return true
    }
    if (c.dropped++ % 100 === 0) {
      this.log(`peer ${c.peer ?? c.address}: digests past ${rate}/s dropped unanswered (${c.dropped} so far)`)
    }
    return false
  }

  private invalid(c: Connection, what: unknown, reason: string): void {
    if (c.closed) return
    c.invalid++
    if (c.invalid > this.opts.maxInvalid) this.drop(c, `sent invalid input: ${reason}`)
    else this.log(`peer ${c.peer ?? c.address}: invalid input dropped: ${reason}`)
  }

  private drop(c: Connection, reason: string | null): void {
    if (c.closed) return
    c.closed = true
    this.conns.delete(c)
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
