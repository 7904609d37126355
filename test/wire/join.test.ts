/**
 * joinNode (lib/wire/join.ts): a Gossip joins a node's cluster over a
 * WebSocket, both directions, reconnecting with backoff, under a node's
 * limits. All on 127.0.0.1.
 */
import * as assert from 'assert'
import { WebSocketServer } from 'ws'
import { Gossip, joinNode } from '../../lib'
import { WS, resolve, until, wsNodes } from './ws-nodes'

describe('joinNode', function () {
  this.timeout(30_000)
  const { nodes, members, logged, start, url } = wsNodes()

  it('joinNode: a write in the member is read back on the node, a set on the node reaches the member', async () => {
    const a = await start({ id: 'a' })
    const b = await start({ id: 'b', connect: [a.address()] })
    const page = new Gossip('page', { resolve })
    members.push(joinNode(page, url(b), { interval: 20, WebSocket: WS }))
    page.set('from-page', { hello: 'é' })
    await until(() => a.gossip.get('from-page').version !== -Infinity, 10_000, 'a to read the page write')
    assert.deepStrictEqual(a.gossip.get('from-page').value, { hello: 'é' })
    await a.set('from-node', 42)
    await until(() => page.get('from-node').value === 42, 10_000, 'the page to see the node write')
    assert.ok(b.peers().some((p) => p.id === 'page' && p.transport === 'ws'))
    assert.ok(logged('b', /peer page connected \(in, WebSocket, .*binary\)/))
  })

  it('joinNode reconnects with backoff after the node restarts on the same port', async () => {
    const a = await start({ id: 'a' })
    const port = (a.wsAddress() as { port: number }).port
    const page = new Gossip('page', { resolve })
    const m = joinNode(page, url(a), { interval: 20, backoff: { min: 20, max: 200 }, WebSocket: WS })
    members.push(m)
    await until(() => m.peer === 'a', 5000, 'the first connection')
    await a.close()
    nodes.splice(nodes.indexOf(a), 1)
    await until(() => m.peer === null, 5000, 'the member to see the node go')
    const again = await start({ id: 'a2', ws: { port } })
    await again.set('after', 'restart')
    await until(() => page.get('after').value === 'restart', 10_000, 'the member to reconnect and sync')
    assert.strictEqual(m.connections, 2)
  })

  it("joinNode puts a node's limits on the node: one that floods updates is closed (code flood), then joined again", async () => {
    // A hostile "node": an old hello (no nonce: the session opens at once), then updates and never a digest.
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => server.once('listening', r))
    let connections = 0
    server.on('connection', (ws) => {
      connections++
      ws.on('error', () => undefined)
      const lines = ['{"hello":"simple-scuttle","protocol":2,"id":"evil","codecs":["ndjson"]}']
      for (let i = 0; i < 50; i++) lines.push(JSON.stringify({ key: `k${i}`, value: i, source_id: 'evil', version: i + 1 }))
      ws.send(Buffer.from(`${lines.join('\n')}\n`))
    })
    const page = new Gossip('page', { resolve })
    const said: string[] = []
    const m = joinNode(page, `ws://127.0.0.1:${(server.address() as { port: number }).port}`, {
      interval: 1000,
      floodLimit: 20,
      backoff: { min: 20, max: 50 },
      log: (l) => said.push(l),
      WebSocket: WS,
    })
    members.push(m)
    try {
      await until(() => connections >= 2, 5000, 'the member to close the flood and join again')
      assert.ok(said.some((l) => /^closing ws:.*: flooding: more than 20 updates without a digest \[flood\]$/.test(l)), said.join('\n'))
      assert.strictEqual(page.history.sources.get('evil')?.max, 20, 'the 20 updates within the limit were taken, none after')
    } finally {
      m.close()
      for (const c of server.clients) c.terminate()
      await new Promise((r) => server.close(r))
    }
  })
})
