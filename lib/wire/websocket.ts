/**
 * WebSockets as byte streams: {@link websocketStream} turns a WebSocket
 * (the browser's own, or the `ws` package's in Node: both have the same
 * interface) into a Duplex of bytes, and {@link gossipOver} into the
 * object-mode duplex a `Gossip` stream pipes to, in either wire format.
 *
 * ```ts
 * const link = gossipOver(new WebSocket(url))
 * gossip.pipe(link).pipe(gossip)
 * ```
 *
 * Each chunk written goes out as one binary message (the serializer makes
 * one per turn of the event loop), so a message is never cut: both formats
 * are self-delimiting anyway. To join a running `simple-scuttle node --ws`
 * (which opens with a hello, and reconnects), see `joinNode`.
 *
 * @packageDocumentation
 */
import { reportInvalid, type InvalidCode } from '../codes'
import { Duplex } from 'readable-stream'
import { parse, serialize, type Format } from './codec'

/** The part of the WebSocket interface used here (browsers' and `ws`'s). */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  readonly bufferedAmount: number
  send(data: Uint8Array | string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (event: { data?: unknown; message?: unknown }) => void): void
  /** `ws` only: stop reading from the socket (backpressure). */
  pause?(): void
  /** `ws` only. */
  resume?(): void
}

/** Options of {@link websocketStream}. */
export interface WebSocketStreamOptions {
  /**
   * Bytes the socket may hold unsent before writes wait (the socket's
   * `bufferedAmount`). Default 1 MiB.
   */
  highWaterMark?: number
}

const OPEN = 1

/**
 * A Duplex of bytes over `socket`: each chunk written is sent as one binary
 * message, each message received (binary or text) is read as one chunk.
 * Writes wait while the socket holds more than `highWaterMark` bytes
 * unsent (so a peer that does not read fills our buffer, not our memory);
 * with `ws`, reading pauses while our reader does not keep up. Closing the
 * socket ends the stream; destroying the stream closes the socket. Writes
 * before the socket opens wait for it.
 */
export function websocketStream(socket: WebSocketLike, options: WebSocketStreamOptions = {}): Duplex {
  const high = options.highWaterMark ?? 1 << 20
  socket.binaryType = 'arraybuffer'
  let paused = false
  // A write waiting for the socket to open or to drain.
  let waiting: (() => void) | null = null
  let poll: ReturnType<typeof setTimeout> | null = null
  const check = (): void => {
    poll = null
    if (waiting === null) return
    if (socket.readyState > OPEN) {
      const w = waiting
      waiting = null
      w()
      return
    }
    if (socket.readyState === OPEN && socket.bufferedAmount <= high) {
      const w = waiting
      waiting = null
      w()
      return
    }
    // Browsers say nothing when bufferedAmount falls: look again shortly.
    if (socket.readyState === OPEN) poll = setTimeout(check, 5)
  }
  const stream = new Duplex({
    readableObjectMode: false,
    writableObjectMode: false,
    read() {
      if (paused) {
        paused = false
        socket.resume?.()
      }
    },
    write(chunk: Uint8Array | string, _encoding, callback) {
      const send = (): void => {
        if (socket.readyState !== OPEN) {
          callback(new Error('WebSocket closed'))
          return
        }
        try {
          socket.send(chunk)
        } catch (err) {
          callback(err as Error)
          return
        }
        if (socket.bufferedAmount <= high) callback()
        else {
          waiting = () => callback()
          poll = setTimeout(check, 5)
        }
      }
      if (socket.readyState === OPEN) send()
      else if (socket.readyState > OPEN) callback(new Error('WebSocket closed'))
      else waiting = send
    },
    final(callback) {
      socket.close(1000)
      callback()
    },
    destroy(err, callback) {
      if (poll !== null) clearTimeout(poll)
      waiting = null
      if (socket.readyState <= OPEN) socket.close(err === null ? 1000 : 1011)
      callback(err)
    },
  })
  socket.addEventListener('open', () => check())
  socket.addEventListener('message', (event) => {
    const data = event.data
    const chunk = typeof data === 'string' ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null
    if (chunk === null || stream.destroyed) return
    if (!stream.push(chunk) && socket.pause !== undefined && !paused) {
      paused = true
      socket.pause()
    }
  })
  socket.addEventListener('close', () => {
    if (waiting !== null) check()
    if (!stream.destroyed) {
      stream.push(null)
      stream.destroy()
    }
  })
  socket.addEventListener('error', (event) => {
    // ws says why (a browser's error event does not).
    const why = typeof event?.message === 'string' && event.message !== '' ? event.message : 'WebSocket error'
    if (!stream.destroyed) stream.destroy(new Error(why))
  })
  return stream
}

/** Options of {@link gossipOver}. */
export interface GossipOverOptions extends WebSocketStreamOptions {
  /** The wire format both ends use: `'binary'` (default) or `'ndjson'`. */
  format?: Format
}

/**
 * The object-mode duplex a `Gossip` (or a `PeerStream`) pipes to, over a
 * WebSocket whose other end does the same: objects written are serialized
 * and sent; what arrives is parsed and read. `'invalid'` is re-emitted
 * from the codec; closing the socket ends it.
 */
export function gossipOver(socket: WebSocketLike, options: GossipOverOptions = {}): Duplex {
  const bytes = websocketStream(socket, options)
  const out = serialize({ format: options.format })
  const input = parse({ format: options.format })
  out.pipe(bytes).pipe(input)
  const duplex = new Duplex({
    objectMode: true,
    read() {
      input.resume()
    },
    write(chunk: unknown, _encoding, callback) {
      if (out.write(chunk)) callback()
      else out.once('drain', () => callback())
    },
    final(callback) {
      out.end()
      callback()
    },
    destroy(err, callback) {
      bytes.destroy()
      callback(err)
    },
  })
  input.on('data', (m: unknown) => {
    if (!duplex.push(m)) input.pause()
  })
  input.on('end', () => duplex.push(null))
  const report = (what: unknown, reason: string, code: InvalidCode): void => reportInvalid(duplex, what, reason, code)
  input.on('invalid', report)
  out.on('invalid', report)
  bytes.on('error', (err: Error) => duplex.destroy(err))
  bytes.on('close', () => {
    if (!duplex.destroyed) duplex.destroy()
  })
  return duplex
}
