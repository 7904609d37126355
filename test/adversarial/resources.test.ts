/**
 * Resource limits of the node (defect 9, and slow peers).
 *
 * 9. No limit on connections: 250 idle peers that said hello slowed
 *    propagation between honest nodes ×138, since gossip partners are
 *    picked among them; empty digests drew answers ×972 their size with no
 *    rate limit. Required: bounded connections; propagation among honest
 *    nodes not slowed by many idle hello-only peers (measured); what one
 *    peer can make the node send is rate-limited (bytes out per byte in,
 *    measured).
 *
 * Also: a peer that never reads costs bounded memory while honest peers
 * are served.
 */
import * as assert from 'assert'
import * as net from 'net'
import { Attacker, Cluster, DONE, FULL, HELLO, NodeProc, REPLY, adversarialHooks, bytesWritten, figure, line, pace, stillServes, until } from './harness'

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]

describe('adversarial: resource limits (defect 9)', function () {
  this.timeout(60_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'resources')

  async function idle(n: NodeProc, count: number, prefix: string): Promise<Attacker[]> {
    const out: Attacker[] = []
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, (_, j) =>
          cluster.attacker(n.port, `${prefix}${i + j}`).then((m) => {
            m.keep = false
            return m
          }),
        ),
      )
      out.push(...batch)
    }
    return out
  }

  it('attack: 1,000 connections that say hello and then nothing; required: the node keeps at most 512 of them, and its honest peer stays served', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect')
    const attackers = await idle(a, 1000, 'idle')
    const open = () => attackers.filter((m) => !m.isClosed).length
    let kept = open()
    try {
      await until(() => (kept = open()) <= 512, 5000, 'a to shed connections beyond a bound', 100)
    } finally {
      figure('idle_connections_kept', kept)
      figure('peers_listed', (await a.peers()).length)
    }
    assert.ok((await a.peers()).some((p) => p.id === 'b'), 'a dropped its honest peer b to make room')
    figure('converge_after_attack_ms', await stillServes(a, b, 'conns', 5000))
  })

  it('attack: 250 idle hello-only peers on each of two honest nodes; required: a write still propagates within max(10 × the unattacked median, 2 s)', async () => {
    const a = await cluster.node('a', [], { interval: 100 })
    const b = await cluster.node('b', [], { connect: [a], interval: 100 })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect')
    const measure = async (tag: string, n: number, deadline: number, what: string): Promise<number[]> => {
      const times: number[] = []
      for (let i = 0; i < n; i++) {
        const start = Date.now()
        const value = `${tag}${i}`
        await a.write(value, i)
        try {
          await until(async () => (await b.get(value)).value === i, deadline, what, 10)
        } finally {
          times.push(Date.now() - start)
          figure(`${tag}_ms`, times)
        }
      }
      return times
    }
    const base = median(await measure('unattacked', 5, 5000, 'a write on a to reach b (no attack)'))
    const bound = Math.max(10 * base, 2000)
    figure('bound_ms', bound)
    await idle(a, 250, 'idleA')
    await idle(b, 250, 'idleB')
    const attacked = median(await measure('attacked', 3, bound, `a write on a to reach b with 250 idle peers on each (unattacked median ${base} ms; bound ${bound} ms)`))
    figure('slowdown', Math.round((attacked / Math.max(base, 1)) * 10) / 10)
    assert.ok(attacked <= bound)
  })

  async function amplification(kind: 'digest' | 'reply'): Promise<void> {
    const a = await cluster.node('a', [], { interval: 200 })
    const b = await cluster.node('b', [], { connect: [a] })
    const feeder = await cluster.attacker(a.port, 'feeder')
    let text = ''
    for (let j = 0; j < 200; j++) text += line({ key: `s${j % 50}/k${j}`, value: 'v'.repeat(50), source_id: `s${j % 50}`, version: j + 1 })
    await feeder.exchange(text + DONE)
    feeder.destroy()
    const m = await cluster.attacker(a.port, 'amplifier')
    m.keep = false
    // 2,000 small questions a second for 2 s (what a peer needs is one per gossip interval).
    const chunk = (kind === 'digest' ? DONE : REPLY).repeat(20)
    const start = Date.now()
    let next = start
    while (Date.now() - start < 2000 && !m.isClosed) {
      await m.send(chunk)
      next += 10
      await pace(Math.max(0, next - Date.now()))
    }
    // What a sent back during the attack and one second after it.
    await pace(1000)
    const sent = m.bytesOut
    const got = m.bytesIn
    const ratio = got / sent
    figure('bytes_in_to_node', sent)
    figure('bytes_out_of_node', got)
    figure('bytes_out_per_byte_in', Math.round(ratio * 10) / 10)
    figure('answers', m.dones + m.replies)
    figure('attacker_closed', m.isClosed)
    m.destroy()
    assert.ok(ratio <= 10, `${kind === 'digest' ? 'empty digests' : 'reply markers'} drew ${Math.round(ratio)} bytes out per byte in (${got} bytes for ${sent}) within the attack and 1 s after; required at most 10`)
    figure('converge_after_attack_ms', await stillServes(a, b, kind, 5000))
  }

  it('attack: empty digests ({"digest":true,"done":true}) at 2,000/s for 2 s from one peer; required: bytes out per byte in at most 10', async () => {
    await amplification('digest')
  })

  it('attack: bare reply markers ({"digest":true,"done":true,"reply":true}) at 2,000/s for 2 s; required: bytes out per byte in at most 10', async () => {
    await amplification('reply')
  })

  it(`attack: a peer that asks for everything and never reads; required: peak RSS growth under 100 MB, honest peer served meanwhile${FULL ? ', and the peer dropped within the stall timeout' : ''}`, async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    for (let i = 0; i < 300; i++) await a.write(`k${i}`, 'v'.repeat(2000))
    await until(async () => (await b.get('k299')).value !== null, 5000, 'b to sync a')
    a.sample()
    const before = a.peakKB
    const deaf = await cluster.attacker(a.port, 'deaf')
    deaf.pause()
    const start = Date.now()
    // 100 questions a second for 2 s; what a does not read stays in our socket's buffer.
    while (Date.now() - start < 2000 && !deaf.isClosed) {
      void deaf.send(DONE.repeat(10))
      await pace(100)
    }
    figure('converge_during_attack_ms', await stillServes(a, b, 'deaf', 5000))
    a.sample()
    const growth = Math.round((a.peakKB - before) / 1024)
    figure('rss_growth_mb', growth)
    assert.ok(growth < 100, `a peer that never reads grew a's peak RSS by ${growth} MB`)
    if (FULL) {
      figure('dropped_after_ms', await until(() => a.count(/not reading for/) > 0, 20_000, 'a to drop the peer that never reads', 100))
    }
  })

  it('(beyond the list) a peer the node dials says hello and then misbehaves; required: the node redials with backoff (at most 10 dials in 3 s) and serves its honest peer', async () => {
    let dials = 0
    const evil = net.createServer((socket) => {
      dials++
      socket.on('error', () => undefined)
      socket.resume()
      socket.write(`${HELLO('evil')}garbage\n`)
    })
    cluster.servers.push(evil)
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()))
    const b = await cluster.node('b')
    const a = await cluster.node('a', [], { connect: [`127.0.0.1:${(evil.address() as net.AddressInfo).port}`, b] })
    const start = Date.now()
    await pace(3000) // the measurement window
    const seen = dials
    figure('dials_in_3s', seen)
    figure('log_lines_in_3s', a.stderr.split('\n').length)
    figure('window_ms', Date.now() - start)
    figure('converge_ms', await stillServes(a, b, 'evil-dial', 5000))
    assert.ok(seen <= 10, `a dialed the misbehaving peer ${seen} times in 3 s: a hello resets its backoff`)
  })

  it('(beyond the list) SIGTERM while attackers hold connections (a peer that never reads, a half-sent line, a silent socket); required: a --data node exits 0 within 5 s and restarts with its state', async () => {
    const dir = cluster.tmp()
    const a = await cluster.node('a', ['--data', dir])
    const b = await cluster.node('b', [], { connect: [a] })
    for (let i = 0; i < 300; i++) await a.write(`k${i}`, 'v'.repeat(2000))
    await until(async () => (await b.get('k299')).value !== null, 5000, 'b to sync a')
    const deaf = await cluster.attacker(a.port, 'deaf')
    deaf.pause()
    for (let i = 0; i < 20; i++) void deaf.send(DONE.repeat(10))
    const half = await cluster.attacker(a.port, 'half')
    await half.send('{"key":"half","value":')
    await cluster.attacker(a.port, null)
    // a is answering the deaf peer into a full buffer; ask it to stop.
    await (await cluster.attacker(a.port, 'probe')).exchange(DONE)
    const start = Date.now()
    a.child.kill('SIGTERM')
    let code: number | null | undefined
    try {
      await until(() => !a.alive, 5000, 'a to exit after SIGTERM', 20)
      code = a.exitCode
    } finally {
      figure('exit_ms', Date.now() - start)
      figure('exit_code', code ?? null)
    }
    assert.strictEqual(code, 0, `a exited with ${code}:\n${a.tail(400)}`)
    const again = await cluster.node('a', ['--data', dir], { connect: [b] })
    assert.strictEqual(((await again.get('k299')).value as string).length, 2000)
    await stillServes(again, b, 'after-sigterm', 5000)
  })

  it("(beyond the list) attack: digest lines naming the node's own id at low versions (below its clock's start) make its honest peer resend the node's whole state each time; required: the honest peer writes at most 10 bytes per attacker byte", async () => {
    const a = await cluster.node('a', ['--mtu', '500'])
    const b = await cluster.node('b', ['--mtu', '500'], { connect: [a] })
    for (let i = 0; i < 1000; i++) await a.write(`k${i}`, 'x'.repeat(100))
    await until(async () => (await b.get('k999')).value !== null, 10_000, 'b to sync a')
    // What b writes in 2 s without an attack (gossip, heartbeats every 50 ms):
    // the attack's cost is what it writes above that.
    const idleFrom = bytesWritten(b.child.pid as number)
    await pace(2000)
    const idle = bytesWritten(b.child.pid as number) - idleFrom
    const m = await cluster.attacker(a.port)
    const before = bytesWritten(b.child.pid as number)
    // Paced under the node's digest rate (80/s at interval 50, after a burst
    // of 8), so that every digest is answered: this measures amplification,
    // not the rate limit (since answers leave in one write, 20 exchanges
    // back to back can outrun it).
    for (let i = 0; i < 20; i++) {
      await m.exchange(line({ digest: true, source_id: 'a', version: i }) + DONE)
      await pace(15)
    }
    await pace(2000) // the measurement window: b's answers to a's digests within 2 s
    const written = bytesWritten(b.child.pid as number) - before - idle
    const ratio = written / m.bytesOut
    figure('attacker_bytes', m.bytesOut)
    figure('honest_peer_idle_bytes', idle)
    figure('honest_peer_bytes_written', written)
    figure('amplification', Math.round(ratio))
    assert.ok(ratio <= 10, `20 own-id digest lines (${m.bytesOut} bytes) sent to a made honest b write ${written} bytes (x${Math.round(ratio)}): a asks for its whole past again each time`)
    figure('converge_after_attack_ms', await stillServes(a, b, 'low-own', 5000))
  })
})
