/**
 * The TCP node's metrics (lib/node/metrics.ts) and cluster features in
 * process, on 127.0.0.1: cluster names in the hello, membership, counters
 * and staleness (with digests in parts), metrics served and scraped, and the
 * refusals a dialer meets again and again logged once per hundred.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import * as http from 'http'
import * as net from 'net'
import { base } from '../../lib'
import { startNode } from '../../lib/node'
import type { NodeOptions, ScuttleNode } from '../../lib/node'
import { badCluster } from '../../lib/node/tcp'

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function get(port: number, path = '/metrics', method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('node: cluster, membership and metrics (in process)', function () {
  this.timeout(30_000)
  const nodes: ScuttleNode[] = []
  const logs = new Map<string, string[]>()
  const start = async (options: Partial<NodeOptions> & { id: string }) => {
    const lines = logs.get(options.id) ?? []
    logs.set(options.id, lines)
    const n = await startNode({ interval: 20, resolve: base.resolution.lww_vs_current_vers, log: (l) => lines.push(l), ...options })
    nodes.push(n)
    return n
  }
  const logged = (id: string, re: RegExp) => (logs.get(id) ?? []).some((l) => re.test(l))

  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.close()
    logs.clear()
  })

  it('refuses bad options: a cluster name, membership', async () => {
    const resolve = base.resolution.lww_vs_current_vers
    await assert.rejects(startNode({ id: 'x', resolve, cluster: '', log: () => undefined }), /cluster name refused: it is empty/)
    await assert.rejects(startNode({ id: 'x', resolve, cluster: 'a\u0007', log: () => undefined }), /control characters/)
    await assert.rejects(startNode({ id: 'x', resolve, membership: 5 as never, log: () => undefined }), /membership must be a boolean or options/)
    assert.strictEqual(badCluster(7), 'it is not a string')
    assert.strictEqual(badCluster('c'.repeat(129)), 'it is longer than 128 characters')
    assert.strictEqual(badCluster('blue'), null)
    // Metrics on a port in use: the node does not start, and closes what it opened.
    const holder = net.createServer()
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
    const port = (holder.address() as net.AddressInfo).port
    try {
      await assert.rejects(startNode({ id: 'x', resolve, membership: true, metrics: { port }, log: () => undefined }), /EADDRINUSE/)
    } finally {
      holder.close()
    }
  })

  it('members, counters and staleness with digests in parts; metrics served and scraped; another cluster refused, its dialer logged once per hundred', async () => {
    const config = { digest_part: 2 } // digests of a few sources come in parts
    const a = await start({ id: 'a', cluster: 'blue', membership: { threshold: 8 }, metrics: { port: 0 }, config })
    const b = await start({ id: 'b', cluster: 'blue', membership: true, connect: [a.address()], config })
    const c = await start({ id: 'c', cluster: 'blue', membership: true, connect: [a.address(), b.address()], config })
    for (let i = 0; i < 3; i++) await c.set(`k${i}`, i)
    await until(() => [a, b, c].every((n) => n.membership?.counts().live === 3), 10_000, 'three live members everywhere')
    assert.strictEqual(a.membership?.member('b')?.address, `127.0.0.1:${b.address().port}`)
    assert.ok(logged('a', /member b is live at 127\.0\.0\.1:\d+/))
    assert.ok(logged('a', /a listening on 127\.0\.0\.1:\d+ \(cluster "blue"\)/))
    // Staleness: every peer has sent a digest; each holds our writes up to a heartbeat or so.
    await until(() => a.staleness().length === 2, 10_000, 'both peers to send a digest')
    for (const p of a.staleness()) assert.ok(p.ms >= 0 && p.ms < 5000, JSON.stringify(p))
    const s = a.stats()
    assert.ok(s.asked > 0 && s.answered > 0 && s.updatesSent > 0 && s.updatesReceived > 0 && s.bytesSent > 0 && s.bytesReceived > 0, JSON.stringify(s))
    assert.strictEqual(a.connections(), 2)
    // Metrics over HTTP.
    const port = a.metricsAddress()?.port as number
    assert.ok(logged('a', new RegExp(`serving metrics on http://127\\.0\\.0\\.1:${port}/metrics`)))
    const r = await get(port)
    assert.strictEqual(r.status, 200)
    assert.match(r.body, /^scuttle_members\{status="live"\} 3$/m)
    assert.match(r.body, /^scuttle_peers 2$/m)
    assert.match(r.body, /^scuttle_digest_entries_count\{direction="sent"\} [1-9]/m)
    assert.match(r.body, /^scuttle_slowest_peer_staleness_seconds [0-9.e-]+$/m)
    assert.strictEqual((await get(port, '/metrics', 'POST')).status, 404)
    assert.strictEqual((await get(port, '/other')).status, 404)
    // A node of another cluster dials a again and again: refused each time, logged once per hundred.
    const x = await start({ id: 'x', cluster: 'red', connect: [a.address()], backoff: { min: 1, max: 2 }, config })
    await until(() => logged('a', /peer x is of cluster "red", this node of "blue": refused.*\(101 times\)/), 20_000, 'a to log the 101st refusal')
    const lines = (logs.get('a') ?? []).filter((l) => /peer x is of cluster "red"/.test(l))
    assert.ok(lines.length <= 3, `${lines.length} lines for one refused peer`)
    assert.ok(logged('x', /peer a is of cluster "blue", this node of "red": refused/))
    assert.ok((a.stats().refused.other_cluster ?? 0) >= 101)
    assert.strictEqual(x.peers().length, 0)
    assert.strictEqual(a.membership?.member('x'), undefined)
    // A member that stops: dead at a and b, logged with what to act on.
    await c.close()
    nodes.splice(nodes.indexOf(c), 1)
    await until(() => a.membership?.member('c')?.status === 'dead' && b.membership?.member('c')?.status === 'dead', 10_000, 'c to be dead')
    assert.ok(logged('a', /member c is dead at 127\.0\.0\.1:\d+: no heartbeat for \d+ ms \(phi [\d.]+ > 8; heartbeats came every \d+ ms\)/))
    const after = await get(port)
    assert.match(after.body, /^scuttle_members\{status="dead"\} 1$/m)
  })

  it('a node without membership has none, and its metrics say so', async () => {
    const a = await start({ id: 'a', metrics: { port: 0 } })
    assert.strictEqual(a.membership, null)
    assert.strictEqual(a.cluster, 'default')
    const r = await get(a.metricsAddress()?.port as number)
    assert.doesNotMatch(r.body, /^scuttle_members\{/m)
    assert.deepStrictEqual(a.staleness(), [])
  })

  it('a write the store refuses is taken back (issue 21, attack 4): the key holds what resolve made of the rest, watchers hear it go, and no peer ever gets it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-takeback-'))
    try {
      const a = await start({ id: 'a', membership: true, data: path.join(dir, 'a') })
      const b = await start({ id: 'b', membership: true, connect: [a.address()] })
      await a.set('k', 'old')
      await a.set('mine', 'old')
      await until(() => b.gossip.get('mine').value === 'old', 10_000, 'b to hold a\'s writes')
      await b.set('k', 'from b')
      await until(() => a.gossip.get('k').value === 'from b', 10_000, 'a to hold b\'s write')
      const heard: string[] = []
      a.gossip.watch('k', (_key, entry) => heard.push(String(entry?.value)))
      fs.rmSync(path.join(dir, 'a'), { recursive: true, force: true })
      const refused = await Promise.allSettled([a.set('k', 'new'), a.delete('mine'), a.set('fresh', 1)])
      assert.deepStrictEqual(refused.map((r) => r.status === 'rejected' && (r.reason as { code?: string }).code), ['store_failed', 'store_failed', 'store_failed'])
      assert.deepStrictEqual([a.gossip.get('k').value, a.gossip.get('mine').value, a.gossip.get('fresh').version], ['from b', 'old', -Infinity])
      assert.strictEqual(a.gossip.history.mapping('a', 'k')?.value, 'old', "a's own mapping of k is the one before again")
      assert.deepStrictEqual(heard, ['new', 'from b'])
      // b hears a (its heartbeats) past the refused writes, and holds none of them.
      const refusedMax = a.gossip.version
      await until(() => (b.gossip.history.sources.get('a')?.max ?? 0) > refusedMax, 10_000, "b to hear a's heartbeats")
      assert.deepStrictEqual([b.gossip.history.mapping('a', 'k')?.value, b.gossip.get('mine').value, b.gossip.get('fresh').version], ['old', 'old', -Infinity])
      assert.strictEqual(b.gossip.get('k').value, 'from b')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('attack (third outside attack on issue 21): twins that each joined through their own peer, then bridged by a third node (writing on), lost 1 or 2 of 40 acknowledged writes at some nodes; required: every acknowledged write reaches every other node', async function () {
    this.timeout(120_000)
    // (Their versions interleave: a node that takes one twin's write at some
    // version is never sent the other's below it, unless it is offered.)
    for (let round = 0; round < 3; round++) {
      const opts = { interval: 100, membership: {} }
      const a = await start({ id: `a${round}`, ...opts })
      const c = await start({ id: `c${round}`, ...opts })
      const twin = `b${round}`
      const b1 = await start({ id: twin, connect: [a.address()], ...opts })
      const b2 = await start({ id: twin, connect: [c.address()], ...opts })
      const acked: string[] = []
      await Promise.all(
        [b1, b2].map(async (b, i) => {
          for (let k = 0; k < 20; k++) {
            const key = `w${i + 1}-${k}`
            await b.set(key, key)
            acked.push(key)
            await new Promise((r) => setTimeout(r, 3 * round))
          }
        }),
      )
      const e = await start({ id: `e${round}`, connect: [a.address(), c.address()], ...opts })
      // And both go on writing while the bridge joins.
      const end = Date.now() + 1500
      await Promise.all(
        [b1, b2].map(async (b, i) => {
          for (let k = 0; Date.now() < end; k++) {
            const key = `x${i + 1}-${k}`
            await b.set(key, key)
            acked.push(key)
            await new Promise((r) => setTimeout(r, 5))
          }
        }),
      )
      const missing = () => [a, c, e].flatMap((n) => acked.filter((k) => n.gossip.get(k).value !== k).map((k) => `${n.gossip.id}:${k}`))
      await until(() => missing().length === 0, 20_000, 'every acknowledged write at a, c and e').catch(() => {
        throw new Error(`round ${round}: acknowledged writes missing at a, c or e: ${missing().slice(0, 20).join(' ')}`)
      })
      for (const n of nodes.splice(0)) await n.close()
    }
  })
})
