/**
 * Nodes with a WebSocket side for node/websocket.test.ts and
 * wire/join.test.ts: started with their log kept, and closed after each test
 * with the members joined to them; and the answer to a raw upgrade request
 * (also adversarial/operator.test.ts). All on 127.0.0.1.
 */
import * as net from 'net'
import WebSocket from 'ws'
import { base } from '../../lib'
import { startNode } from '../../lib/node'
import type { Joined, WebSocketLike } from '../../lib'
import type { NodeOptions, ScuttleNode } from '../../lib/node'

export const resolve = base.resolution.lww_vs_current_vers

/** The ws package's client, as joinNode takes it. */
export const WS = WebSocket as unknown as new (u: string) => WebSocketLike

export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Call within a describe: its nodes and members are closed after each test. */
export function wsNodes() {
  const nodes: ScuttleNode[] = []
  const members: Joined[] = []
  const logs = new Map<string, string[]>()
  const logged = (id: string, re: RegExp) => (logs.get(id) ?? []).some((l) => re.test(l))

  async function start(options: Partial<NodeOptions> & { id: string }): Promise<ScuttleNode> {
    const lines: string[] = []
    logs.set(options.id, lines)
    const n = await startNode({ interval: 20, resolve, ws: {}, log: (l) => lines.push(l), ...options })
    nodes.push(n)
    return n
  }
  const url = (n: ScuttleNode) => `ws://127.0.0.1:${(n.wsAddress() as { port: number }).port}`

  afterEach(async () => {
    for (const m of members.splice(0)) m.close()
    await Promise.all(nodes.splice(0).map((n) => n.close()))
    logs.clear()
  })
  return { nodes, members, logs, logged, start, url }
}

/** The status line a WebSocket port on 127.0.0.1 answers an upgrade request with `headers` (lower case; host 127.0.0.1:port unless given). */
export function upgradeStatus(port: number, headers: Record<string, string> = {}): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    s.on('data', (b: Buffer) => {
      text += String(b)
      s.destroy()
    })
    s.on('close', () => resolve(text.split('\r\n')[0]))
    s.on('error', () => undefined)
    const h = Object.entries({ host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`)
    s.write(`GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${h.join('')}\r\n`)
  })
}
