/**
 * Where a TCP node accepts peers: its TCP server, and optionally an HTTP
 * server taking WebSocket upgrades (browsers, see `joinNode`). Upgrades
 * under way count against `maxConnections` (the oldest makes room for a
 * newcomer; a half-sent one is cut within 5 s), and a browser's Origin
 * must be the node's own host or one allowed. What is accepted is handed
 * to the node, which opens a session on it.
 *
 * @packageDocumentation
 */
import * as http from 'http'
import * as net from 'net'
import type * as WS from 'ws'
import { loadPeer } from './peer'
import type { Address } from './types'

/** What a listener needs of its node. */
export interface ListenerHost {
  readonly maxConnections: number
  /** Longest WebSocket message accepted, in bytes. */
  readonly maxMessage: number
  /** Origins allowed besides the node's own host (`'*'`: any). */
  readonly wsOrigins: readonly string[]
  /** Incoming connections open now, upgrades aside. */
  inbound(): number
  /** The node is stopping. */
  closing(): boolean
  /** A TCP connection came in. */
  socket(socket: net.Socket): void
  /** A WebSocket connection came in, from `address`. */
  webSocket(ws: WS.WebSocket, address: string): void
  /** A connection refused before any session: counted as full, or as an upgrade timed out. */
  count(code: 'full' | 'timeout'): void
  /** A browser from another origin refused (counted and said). */
  refuseOrigin(origin: string): void
}

async function listen(server: net.Server, at: Partial<Address>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port ?? 0, at.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function addressOf(server: net.Server | http.Server | null): Address | null {
  const a = server?.address()
  return a === undefined || a === null || typeof a === 'string' ? null : { host: a.address, port: a.port }
}

/** A node's servers (see the module's comment). */
export class Listener {
  private readonly server: net.Server
  private web: http.Server | null = null
  private wsServer: WS.WebSocketServer | null = null
  /** WebSocket upgrades under way (their sockets): counted against maxConnections. */
  readonly upgrading = new Set<net.Socket>()

  constructor(
    private readonly host: ListenerHost,
    private readonly log: (line: string, level?: 'warn') => void,
  ) {
    this.server = net.createServer((socket) => host.socket(socket))
  }

  /** Accept TCP peers at `at` (default 127.0.0.1, any free port). */
  async listen(at: Partial<Address>): Promise<Address> {
    await listen(this.server, at)
    this.server.on('error', (err) => this.log(`server error: ${err.message}`, 'warn'))
    return this.address()
  }

  /** Accept WebSocket peers at `at`. */
  async listenWebSockets(at: Partial<Address>): Promise<Address> {
    const host = this.host
    // Our own HTTP server, so that upgrades under way count against
    // maxConnections and a half-sent one is cut within 5 s.
    const web = http.createServer({ headersTimeout: 5000, requestTimeout: 5000, connectionsCheckingInterval: 1000 }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('a WebSocket endpoint: upgrade required\n')
    })
    this.web = web
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
    return this.wsAddress() as Address
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

  /** Where TCP peers are accepted. */
  address(): Address {
    return addressOf(this.server) as Address
  }

  /** Where WebSocket peers are accepted, or null. */
  wsAddress(): Address | null {
    return addressOf(this.web)
  }

  /** Stop accepting, and end upgrades and WebSockets under way (the node closes its connections). */
  async close(): Promise<void> {
    for (const s of this.upgrading) s.destroy()
    const ws = this.wsServer
    if (ws !== null) {
      for (const client of ws.clients) client.terminate()
      await new Promise<void>((resolve) => ws.close(() => resolve()))
    }
    const web = this.web
    if (web !== null) {
      web.closeAllConnections()
      await new Promise<void>((resolve) => web.close(() => resolve()))
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
