/**
 * WebSockets (lib/wire/websocket.ts): gossipOver pipes two Gossips over a
 * socket, in either format. On 127.0.0.1. (A node's WebSocket server:
 * node/websocket.test.ts; joinNode: wire/join.test.ts.)
 */
import WebSocket, { WebSocketServer } from 'ws'
import { Gossip, gossipOver } from '../../lib'
import type { WebSocketLike } from '../../lib'
import { resolve, until } from './ws-nodes'

describe('WebSocket', function () {
  this.timeout(30_000)

  it('gossipOver: two Gossips over a plain WebSocket, either format', async () => {
    for (const format of ['binary', 'ndjson'] as const) {
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
      await new Promise((r) => server.once('listening', r))
      const a = new Gossip('a', { resolve })
      const b = new Gossip('b', { resolve })
      a.set('x', format)
      server.on('connection', (ws) => {
        const link = gossipOver(ws as unknown as WebSocketLike, { format })
        a.pipe(link).pipe(a)
      })
      const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}`)
      const link = gossipOver(ws as unknown as WebSocketLike, { format })
      b.pipe(link).pipe(b)
      await new Promise((r) => ws.once('open', r))
      b.gossip()
      await until(() => b.get('x').value === format, 5000, `b to get x over ${format}`)
      ws.terminate()
      await new Promise((r) => server.close(r))
    }
  })
})
