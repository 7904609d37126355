/**
 * A TCP node's WebSocket server (browsers and `joinNode`, see
 * `lib/wire/join.ts`): an HTTP server of its own taking upgrades, so that
 * upgrades under way count against `maxConnections` (the oldest makes room
 * for a newcomer; a half-sent one is cut within 5 s), and a browser's
 * Origin must be the node's own host or one allowed. Each WebSocket
 * accepted is handed to the node as a byte stream ({@link wsTransport}), on
 * which it opens the same session as on a TCP socket.
 *
 * @packageDocumentation
 */
import * as http from 'http'
import * as net from 'net'
import type { Duplex } from 'readable-stream'
import type * as WS from 'ws'
import { websocketStream, type WebSocketLike } from '../wire/websocket'
import { listen, addressOf } from './listener'
import { loadPeer } from './peer'
import type { Address } from './types'

/** What a WebSocket server needs of its node. */
export interface WebSocketHost {
  readonly maxConnections: number
  /** Longest WebSocket message accepted, in bytes. */
  readonly maxMessage: number
  /** Origins allowed besides the node's own host (`'*'`: any). */
  readonly wsOrigins: readonly string[]
  /** Incoming connections open now, upgrades aside. */
  inbound(): number
  /** The node is stopping. */
  closing(): boolean
  /** A WebSocket connection came in, from `address`. */
  webSocket(ws: WS.WebSocket, address: string): void
  /** An upgrade refused before any session: counted as full, or as an upgrade timed out. */
  count(code: 'full' | 'timeout'): void
  /** A browser from another origin refused (counted and said). */
  refuseOrigin(origin: string): void
}

/** A node's WebSocket server (see the module's comment). */
export class WebSocketServer {
  private readonly web: http.Server
  private wsServer: WS.WebSocketServer | null = null
  /** Upgrades under way (their sockets): counted against maxConnections. */
  readonly upgrading = new Set<net.Socket>()

  constructor(
    private readonly host: WebSocketHost,
    private readonly log: (line: string, level?: 'warn') => void,
  ) {
    this.web = http.createServer({ headersTimeout: 5000, requestTimeout: 5000, connectionsCheckingInterval: 1000 }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('a WebSocket endpoint: upgrade required\n')
    })
  }

  /** Accept WebSocket peers at `at`. */
  async listen(at: Partial<Address>): Promise<Address> {
    const host = this.host
    const web = this.web
    // ws is an optional peer dependency: loaded when WebSockets are served.
    const { WebSocketServer } = loadPeer<typeof WS>('ws', 'A node with WebSockets (the ws option, --ws)')
    // A message is refused before it is buffered past one frame.
    const server = new WebSocketServer({ noServer: true, maxPayload: host.maxMessage, perMessageDeflate: false })
    this.wsServer = server
    web.on('connection', (socket: net.Socket) => {
      if (this.upgrading.size + host.inbound() >= host.maxConnections) {
        // The oldest upgrade still under way makes room, else the newcomer goes.
        const oldest = this.upgrading.values().next().value as net.Socket | undefined
        if (oldest === undefined || host.closing()) {
          host.count('full')
          socket.destroy()
          return
        }
        host.count('timeout')
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
        host.refuseOrigin(origin)
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
        return
      }
      server.handleUpgrade(req, socket, head, (client) => host.webSocket(client, `${socket.remoteAddress}:${socket.remotePort}`))
    })
    await listen(web, at)
    web.on('error', (err) => this.log(`WebSocket server error: ${err.message}`, 'warn'))
    return this.address() as Address
  }

  // A browser's Origin: one the operator allowed, or the very host the
  // page asked for when that is an IP address or localhost. A DNS name
  // equal to Host proves nothing: a page whose name was rebound to this
  // address says its own name in both.
  private originAllowed(origin: string, host: string | undefined): boolean {
    const allowed = this.host.wsOrigins
    if (allowed.includes(origin) || allowed.includes('*')) return true
    let u: URL
    try {
      u = new URL(origin)
    } catch {
      return false
    }
    const name = u.hostname.replace(/^\[|\]$/g, '')
    return host !== undefined && u.host === host && (net.isIP(name) !== 0 || name === 'localhost')
  }

  /** Where WebSocket peers are accepted, or null before listen. */
  address(): Address | null {
    return addressOf(this.web)
  }

  /** Stop accepting, and end upgrades and WebSockets under way (the node closes its connections). */
  async close(): Promise<void> {
    for (const s of this.upgrading) s.destroy()
    const ws = this.wsServer
    if (ws === null) return
    for (const client of ws.clients) client.terminate()
    await new Promise<void>((resolve) => ws.close(() => resolve()))
    this.web.closeAllConnections()
    await new Promise<void>((resolve) => this.web.close(() => resolve()))
  }
}

/** A WebSocket accepted, as the node's connections take it. */
export interface WsTransport {
  /** Its bytes. */
  readonly transport: Duplex
  /** Cut it now. */
  kill(): void
  /** End it once what was written is sent, or in a second. */
  end(): void
}

/**
 * `ws` as a byte stream for a session. `tooLong` hears of a message past
 * `maxPayload`, which ws refuses by the length its frame header declares,
 * before reading it (1009): said there, before the stream reports the
 * same error as the transport's.
 */
export function wsTransport(ws: WS.WebSocket, tooLong: () => void): WsTransport {
  ws.once('error', (err: Error & { code?: string }) => {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') tooLong()
  })
  const transport = websocketStream(ws as unknown as WebSocketLike)
  return {
    transport,
    kill: () => ws.terminate(),
    end: () => {
      transport.end()
      setTimeout(() => ws.terminate(), 1000).unref()
    },
  }
}
