/**
 * Where a TCP node accepts peers (lib/node/listener.ts). On 127.0.0.1.
 */
import * as assert from 'assert'
import * as net from 'net'
import { Listener, addressOf, listen } from '../../lib/node/listener'

describe('node: Listener', () => {
  it('listens on 127.0.0.1 by default, hands each connection to its node, and stops', async () => {
    const got: net.Socket[] = []
    const l = new Listener({ socket: (s) => void got.push(s) }, () => undefined)
    const at = await l.listen({})
    assert.strictEqual(at.host, '127.0.0.1')
    assert.ok(at.port > 0)
    assert.deepStrictEqual(l.address(), at)
    const c = net.connect(at.port, '127.0.0.1')
    const t0 = Date.now()
    while (got.length === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5))
    assert.strictEqual(got.length, 1)
    c.destroy()
    got[0].destroy()
    await l.close()
    assert.strictEqual(addressOf(null), null)
  })

  it('listen rejects with the error of a port in use', async () => {
    const held = net.createServer()
    await listen(held, {})
    const port = (addressOf(held) as { port: number }).port
    try {
      await assert.rejects(listen(net.createServer(), { port }), /EADDRINUSE/)
    } finally {
      await new Promise((r) => held.close(r))
    }
  })
})
