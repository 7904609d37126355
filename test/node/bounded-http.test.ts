/**
 * The HTTP servers of the admin and metrics endpoints (lib/node/bounded-http.ts)
 * under slow clients (slowloris): each slow request is cut within the
 * request timeout, and the operator is served.
 */
import * as assert from 'assert'
import * as http from 'http'
import * as net from 'net'
import { base } from '../../lib'
import { startNode } from '../../lib/node'
import { AdminServer } from '../../lib/node/admin'
import { boundedServer } from '../../lib/node/bounded-http'

/**
 * Slowloris: `n` connections, each sending a request's headers (kind
 * 'body': then one byte of its body every 300 ms) or its headers one byte
 * every 300 ms (kind 'headers'), each redialed 100 ms after it is cut.
 */
function loris(port: number, n: number, kind: 'headers' | 'body', request: string): { stop(): void; cut: number[]; connected: Promise<unknown> } {
  let running = true
  const open = new Set<net.Socket>()
  const cut: number[] = []
  const first: Promise<unknown>[] = []
  const dial = () => {
    if (!running) return
    const s = net.connect(port, '127.0.0.1')
    const began = Date.now()
    if (first.length < n) first.push(new Promise((resolve) => s.once('connect', resolve)))
    open.add(s)
    let sent = 0
    const head = `${request}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n`
    if (kind === 'body') s.write(head)
    const timer = setInterval(() => s.write(kind === 'body' ? 'a' : head[sent++ % head.length]), 300)
    s.on('error', () => undefined)
    s.once('close', () => {
      clearInterval(timer)
      open.delete(s)
      if (running) cut.push(Date.now() - began)
      setTimeout(dial, 100)
    })
  }
  for (let i = 0; i < n; i++) dial()
  return {
    cut,
    connected: Promise.all(first),
    stop() {
      running = false
      for (const s of open) s.destroy()
    },
  }
}

/** How many of `tries` GETs of `path`, one every 100 ms, got a 200 within 3 s. */
async function served(port: number, path: string, tries: number): Promise<number> {
  let ok = 0
  for (let i = 0; i < tries; i++) {
    const status = await new Promise<number>((resolve) => {
      const r = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 3000 }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      r.on('timeout', () => r.destroy())
      r.on('error', () => resolve(0))
    })
    if (status === 200) ok++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return ok
}

describe('admin and metrics endpoints under slowloris (attack on issue 21)', function () {
  this.timeout(60_000)
  const target = { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: async (): Promise<Record<string, unknown>> => ({ ok: true }) }

  it('64 slow bodies, redialed as soon as cut, locked the operator out (0 of 26 status requests); required: each cut within the request timeout, and the operator served', async () => {
    const admin = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, requestTimeout: 1000, log: () => undefined })
    const attack = loris(admin.address().port, 64, 'body', `PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n`)
    try {
      await attack.connected
      const ok = await served(admin.address().port, '/v1/status', 20)
      assert.strictEqual(ok, 20, `${ok} of 20 status requests served`)
      // Over those 2 s or more, past the timeout (1 s, looked at every 250 ms), slow
      // requests were cut (an attacker that does not read sees it at a write, 300 ms apart).
      const late = attack.cut.filter((ms) => ms > 2000)
      assert.ok(attack.cut.length >= 64 && late.length === 0, `${attack.cut.length} cut, ${late.length} after more than 2 s (${late.slice(0, 5).join(', ')} ms)`)
    } finally {
      attack.stop()
      await admin.close()
    }
  })

  it('attack (issue 21, red team): 300 slow clients redialing got the operator\'s connection reset (3 of 16 requests): a newcomer took the slot of the oldest not answered, the operator\'s; required: an address that was answered keeps its slot while others are there to take', async () => {
    const server = boundedServer((_req, res) => res.end('ok'), { maxConnections: 4, requestTimeout: 5000 })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as net.AddressInfo).port
    const sockets: net.Socket[] = []
    const get = () =>
      new Promise<number>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        }).on('error', () => resolve(0))
      })
    try {
      // The operator was answered once from 127.0.0.1.
      assert.strictEqual(await get(), 200)
      // Its next connection is open, its request not sent yet, when five slow clients from another address come.
      const op = net.connect({ port, host: '127.0.0.1' })
      sockets.push(op)
      let opClosed = false
      op.on('error', () => undefined).once('close', () => (opClosed = true))
      await new Promise((resolve) => op.once('connect', resolve))
      let cut = 0
      for (let i = 0; i < 5; i++) {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' })
        sockets.push(s)
        s.on('error', () => undefined).once('close', () => cut++)
        s.once('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n'))
      }
      // Five newcomers past four slots: two connections cut, whichever they are.
      const end = Date.now() + 5000
      while (cut + (opClosed ? 1 : 0) < 2 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
      assert.strictEqual(opClosed, false, "the operator's connection was cut")
      const answer = new Promise<string>((resolve) => {
        let text = ''
        op.on('data', (b: Buffer) => (text += String(b)))
        op.once('close', () => resolve(text))
      })
      op.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      assert.match(await answer, /^HTTP\/1.1 200/)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  for (const kind of ['headers', 'body'] as const) {
    it(`the metrics endpoint, under 100 slow ${kind}: scrapes are served`, async () => {
      const node = await startNode({ id: 'm', resolve: base.resolution.lww_vs_current_vers, metrics: { port: 0, requestTimeout: 1000 }, log: () => undefined })
      const port = (node.metricsAddress() as { port: number }).port
      const attack = loris(port, 100, kind, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n')
      try {
        await attack.connected
        const ok = await served(port, '/metrics', 20)
        assert.strictEqual(ok, 20, `${ok} of 20 scrapes served`)
      } finally {
        attack.stop()
        await node.close()
      }
    })
  }
})
