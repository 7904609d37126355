/**
 * Where a TCP node accepts peers over TCP (its WebSocket server is
 * `websocket.ts`). What is accepted is handed to the node, which opens a
 * session on it.
 *
 * @packageDocumentation
 */
import type * as http from 'http'
import * as net from 'net'
import type { Address } from './types'

/** What a listener needs of its node. */
export interface ListenerHost {
  /** A TCP connection came in. */
  socket(socket: net.Socket): void
}

/** Listen on `at` (default 127.0.0.1, any free port). */
export async function listen(server: net.Server, at: Partial<Address>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port ?? 0, at.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Where `server` listens, or null. */
export function addressOf(server: net.Server | http.Server | null): Address | null {
  const a = server?.address()
  return a === undefined || a === null || typeof a === 'string' ? null : { host: a.address, port: a.port }
}

/** A node's TCP server (see the module's comment). */
export class Listener {
  private readonly server: net.Server

  constructor(
    host: ListenerHost,
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

  /** Where TCP peers are accepted. */
  address(): Address {
    return addressOf(this.server) as Address
  }

  /** Stop accepting (the node closes its connections). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
