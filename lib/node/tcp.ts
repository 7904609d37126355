/**
 * A gossip node over TCP: one {@link Gossip} per process, a stream per
 * connected peer, newline-delimited JSON on the sockets, optional durable
 * state. `simple-scuttle node` is this with a command line around it.
 *
 * Each connection starts with one hello line, `{"hello":"simple-scuttle",
 * "id":ID}`, then speaks the gossip protocol. A peer is disconnected, with
 * a logged reason, when it sends anything the protocol refuses (garbage,
 * over-long lines, invalid or forged updates), floods (more updates in a
 * row than `floodLimit` without ending them with a digest), or stops reading
 * for `stallTimeout` ms. Everything buffered per connection is bounded, so
 * one bad peer costs the others nothing but a share of the CPU.
 *
 * @packageDocumentation
 */
import * as net from 'net'
import { Transform } from 'readable-stream'
import { resolution } from '../core/base'
import { Gossip, PeerStream } from '../core/gossip'
import { Store, type StoreOptions } from './store'
import type { Config, Resolve, Security } from '../core/types'
import { parse, serialize } from '../wire/ndjson'

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
  /** Resolution policy. Default `lww_vs_current_vers`. */
  resolve?: Resolve
  /** Signed updates; see `ed25519`. */
  security?: Security
  /** Where log lines go. Default: stderr. */
  log?: (line: string) => void
  /** Longest line accepted from a peer. Default 1 MiB. */
  maxLineLength?: number
  /** Invalid objects tolerated from one peer before it is disconnected. Default 0. */
  maxInvalid?: number
  /** Updates accepted in a row from a peer before a digest must end them. Default max(1000, 10 × mtu). */
  floodLimit?: number
  /**
   * A peer that has not read what we sent for this long, or has not said
   * hello, is disconnected. Default max(10 s, 10 × interval).
   */
  stallTimeout?: number
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
}

const HELLO = 'simple-scuttle'

/** One connection to a peer. */
class Connection {
  peer: string | null = null
  invalid = 0
  // Updates since the peer's last digest end.
  run = 0
  // When our output to this peer last made progress, or started waiting.
  stalledSince = -1
  closed = false
  readonly opened = Date.now()
  readonly stream: PeerStream
  readonly address: string

  constructor(
    readonly node: ScuttleNode,
    readonly socket: net.Socket,
    readonly direction: 'in' | 'out',
  ) {
    this.address = `${socket.remoteAddress}:${socket.remotePort}`
    this.stream = node.gossip.createStream()
  }
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
  private readonly opts: Required<Pick<NodeOptions, 'interval' | 'maxLineLength' | 'maxInvalid' | 'floodLimit' | 'stallTimeout'>> & {
    min: number
    max: number
    random: () => number
  }

  /** @internal Use {@link startNode}. */
  constructor(options: NodeOptions) {
    const interval = options.interval ?? 1000
    if (!(interval > 0)) throw new TypeError('interval must be a positive number of milliseconds')
    const config: Config = {
      ...options.config,
      resolve: options.resolve ?? options.config?.resolve ?? resolution.lww_vs_current_vers,
    }
    if (options.mtu !== undefined) config.mtu = options.mtu
    if (options.security !== undefined) config.security = options.security
    const random = options.random ?? Math.random
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`))
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
      maxInvalid: options.maxInvalid ?? 0,
      floodLimit: options.floodLimit ?? Math.max(1000, 10 * mtu),
      stallTimeout: options.stallTimeout ?? Math.max(10_000, 10 * interval),
      min: options.backoff?.min ?? 100,
      max: options.backoff?.max ?? 5000,
      random,
    }
    this.server = net.createServer((socket) => this.accept(socket, 'in'))
    for (const address of options.connect ?? []) {
      this.dialers.push({ address, timer: null, delay: this.opts.min, socket: null, failing: false })
    }
  }

  /** @internal */
  async start(listen: Partial<Address>): Promise<void> {
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
    for (const d of this.dialers) this.dial(d)
    this.timer = setInterval(() => this.tick(), this.opts.interval)
  }

  /** Where the node accepts peers. */
  address(): Address {
    const a = this.server.address() as net.AddressInfo
    return { host: a.address, port: a.port }
  }

  /** The peers connected now (those that said hello). */
  peers(): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const c of this.conns) if (c.peer !== null) out.push({ id: c.peer, address: c.address, direction: c.direction })
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

  /** Exchange with one random connected peer now. */
  gossipOnce(): boolean {
    const ready = [...this.conns].filter((c) => c.peer !== null && !c.closed)
    if (ready.length === 0) return false
    const c = ready[Math.floor(this.opts.random() * ready.length)]
    return c.stream.gossip()
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
      if (c.socket.writableNeedDrain || c.stream.readableLength >= c.stream.readableHighWaterMark) {
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
      conn = this.accept(socket, 'out')
    })
    socket.on('error', (err) => {
      if (conn !== null || d.failing) return
      d.failing = true
      this.log(`dial ${d.address.host}:${d.address.port}: ${err.message} (retrying with backoff)`)
    })
    socket.once('close', () => {
      d.socket = null
      if (this.closing) return
      // Back off while the peer stays away; a connection that got as far as
      // a hello starts the backoff again.
      if (conn?.peer != null) d.delay = this.opts.min
      const jitter = 0.5 + this.opts.random()
      const wait = Math.min(this.opts.max, d.delay) * jitter
      d.delay = Math.min(this.opts.max, d.delay * 2)
      d.timer = setTimeout(() => this.dial(d), wait)
    })
  }

  private accept(socket: net.Socket, direction: 'in' | 'out'): Connection {
    const c = new Connection(this, socket, direction)
    if (this.closing) {
      socket.destroy()
      return c
    }
    this.conns.add(c)
    socket.setNoDelay(true)
    socket.on('error', (err) => this.drop(c, `socket error: ${err.message}`))
    socket.on('close', () => this.drop(c, null))
    socket.write(`${JSON.stringify({ hello: HELLO, id: this.gossip.id })}\n`)

    const out = serialize()
    const input = parse({ maxLineLength: this.opts.maxLineLength })
    const gate = this.gate(c)
    const invalid = (what: unknown, reason: string) => this.invalid(c, what, reason)
    input.on('invalid', invalid)
    out.on('invalid', invalid)
    c.stream.on('invalid', invalid)
    if (this.store === null) {
      c.stream.pipe(out).pipe(socket)
    } else {
      // Nothing leaves before it is durable: a crash never takes back what
      // a peer already has.
      const barrier = this.store.barrier()
      barrier.on('error', (err: Error) => this.drop(c, `store failed: ${err.message}`))
      c.stream.pipe(barrier).pipe(out).pipe(socket)
    }
    socket.pipe(input).pipe(gate).pipe(c.stream)
    return c
  }

  // Between the parsed input and the peer's gossip stream: takes the hello,
  // and counts updates to catch a flood.
  private gate(c: Connection): Transform {
    const node = this
    return new Transform({
      objectMode: true,
      highWaterMark: 16,
      transform(chunk: Record<string, unknown>, _encoding, callback) {
        if (c.peer === null) {
          const id = chunk?.id
          if (chunk?.hello !== HELLO || typeof id !== 'string' || id.length === 0) {
            node.drop(c, 'did not start with a hello')
          } else if (id === node.gossip.id) {
            node.drop(c, 'connected to itself')
          } else {
            c.peer = id
            node.log(`peer ${id} connected (${c.direction}, ${c.address})`)
          }
          callback()
          return
        }
        if (typeof chunk === 'object' && chunk !== null && chunk.digest === true) {
          if (chunk.done === true) c.run = 0
        } else if (++c.run > node.opts.floodLimit) {
          node.drop(c, `flooding: more than ${node.opts.floodLimit} updates without a digest`)
          callback()
          return
        }
        callback(null, chunk)
      },
    })
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
    c.socket.destroy()
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
    await node.start(options.listen ?? {})
  } catch (err) {
    await node.close()
    throw err
  }
  return node
}
