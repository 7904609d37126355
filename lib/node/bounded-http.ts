/**
 * An HTTP server bounded against slow clients, for the admin and metrics
 * endpoints: a whole request (headers and body) must arrive within
 * `requestTimeout`, and past `maxConnections` a new connection takes the
 * slot of the oldest one not being answered (idle, or still sending its
 * request), from an address not answered lately first, so that
 * connections sending slowly, and redialed as soon as cut, cannot keep an
 * operator or a scraper out.
 *
 * @packageDocumentation
 */
import * as http from 'http'
import type * as net from 'net'

/** Default milliseconds for a whole request, headers and body. */
export const REQUEST_TIMEOUT = 3000

/** Bounds of {@link boundedServer}. */
export interface HttpBounds {
  /** Most connections at once (default 64). */
  maxConnections?: number
  /** Milliseconds for a whole request (default {@link REQUEST_TIMEOUT}). */
  requestTimeout?: number
  /**
   * The handler judges a request without Host itself (the admin endpoint
   * serves one that carries its token, and refuses others with a code);
   * else Node answers HTTP/1.1 without Host a bare 400.
   */
  checksHost?: boolean
}

/**
 * An HTTP server calling `handler`, bounded as above.
 * @throws TypeError for a timeout that is not a positive number of milliseconds.
 */
export function boundedServer(handler: http.RequestListener, bounds: HttpBounds = {}): http.Server {
  const max = bounds.maxConnections ?? 64
  const timeout = bounds.requestTimeout ?? REQUEST_TIMEOUT
  if (!(timeout > 0 && timeout <= 2 ** 31 - 1)) throw new TypeError(`requestTimeout must be a positive number of milliseconds, not ${timeout}`)
  // Node looks for late requests every connectionsCheckingInterval (30 s by default).
  const server = http.createServer({ requestTimeout: timeout, headersTimeout: timeout, connectionsCheckingInterval: Math.min(250, timeout), requireHostHeader: bounds.checksHost !== true }, handler)
  server.keepAliveTimeout = 5000
  // Open connections in the order they came, each with the request it is
  // being answered (null: idle, or still sending its headers).
  const sockets = new Map<net.Socket, http.IncomingMessage | null>()
  // Addresses answered with a success lately, the latest last (at most 256).
  const answered = new Set<string>()
  const remember = (address: string) => {
    answered.delete(address)
    answered.add(address)
    if (answered.size > 256) answered.delete(answered.values().next().value as string)
  }
  server.on('connection', (socket: net.Socket) => {
    sockets.set(socket, null)
    socket.once('close', () => sockets.delete(socket))
    if (sockets.size <= max) return
    // A request still arriving is no one's to keep waiting for; of those,
    // one from an address never answered goes first (the operator's next
    // connection, its request not in yet, is not cut by a crowd of
    // strangers redialing).
    let stranger: net.Socket | null = null
    let known: net.Socket | null = null
    for (const [s, req] of sockets) {
      if (s === socket || (req !== null && req.complete)) continue
      if (!answered.has(s.remoteAddress ?? '')) {
        stranger = s
        break
      }
      known ??= s
    }
    ;(stranger ?? known ?? socket).destroy()
  })
  // A late, malformed or oversized request (smuggling, headers over 16 KiB)
  // is answered, then closed whole: a half-closed socket would hold its
  // slot for as long as the client does not read.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`, () => socket.destroy())
  })
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket
    if (sockets.has(socket)) sockets.set(socket, req)
    res.once('finish', () => {
      if (sockets.get(socket) === req) sockets.set(socket, null)
      // (A stranger can earn it too, from its own address only.)
      if (res.statusCode < 400) remember(socket.remoteAddress ?? '')
    })
  })
  return server
}

/**
 * Headers to answer with before a request's body has been read: the
 * connection is then closed, rather than kept to read (and wait for) the
 * rest of a body no one needs.
 */
export function closeIfUnread(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!req.complete) res.setHeader('connection', 'close')
}
