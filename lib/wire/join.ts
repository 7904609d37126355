/**
 * A `Gossip` as a member of a cluster of `simple-scuttle node` processes,
 * over a WebSocket: a session with the node (hello, proof, wire format and
 * limits, see `session.ts`), gossip on a timer, and reconnection with
 * backoff. Runs in a browser with its own WebSocket, and in Node with the
 * `ws` package's.
 *
 * ```ts
 * const member = joinNode(gossip, 'ws://127.0.0.1:7101')
 * // later: member.close()
 * ```
 *
 * @packageDocumentation
 */
import type { InvalidCode } from '../codes'
import type { Gossip } from '../gossip'
import { FORMATS, type Format } from './codec'
import { limitsFor } from './gate'
import { checkCodecs } from './handshake'
import { Session, SessionError, type HelloAuth } from './session'
import { websocketStream, type WebSocketLike } from './websocket'

/** Options of {@link joinNode}. */
export interface JoinOptions {
  /** Milliseconds between exchanges with the node. Default 1000. */
  interval?: number
  /** Wire formats to offer, preferred first. Default `['binary', 'ndjson']`. */
  codecs?: Format[]
  /** First and longest delay before reconnecting, ms. Default 100 and 5000 (doubling, with jitter). */
  backoff?: { min?: number; max?: number }
  /** The WebSocket constructor. Default: the global one (browsers; Node 22). */
  WebSocket?: new (url: string) => WebSocketLike
  /** Where to report connects, disconnects and refused input. Default: nowhere. */
  log?: (line: string) => void
  /** Random numbers in [0, 1), for jitter. Default Math.random. */
  random?: () => number
  /** The cluster to join (the node's `--cluster`); a node of another refuses. Default `"default"`. */
  cluster?: string
  /** Hello proofs, for a node started with `--keys` (the member needs a key of its own there). */
  auth?: HelloAuth
  /** Called with every refused session (its `code` says why). */
  onRefused?: (err: SessionError) => void
  /** Updates accepted in a row from the node before a digest must end them. Default max(1000, 10 × mtu), as a node's. */
  floodLimit?: number
  /** The node's digests answered per second, on average; past it they are dropped unanswered. Default max(4, 4 per interval), as a node's. */
  digestRate?: number
}

/** What {@link joinNode} returns. */
export interface Joined {
  /** The id of the node connected to now, or null while away. */
  readonly peer: string | null
  /** Connections made so far (reconnections included). */
  readonly connections: number
  /** The last refusal, by either end, or null. */
  readonly refusal: SessionError | null
  /** Stop: close the connection and reconnect no more. */
  close(): void
}

/**
 * Join `gossip` to the node listening for WebSockets at `url` (`simple-
 * scuttle node --ws HOST:PORT`), as a peer: the same session, wire formats
 * and limits as between nodes. Exchanges run every `interval`; a lost
 * connection is made again after a delay that doubles up to
 * `backoff.max`, and starts again from `backoff.min` once a connection has
 * opened. The node takes no local writes from its peers, so writes go
 * through `gossip.set`, and reach the cluster by gossip.
 */
export function joinNode(gossip: Gossip, url: string, options: JoinOptions = {}): Joined {
  const interval = options.interval ?? 1000
  if (!(interval > 0)) throw new TypeError('interval must be a positive number of milliseconds')
  const codecs = options.codecs === undefined ? [...FORMATS] : checkCodecs(options.codecs)
  const min = options.backoff?.min ?? 100
  const max = options.backoff?.max ?? 5000
  const random = options.random ?? Math.random
  const log = options.log ?? (() => {})
  // The limits a node puts on its peers, on the node: a node that floods is
  // closed, and joined again after the backoff.
  const limits = limitsFor(gossip.mtu, interval, options)
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket
  if (typeof Ctor !== 'function') throw new TypeError('no WebSocket here: pass options.WebSocket (in Node, the ws package)')
  let delay = min
  let closed = false
  let timer: ReturnType<typeof setTimeout> | null = null
  let socket: WebSocketLike | null = null
  const state = { peer: null as string | null, connections: 0, refusal: null as SessionError | null }

  const connect = (): void => {
    timer = null
    if (closed) return
    let ws: WebSocketLike
    try {
      ws = new Ctor(url)
    } catch (err) {
      log(`cannot connect to ${url}: ${(err as Error).message}`)
      retry()
      return
    }
    socket = ws
    const bytes = websocketStream(ws)
    let ticker: ReturnType<typeof setInterval> | null = null
    bytes.on('error', () => {})
    const session = new Session(gossip, bytes, { cluster: options.cluster ?? 'default', codecs, auth: options.auth, limits })
    session.on('refused', (err: SessionError) => {
      state.refusal = err
      log(`closing ${url}: ${err.message}`)
      options.onRefused?.(err)
      bytes.end()
    })
    session.on('invalid', (_o: unknown, reason: string, code: InvalidCode) => {
      log(`refused from ${session.peerId}: ${reason} [${code}]`)
    })
    session.on('exceeded', (code: InvalidCode, reason: string) => {
      log(`closing ${url}: ${reason} [${code}]`)
      ws.close(1008)
    })
    session.on('open', () => {
      state.peer = session.peerId
      state.connections++
      delay = min
      log(`joined ${session.peerId} at ${url} (${session.writing})`)
      session.stream.gossip()
      ticker = setInterval(() => session.stream.gossip(), interval)
    })
    bytes.on('close', () => {
      if (ticker !== null) clearInterval(ticker)
      session.destroy()
      if (state.peer !== null) log(`left ${state.peer}`)
      state.peer = null
      socket = null
      retry()
    })
  }

  const retry = (): void => {
    if (closed || timer !== null) return
    const wait = Math.min(max, delay) * (0.5 + random())
    delay = Math.min(max, delay * 2)
    timer = setTimeout(connect, wait)
  }

  connect()
  return {
    get peer() {
      return state.peer
    },
    get connections() {
      return state.connections
    },
    get refusal() {
      return state.refusal
    },
    close() {
      closed = true
      if (timer !== null) clearTimeout(timer)
      socket?.close(1000)
    },
  }
}
