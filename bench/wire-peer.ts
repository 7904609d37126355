/**
 * One side of a wire sync, in a process of its own (see bench/wire.ts):
 *
 *   node dist/bench/wire-peer.js serve <variant> <N>
 *     fills a node with N keys, listens on 127.0.0.1, prints one JSON line
 *     {"port":P,"last":T} and serves every connection until stdin closes;
 *   node dist/bench/wire-peer.js client <variant> <N> <port> <last>
 *     connects, syncs everything, prints {"ms":..,"bytes":..} (bytes read);
 *   node dist/bench/wire-peer.js inproc <N>
 *     the same sync of ours in one process, no socket, timed alike.
 *
 * Variants: ours-binary, ours-ndjson (simple-scuttle over a socket with
 * serialize()/parse()), scuttlebutt (a Model's stream over the socket),
 * yjs (a Y.Map; the client sends its state vector in a length-prefixed
 * frame, the server answers with the update frame, as y-protocols' sync
 * step 1 and 2 do).
 */
import * as net from 'net'
import { Gossip, parse, serialize } from '../lib'
import type { Format } from '../lib'
import { config, filled, gc, model, now, peerFilled, until } from './common'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Y = require('yjs') as typeof import('yjs')

type Variant = 'ours-binary' | 'ours-ndjson' | 'scuttlebutt' | 'yjs'

function formatOf(v: Variant): Format {
  return v === 'ours-ndjson' ? 'ndjson' : 'binary'
}

// Length-prefixed frames for Yjs (4 bytes, big-endian).
function frame(b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + b.length)
  out.writeUInt32BE(b.length, 0)
  out.set(b, 4)
  return out
}

function frames(socket: net.Socket, on: (f: Uint8Array) => void): void {
  let buf: Buffer = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d])
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0)
      if (buf.length < 4 + n) break
      on(buf.subarray(4, 4 + n))
      buf = buf.subarray(4 + n)
    }
  })
}

function serve(variant: Variant, n: number): void {
  let handler: (socket: net.Socket) => void
  let last = 0
  if (variant === 'ours-binary' || variant === 'ours-ndjson') {
    const a = filled('a', n)
    const format = formatOf(variant)
    handler = (socket) => {
      socket.setNoDelay(true)
      const s = a.createStream()
      s.pipe(serialize({ format })).pipe(socket).pipe(parse({ format })).pipe(s)
    }
  } else if (variant === 'scuttlebutt') {
    const a = peerFilled('peer-a', n)
    last = a.sources[a.id]
    handler = (socket) => {
      socket.setNoDelay(true)
      const s = (a as unknown as { createStream(): NodeJS.ReadWriteStream }).createStream()
      s.pipe(socket).pipe(s)
    }
  } else {
    const doc = new Y.Doc()
    const map = doc.getMap('m')
    doc.transact(() => {
      for (let i = 0; i < n; i++) map.set('k' + i, i)
    })
    handler = (socket) => {
      socket.setNoDelay(true)
      frames(socket, (sv) => socket.write(frame(Y.encodeStateAsUpdate(doc, sv))))
    }
  }
  gc()
  const server = net.createServer(handler)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo
    process.stdout.write(`${JSON.stringify({ port, last })}\n`)
  })
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))
  process.on('SIGINT', () => process.exit(0))
}

async function client(variant: Variant, n: number, port: number, last: number): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise((resolve) => socket.once('connect', resolve))
  gc()
  let done: () => boolean
  const t0 = now()
  if (variant === 'ours-binary' || variant === 'ours-ndjson') {
    const format = formatOf(variant)
    const b = new Gossip('b', config({ mtu: n, max_history: Infinity }))
    b.pipe(serialize({ format })).pipe(socket).pipe(parse({ format })).pipe(b)
    b.gossip()
    done = () => b.history._resolvedCount === n
  } else if (variant === 'scuttlebutt') {
    const b = model('peer-b')
    const s = (b as unknown as { createStream(): NodeJS.ReadWriteStream }).createStream()
    s.pipe(socket).pipe(s)
    done = () => b.sources['peer-a'] === last
  } else {
    const doc = new Y.Doc()
    const map = doc.getMap('m')
    frames(socket, (update) => Y.applyUpdate(doc, update))
    socket.write(frame(Y.encodeStateVector(doc)))
    done = () => map.size === n
  }
  await untilData(socket, done)
  const ms = now() - t0
  process.stdout.write(`${JSON.stringify({ ms, bytes: socket.bytesRead })}\n`)
  socket.destroy()
}

/**
 * Resolves once `done()` holds, looked at after each chunk the socket
 * brings has been taken in (every variant takes a chunk in within its
 * 'data' event), and every 10 ms as well: waiting does not spin, which on
 * a machine of two cores would take one from the server.
 */
function untilData(socket: net.Socket, done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    let queued = false
    const timer = setInterval(() => check(), 10)
    const check = (): void => {
      queued = false
      if (!done()) return
      clearInterval(timer)
      socket.removeListener('data', onData)
      resolve()
    }
    const onData = (): void => {
      if (queued) return
      queued = true
      setImmediate(check)
    }
    socket.on('data', onData)
    check()
  })
}

/**
 * The same sync in one process (issue 23: wire sync at most 1.2x it): A
 * filled as the server fills it, then B created, piped to a stream of A's
 * and synced, timed as the client times it.
 */
async function inProcess(n: number): Promise<void> {
  const a = filled('a', n)
  gc()
  const t0 = now()
  const b = new Gossip('b', config({ mtu: n, max_history: Infinity }))
  const s = a.createStream()
  s.pipe(b).pipe(s)
  b.gossip()
  await until(() => b.history._resolvedCount === n)
  process.stdout.write(`${JSON.stringify({ ms: now() - t0, bytes: 0 })}\n`)
}

if (require.main === module) {
  const [mode, variant, n, port, last] = process.argv.slice(2)
  if (mode === 'serve') serve(variant as Variant, Number(n))
  else if (mode === 'inproc')
    inProcess(Number(variant)).catch((e) => {
      console.error(e)
      process.exit(1)
    })
  else
    client(variant as Variant, Number(n), Number(port), Number(last)).catch((e) => {
      console.error(e)
      process.exit(1)
    })
}
