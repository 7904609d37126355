/**
 * A node's WebSocket server (lib/node/websocket.ts): the hello decides
 * each direction's format, and an outsider's attacks (garbage, a hello that
 * lies about its codec, a message over the frame bound, a flood, a
 * DNS-rebound page, a client that never reads) are each closed with a
 * logged reason while the node goes on. All on 127.0.0.1.
 */
import * as assert from 'assert'
import * as net from 'net'
import WebSocket from 'ws'
import { Gossip, joinNode } from '../../lib'
import { startNode, type ScuttleNode } from '../../lib/node'
import { FrameEncoder } from '../../lib/wire/binary'
import { WS, resolve, until, upgradeStatus, wsNodes } from '../wire/ws-nodes'

function frames(messages: unknown[]): Buffer {
  const e = new FrameEncoder()
  for (const m of messages) e.write(m)
  return Buffer.from(e.take())
}

describe('node: WebSocket server', function () {
  this.timeout(30_000)
  const sockets: WebSocket[] = []
  // (Registered first: raw clients go before the nodes close, as they did.)
  afterEach(() => {
    for (const s of sockets.splice(0)) s.terminate()
  })
  const { members, logs, logged, start, url } = wsNodes()

  /** A raw client: says `hello` (a line) if given, then whatever the test sends. */
  async function raw(n: ScuttleNode, hello?: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
    const ws = new WebSocket(url(n))
    sockets.push(ws)
    ws.on('error', () => undefined)
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    await new Promise((r) => ws.once('open', r))
    if (hello !== undefined) ws.send(Buffer.from(hello))
    return { ws, closed }
  }

  it('attacks: garbage, a lying hello either way, an oversized message, a flood; each closed with a reason, the node goes on', async () => {
    const a = await start({ id: 'a', floodLimit: 50 })
    // Garbage instead of a hello.
    const g = await raw(a, '\u0000\u00ff garbage\n')
    await g.closed
    assert.ok(logged('a', /did not start with a hello/))
    // Says it speaks NDJSON only, then sends binary frames.
    const lies = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"liar","codecs":["ndjson"]}\n')
    // (An NDJSON reader sees garbage at the first newline byte, here the value 10;
    // until then it buffers at most its line limit.)
    lies.ws.send(frames([{ key: 'k', value: 10, source_id: 'liar', version: 1 }]))
    await lies.closed
    assert.ok(logged('a', /closing connection to liar: sent invalid input/))
    // Says binary, sends NDJSON lines.
    const lies2 = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"liar2","codecs":["binary"]}\n')
    lies2.ws.send('{"digest":true,"done":true}\n')
    await lies2.closed
    assert.ok(logged('a', /closing connection to liar2: sent invalid input: frame of \d+ bytes, over the limit/))
    // A codec nobody speaks.
    const odd = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"odd","codecs":["xml"]}\n')
    await odd.closed
    assert.ok(logged('a', /no wire format in common/))
    // One message past the frame bound: ws refuses it before buffering it.
    const big = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"big","codecs":["binary"]}\n')
    big.ws.send(Buffer.alloc((4 << 20) + 8192))
    assert.strictEqual(await big.closed, 1009)
    // A flood of updates without a digest.
    const flood = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"flood","codecs":["binary"]}\n')
    const version = a.gossip.version
    for (let i = 0; i < 20; i++) flood.ws.send(frames(Array.from({ length: 10 }, (_, j) => ({ key: `f${i}-${j}`, value: j, source_id: 'flood', version: version + i * 10 + j }))))
    await flood.closed
    assert.ok(logged('a', /closing connection to flood: flooding/))
    // The node still serves an honest member.
    const page = new Gossip('page', { resolve })
    members.push(joinNode(page, url(a), { interval: 20, WebSocket: WS }))
    await a.set('still', 'here')
    await until(() => page.get('still').value === 'here', 5000, 'an honest member to sync')
  })

  it('the hello decides each direction\'s format: an old hello (no codecs) gets NDJSON, one that lists binary gets frames', async () => {
    const a = await start({ id: 'a' })
    await a.set('k', 'v')
    const first = async (hello: string): Promise<Buffer> => {
      const socket = net.connect(a.address().port, '127.0.0.1')
      await new Promise((r) => socket.once('connect', r))
      let got = Buffer.alloc(0)
      socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
      socket.write(hello)
      // The node asks a new peer at once: its digest follows its hello.
      await until(() => got.indexOf(10) >= 0 && got.length > got.indexOf(10) + 8, 5000, 'the node to ask')
      socket.destroy()
      return got.subarray(got.indexOf(10) + 1)
    }
    const old = await first('{"hello":"simple-scuttle","protocol":2,"id":"old"}\n')
    assert.match(String(old), /^\{"digest":true/)
    const bin = await first('{"hello":"simple-scuttle","protocol":2,"id":"new","codecs":["binary","ndjson"]}\n')
    assert.strictEqual(bin[0], 0, 'a 4-byte frame length, not JSON')
    const ndjsonFirst = await first('{"hello":"simple-scuttle","protocol":2,"id":"reader","codecs":["ndjson","binary"]}\n')
    // The node writes its own first choice the peer lists: binary.
    assert.strictEqual(ndjsonFirst[0], 0)
    assert.ok(logged('a', /peer new connected \(in, .*binary\)/))
    assert.ok(logged('a', /peer old connected \(in, .*ndjson\)/))
    await assert.rejects(startNode({ id: 'x', resolve, codecs: ['xml' as never] }), TypeError)
  })

  it('attack (issue 21): a DNS-rebound page (Origin and Host evil.example) got 101; required: an Origin is allowed only from --ws-origin, or when it names an IP address or localhost and equals Host', async () => {
    const n = await start({ id: 'a', wsOrigins: ['https://app.example'] })
    const port = (n.wsAddress() as { port: number }).port
    const upgrade = (headers: Record<string, string>) => upgradeStatus(port, headers)
    const cases: [Record<string, string>, number][] = [
      [{}, 101],
      [{ origin: `http://127.0.0.1:${port}` }, 101],
      [{ origin: `http://localhost:${port}`, host: `localhost:${port}` }, 101],
      [{ origin: `http://[::1]:${port}`, host: `[::1]:${port}` }, 101],
      [{ origin: 'https://app.example' }, 101],
      [{ origin: `http://evil.example:${port}`, host: `evil.example:${port}` }, 403],
      [{ origin: `http://app.example:${port}`, host: `app.example:${port}` }, 403],
      [{ origin: 'https://evil.example' }, 403],
      [{ origin: 'null' }, 403],
      [{ origin: `http://127.0.0.1.evil.example:${port}`, host: `127.0.0.1.evil.example:${port}` }, 403],
    ]
    const got: string[] = []
    for (const [headers, status] of cases) {
      const line = await upgrade(headers)
      if (!line.includes(` ${status} `)) got.push(`${JSON.stringify(headers)}: ${line}, not ${status}`)
    }
    assert.deepStrictEqual(got, [])
  })

  it('attack (third outside attack on issue 21): a frame header declaring 1 TiB, then its bytes as fast as they go; required: refused by the declared length before a byte of it is read, closed at once with 1009 under code frame, the node serves others', async () => {
    const a = await start({ id: 'a' })
    const port = (a.wsAddress() as { port: number }).port
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => undefined)
    let got = Buffer.alloc(0)
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
    const closed = new Promise<number>((r) => s.once('close', () => r(Date.now())))
    s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    await until(() => got.includes('\r\n\r\n'), 5000, 'the upgrade')
    assert.match(String(got), /^HTTP\/1.1 101 /)
    got = Buffer.alloc(0)
    const hello = Buffer.from('{"hello":"simple-scuttle","protocol":2,"id":"huge","codecs":["binary"]}\n')
    const frame = (payload: Buffer, length: number) => {
      const head = length < 126 ? Buffer.from([0x82, 0x80 | length]) : Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 0])
      if (length >= 126) head.writeBigUInt64BE(BigInt(length), 2)
      // A client masks its frames (a zero mask leaves the bytes as they are).
      return Buffer.concat([head, Buffer.alloc(4), payload])
    }
    s.write(frame(hello, hello.length))
    await until(() => logged('a', /peer huge connected/), 5000, 'the hello')
    const began = Date.now()
    s.write(frame(Buffer.alloc(0), 2 ** 40))
    // Then the bytes of that frame, for as long as the socket takes them.
    const chunk = Buffer.alloc(1 << 16, 0x90)
    const pump = () => {
      while (!s.destroyed && s.write(chunk));
    }
    s.on('drain', pump)
    pump()
    const end = await closed
    assert.ok(end - began < 1000, `closed ${end - began} ms after the frame header`)
    // A close frame with code 1009 (message too big) was sent before.
    const at = got.indexOf(0x88)
    assert.ok(at >= 0 && got.readUInt16BE(at + 2) === 1009, `got ${got.subarray(0, 16).toString('hex')}`)
    assert.ok(logged('a', /closing connection to huge: WebSocket message over \d+ bytes \[frame\]/), (logs.get('a') ?? []).join('\n'))
    // The node goes on serving an honest member.
    const page = new Gossip('page', { resolve })
    members.push(joinNode(page, url(a), { interval: 20, WebSocket: WS }))
    await a.set('still', 'here')
    await until(() => page.get('still').value === 'here', 5000, 'an honest member to sync')
  })

  it('attack: a client that never reads is closed after stallTimeout, with bounded buffers', async () => {
    const a = await start({ id: 'a', stallTimeout: 300, mtu: 5000 })
    for (let i = 0; i < 3000; i++) a.gossip.set(`k${i}`, 'v'.repeat(1000))
    const slow = await raw(a, '{"hello":"simple-scuttle","protocol":2,"id":"slow","codecs":["binary"]}\n')
    // Stop reading from the TCP socket under the WebSocket, then ask for everything.
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    for (let i = 0; i < 5; i++) slow.ws.send(frames([{ digest: true, done: true }]))
    await until(() => logged('a', /closing connection to slow: not reading for \d+ ms/), 10_000, 'the stalled client to be dropped')
    // (The client cannot see the close: it does not read.)
    assert.ok(!a.peers().some((p) => p.id === 'slow'))
  })
})
