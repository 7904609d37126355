/**
 * A `Gossip` as a member of a cluster of `simple-scuttle node` processes,
 * over a WebSocket: the node's hello (so the two agree on the wire format),
 * gossip on a timer, and reconnection with backoff. Runs in a browser with
 * its own WebSocket, and in Node with the `ws` package's.
 *
 * ```ts
 * const member = joinNode(gossip, 'ws://127.0.0.1:7101')
 * // later: member.close()
 * ```
 *
 * @packageDocumentation
 */
import type { Gossip, PeerStream } from '../core/gossip'
import { FORMATS, parse, serialize, type Format } from './codec'
import { checkCodecs, chooseFormat, codecsOf, helloLine, HelloReader, type Hello } from './handshake'
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
}

/** What {@link joinNode} returns. */
export interface Joined {
  /** The id of the node connected to now, or null while away. */
  readonly peer: string | null
  /** Connections made so far (reconnections included). */
  readonly connections: number
  /** Stop: close the connection and reconnect no more. */
  close(): void
}

/**
 * Join `gossip` to the node listening for WebSockets at `url` (`simple-
 * scuttle node --ws HOST:PORT`), as a peer: the same hello, wire formats
 * and limits as between nodes. Exchanges run every `interval`; a lost
 * connection is made again after a delay that doubles up to
 * `backoff.max`, and starts again from `backoff.min` once a connection has
 * said hello. The node takes no local writes from its peers, so writes go
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
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket
  if (typeof Ctor !== 'function') throw new TypeError('no WebSocket here: pass options.WebSocket (in Node, the ws package)')
  let delay = min
  let closed = false
  let timer: ReturnType<typeof setTimeout> | null = null
  let socket: WebSocketLike | null = null
  const state = { peer: null as string | null, connections: 0 }

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
    let stream: PeerStream | null = null
    let ticker: ReturnType<typeof setInterval> | null = null
    bytes.on('error', () => {})
    bytes.write(helloLine(gossip.id, codecs, options.cluster))
    const reader = new HelloReader()
    const fail = (_what: unknown, reason: string): void => {
      log(`closing ${url}: ${reason}`)
      bytes.destroy()
    }
    reader.on('invalid', fail)
    reader.on('hello', (hello: Hello) => {
      const cluster = hello.cluster ?? 'default'
      if (cluster !== (options.cluster ?? 'default')) {
        fail(null, `the node is of cluster ${JSON.stringify(cluster)}, not ${JSON.stringify(options.cluster ?? 'default')}`)
        return
      }
      const theirs = codecsOf(hello)
      const writing = chooseFormat(codecs, theirs)
      const reading = chooseFormat(theirs, codecs)
      if (writing === null || reading === null) {
        fail(null, `no wire format in common (theirs: ${theirs.join(', ')})`)
        return
      }
      // The node is a remote peer: it never writes as this page.
      stream = gossip.createStream({ local_writes: false })
      const input = parse({ format: reading })
      input.on('invalid', fail)
      stream.on('invalid', (_o: unknown, reason: string) => log(`refused from ${hello.id}: ${reason}`))
      stream.pipe(serialize({ format: writing })).pipe(bytes)
      reader.pipe(input).pipe(stream)
      state.peer = hello.id
      state.connections++
      delay = min
      log(`joined ${hello.id} at ${url} (${writing})`)
      stream.gossip()
      ticker = setInterval(() => stream?.gossip(), interval)
    })
    bytes.pipe(reader)
    bytes.on('close', () => {
      if (ticker !== null) clearInterval(ticker)
      if (stream !== null) {
        stream.unpipe()
        stream.destroy()
      }
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
    close() {
      closed = true
      if (timer !== null) clearTimeout(timer)
      socket?.close(1000)
    },
  }
}
