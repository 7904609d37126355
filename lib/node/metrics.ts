/**
 * Prometheus metrics of a TCP node, in the text format, over HTTP (`GET
 * /metrics`), with prom-client. Loaded only when a node is started with
 * `metrics`; each node has a registry of its own, so several nodes in one
 * process do not mix their figures.
 *
 * @packageDocumentation
 */
import type * as http from 'http'
import type * as Prom from 'prom-client'
import type { Member } from '../membership'
import type { Address, NodeStats } from './types'
import { boundedServer, closeIfUnread } from './bounded-http'
import { loadPeer } from './peer'

/** What the metrics read from a node (`ScuttleNode` has it). */
export interface MetricsSource {
  stats(): NodeStats
  /** Joined and in sync (`/ready`). */
  ready(): boolean
  /** Why not ready, or null. */
  notReady(): string | null
  /** Why local writes are refused now, or null. */
  readonly writeRefusal: Error | null
  peers(): unknown[]
  connections(): number
  staleness(): { id: string; ms: number }[]
  readonly membership: { counts(): { live: number; dead: number }; members(): Member[] } | null
  onDigest: ((direction: 'sent' | 'received', entries: number) => void) | null
}

/** Every metric's name: docs/operations.md lists them. */
export const METRIC_NAMES = [
  'scuttle_exchanges_total',
  'scuttle_updates_sent_total',
  'scuttle_updates_received_total',
  'scuttle_bytes_sent_total',
  'scuttle_bytes_received_total',
  'scuttle_digest_entries',
  'scuttle_digests_dropped_total',
  'scuttle_invalid_total',
  'scuttle_refused_total',
  'scuttle_twins_total',
  'scuttle_twin_handed_over_total',
  'scuttle_twin_handed_in_total',
  'scuttle_writes_refused_total',
  'scuttle_writable',
  'scuttle_ready',
  'scuttle_connections_closed_total',
  'scuttle_connections_opened_total',
  'scuttle_log_lines_unsaid_total',
  'scuttle_peers',
  'scuttle_connections',
  'scuttle_members',
  'scuttle_slowest_peer_staleness_seconds',
] as const

/** The registry of one node's metrics (without the HTTP server). */
export function registry(node: MetricsSource): Prom.Registry {
  // prom-client is an optional peer dependency: loaded when metrics are served.
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = loadPeer<typeof Prom>('prom-client', 'Metrics (the metrics option, --metrics)')
  const register = new Registry()
  const registers = [register]
  // A counter whose value is read from the node at each scrape.
  const total = (name: string, help: string, read: (s: NodeStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset()
        this.inc(read(node.stats()))
      },
    })
  new Counter({
    name: 'scuttle_exchanges_total',
    help: 'Gossip exchanges: role="asked", started by this node; role="answered", a peer\'s question answered',
    labelNames: ['role'],
    registers,
    collect() {
      const s = node.stats()
      this.reset()
      this.inc({ role: 'asked' }, s.asked)
      this.inc({ role: 'answered' }, s.answered)
    },
  })
  total('scuttle_updates_sent_total', 'Updates sent to peers', (s) => s.updatesSent)
  total('scuttle_updates_received_total', 'Updates received from peers (before they are checked)', (s) => s.updatesReceived)
  total('scuttle_bytes_sent_total', 'Bytes sent to peers', (s) => s.bytesSent)
  total('scuttle_bytes_received_total', 'Bytes received from peers', (s) => s.bytesReceived)
  total('scuttle_digests_dropped_total', "Peers' digests dropped unanswered past the digest rate", (s) => s.digestsDropped)
  total('scuttle_twins_total', 'Twins seen: another live node with this id, or two live peers with one id', (s) => s.twins)
  total('scuttle_twin_handed_over_total', 'Acknowledged writes of this node handed over, refused as a twin, to a peer that wrote them as its own', (s) => s.handedOver)
  total('scuttle_twin_handed_in_total', 'Writes a node refused as a twin handed over to this one, written as its own', (s) => s.handedIn)
  total('scuttle_writes_refused_total', 'Local writes refused: the data directory cannot be written, or this node is a twin (the newer, or refused by every peer it has)', (s) => s.writesRefused)
  new Gauge({
    name: 'scuttle_writable',
    help: 'Local writes are served (1) or refused (0: the data directory cannot be written, or this node is a twin, the newer or refused by every peer it has)',
    registers,
    collect() {
      this.set(node.writeRefusal === null ? 1 : 0)
    },
  })
  new Counter({
    name: 'scuttle_refused_total',
    help: 'Sessions refused, by this node or its peer, by code (other_cluster, twin, unauthenticated, bad_proof, full, ...)',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset()
      for (const [code, n] of Object.entries(node.stats().refused)) this.inc({ code }, n)
    },
  })
  new Gauge({
    name: 'scuttle_ready',
    help: 'The node is ready (1) or not (0): joined, in sync with every peer that answers (one at least, if it has peers), not every other member dead; what GET /ready says',
    registers,
    collect() {
      this.set(node.ready() ? 1 : 0)
    },
  })
  new Counter({
    name: 'scuttle_connections_closed_total',
    help: 'Connections this node closed, by code (a refusal, an invalid input, stalled, transport, evicted, ...)',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset()
      for (const [code, n] of Object.entries(node.stats().closedBy)) this.inc({ code }, n)
    },
  })
  total('scuttle_connections_opened_total', 'Sessions opened (a hello accepted), in and out', (s) => s.connected)
  new Counter({
    name: 'scuttle_log_lines_unsaid_total',
    help: 'Log lines a peer causes per connection (connected, closed:CODE, invalid:CODE, ...) not said past 10 of a kind a minute',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset()
      for (const [kind, n] of Object.entries(node.stats().logUnsaid)) this.inc({ kind }, n)
    },
  })
  new Counter({
    name: 'scuttle_invalid_total',
    help: 'Invalid inputs from peers, by code (not_json, frame, signature, ahead, member, ...)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const [reason, n] of Object.entries(node.stats().invalid)) this.inc({ reason }, n)
    },
  })
  const digests = new Histogram({
    name: 'scuttle_digest_entries',
    help: 'Entries (sources named) per digest, direction="sent" or "received"',
    labelNames: ['direction'],
    buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers,
  })
  node.onDigest = (direction, entries) => digests.observe({ direction }, entries)
  new Gauge({
    name: 'scuttle_peers',
    help: 'Peers connected (hello said)',
    registers,
    collect() {
      this.set(node.peers().length)
    },
  })
  new Gauge({
    name: 'scuttle_connections',
    help: 'Connections open',
    registers,
    collect() {
      this.set(node.connections())
    },
  })
  new Gauge({
    name: 'scuttle_members',
    help: 'Members by status (this node counts as live); absent without membership',
    labelNames: ['status'],
    registers,
    collect() {
      this.reset()
      const m = node.membership
      if (m === null) return
      const c = m.counts()
      this.set({ status: 'live' }, c.live)
      this.set({ status: 'dead' }, c.dead)
    },
  })
  new Gauge({
    name: 'scuttle_slowest_peer_staleness_seconds',
    help: "How long ago this node wrote the oldest of its own updates that the slowest connected peer's last digest did not hold (0: every peer held all)",
    registers,
    collect() {
      let worst = 0
      for (const p of node.staleness()) if (p.ms > worst) worst = p.ms
      this.set(worst / 1000)
    },
  })
  collectDefaultMetrics({ register })
  return register
}

/** A metrics server: its address, and how to stop it. */
export interface MetricsServer {
  address(): Address
  close(): Promise<void>
}

/**
 * Serve `node`'s metrics at `http://HOST:PORT/metrics` (default
 * 127.0.0.1, any free port). Bounded (see bounded-http.ts): 64
 * connections, the oldest not being answered making room for a new one,
 * and `at.requestTimeout` (default 3 s) for a whole request; `GET /health`
 * (200) and `GET /ready` (200 or 503) besides; anything but `GET /metrics`
 * is a 404.
 * @throws what listening throws (EADDRINUSE, ...).
 */
export async function serveMetrics(node: MetricsSource, at: Partial<Address> & { requestTimeout?: number }, log: (line: string) => void): Promise<MetricsServer> {
  const register = registry(node)
  const server = boundedServer((req, res) => {
    closeIfUnread(req, res)
    const path = (req.url ?? '').split('?')[0]
    // Probes for orchestrators, on the port they already scrape.
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
      return
    }
    if (req.method === 'GET' && path === '/ready') {
      const reason = node.notReady()
      res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === null ? 'ready\n' : `not ready: ${reason}\n`)
      return
    }
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics, /health or /ready\n')
      return
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: unknown) => {
        log(`metrics: collecting failed: ${(err as Error)?.message}`)
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n')
      },
    )
  }, at)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port ?? 0, at.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => log(`metrics server error: ${err.message}`))
  return {
    address() {
      const a = server.address() as import('net').AddressInfo
      return { host: a.address, port: a.port }
    },
    close() {
      node.onDigest = null
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
