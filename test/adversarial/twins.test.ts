/**
 * Issue 21, twin ids met through a bridge: nodes in process on 127.0.0.1.
 * Each test names what an outside attack found and what is required.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as http from 'http'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import { base } from '../../lib'
import { generateKeyPair, startNode, type NodeOptions, type ScuttleNode, type TwinReport } from '../../lib/node'
import { helloAuth } from '../../lib/node/security'
import { Cluster, Gate, until } from './harness'

/**
 * A link to `target` that forwards what its client writes at once and, past
 * the handshake, holds what comes back until released (`held`): the session
 * opens, and the client's answers cannot come yet, as for a peer that
 * connected a moment ago. It notes when a byte last passed either way.
 */
class HalfLink {
  readonly server: net.Server
  /** When a byte last passed, either way. */
  last = Date.now()
  private readonly pairs: [net.Socket, net.Socket, Buffer[]][] = []

  constructor(
    target: number,
    private held = true,
  ) {
    this.server = net.createServer((client) => {
      const up = net.connect(target, '127.0.0.1')
      const back: Buffer[] = []
      this.pairs.push([client, up, back])
      client.on('error', () => undefined)
      up.on('error', () => undefined)
      client.on('data', () => (this.last = Date.now()))
      client.pipe(up)
      // The three lines of the handshake (hello, accept, open) pass.
      let lines = 0
      up.on('data', (b: Buffer) => {
        this.last = Date.now()
        let i = 0
        while (lines < 3 && i < b.length) if (b[i++] === 0x0a) lines++
        client.write(b.subarray(0, i))
        if (i < b.length) {
          if (this.held) back.push(b.subarray(i))
          else client.write(b.subarray(i))
        }
      })
      up.once('close', () => client.destroy())
      client.once('close', () => up.destroy())
    })
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return { host: '127.0.0.1', port: (this.server.address() as net.AddressInfo).port }
  }

  release(): void {
    this.held = false
    for (const [client, , back] of this.pairs) for (const b of back.splice(0)) client.write(b)
  }

  close(): void {
    this.server.close()
    for (const [client, up] of this.pairs) {
      client.destroy()
      up.destroy()
    }
  }
}

// A node's metrics, scraped.
// `writer` writes `key` until its version is above where `newer`'s clock
// started: a version of their id issued since `newer` started, not by it,
// the evidence that another node writes as it (its past, below, is none).
// (A clock may lag the wall clock by up to Clock.SLACK: a few writes.)
async function above(writer: ScuttleNode, newer: ScuttleNode, key: string): Promise<void> {
  const start = newer.gossip.replica.incarnation.clock.start
  await until(
    async () => {
      await writer.set(key, key)
      return writer.gossip.get(key).version >= start
    },
    10_000,
    `a write of ${writer.gossip.id} above where the newer started`,
    100,
  )
}

function metrics(n: ScuttleNode): Promise<string> {
  const at = n.metricsAddress() as { host: string; port: number }
  return new Promise((resolve, reject) => {
    http
      .get({ host: at.host, port: at.port, path: '/metrics' }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve(body))
      })
      .on('error', reject)
  })
}

// A peer refused as b handing one write over by hand on `port`, from
// `localAddress`: resolves with all the node answered once it said
// handed or refused.
function handOver(port: number, nonce: string, write: { key: string; value: string; version: number; first?: number }, localAddress = '127.0.0.1'): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress })
    s.on('error', () => undefined)
    let text = ''
    s.on('data', (b: Buffer) => {
      text += String(b)
      if (/"handed"|"refused"/.test(text)) s.destroy()
    })
    s.on('close', () => resolve(text))
    const hello = { hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'default', nonce, started: 2000, handover: true }
    s.write(`${JSON.stringify(hello)}\n{"accept":true}\n{"open":true}\n${JSON.stringify(write)}\n{"end":true}\n`)
  })
}

describe('adversarial: twins met through a bridge (issue 21)', function () {
  this.timeout(60_000)
  const nodes: ScuttleNode[] = []
  const dirs: string[] = []
  const links: HalfLink[] = []
  const sockets: net.Socket[] = []
  const gates: Gate[] = []
  const logs = new Map<ScuttleNode, string[]>()

  async function start(options: Partial<NodeOptions> & { id: string }): Promise<ScuttleNode> {
    const lines: string[] = []
    const data = fs.mkdtempSync(path.join(os.tmpdir(), `twins-${options.id}-`))
    dirs.push(data)
    const n = await startNode({ interval: 200, data, listen: { host: '127.0.0.1', port: 0 }, resolve: base.resolution.lww_vs_current_vers, log: (l) => lines.push(l), ...options })
    nodes.push(n)
    logs.set(n, lines)
    return n
  }
  const logged = (n: ScuttleNode, re: RegExp) => (logs.get(n) ?? []).some((l) => re.test(l))

  afterEach(async () => {
    for (const l of links.splice(0)) l.close()
    for (const s of sockets.splice(0)) s.destroy()
    for (const g of gates.splice(0)) g.destroy()
    for (const n of nodes.splice(0)) await n.close()
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
    logs.clear()
  })

  it("attack (fourth outside attack): node b dials c; a second b dials c while c has heard b's hello and no answer yet; c took the elder's fresh link for a quiet past incarnation, dropped it and kept the newcomer, and acknowledged writes of the elder never reached c; required: the newcomer is refused at once, serves its writes through c (handed over, c's own) while no write backs the claim (without --keys a claim alone moves no node), and is told to stop once one does; the elder keeps serving, all three count and log it, every acknowledged write reaches c", async () => {
    const c = await start({ id: 'c' })
    const link = new HalfLink(c.address().port)
    links.push(link)
    const b1 = await start({ id: 'b', connect: [await link.listen()] })
    await until(() => c.peers().some((p) => p.id === 'b'), 10_000, "c to hear the elder's hello")
    const reports: TwinReport[] = []
    const b2 = await start({ id: 'b', connect: [c.address()] })
    b2.on('twin', (t: TwinReport) => reports.push(t))
    // c judges the newcomer's hello while the elder's answers are held.
    await until(() => c.stats().twins > 0 || (c.stats().closedBy.new_incarnation ?? 0) > 0, 10_000, "c to judge the newcomer's hello")
    link.release()
    const { acked, refused } = await writeOnBoth(b1, b2, 15)
    const missing = () => acked.filter((k) => c.gossip.get(k).value !== k)
    await until(() => missing().length === 0, 10_000, 'every acknowledged write at c').catch(() => {
      throw new Error(`acknowledged writes missing at c: ${missing().join(' ')} (of ${acked.length}; refused: ${refused.length}; c closed by ${JSON.stringify(c.stats().closedBy)})`)
    })
    // The elder serves; the newcomer's writes reached c as c's own, or were refused once a write of the elder backed the claim.
    assert.deepStrictEqual(acked.filter((k) => k.startsWith('k1_')).length, 15, `the elder refused writes: ${refused.join(', ')}`)
    assert.ok(refused.every((r) => /^k2_\d+ twin$/.test(r)), refused.join(', '))
    await until(() => acked.every((k) => c.gossip.history.mapping(k.startsWith('k1_') ? 'b' : 'c', k)?.value === k), 10_000, "the elder's writes at c as b's, the newcomer's as c's")
    await above(b1, b2, 'backs')
    await until(() => reports.some((r) => r.newer), 20_000, 'the newcomer to be told to stop once a write of the elder backs the claim')
    await until(() => b1.stats().twins > 0, 10_000, 'the elder to hear of the newcomer')
    for (const n of [c, b1, b2]) {
      assert.ok(n.stats().twins > 0, `${n.gossip.id} counted no twin`)
      assert.ok(logged(n, /twin/), `${n.gossip.id} logged no twin:\n${(logs.get(n) ?? []).join('\n')}`)
    }
    assert.ok(!(logs.get(c) ?? []).some((l) => /new_incarnation/.test(l)), `c took a live twin for a new incarnation:\n${(logs.get(c) ?? []).join('\n')}`)
  })

  it('the reverse: a node restarted while its past incarnation\'s link to c stays open and silent (it died without closing it) is no twin; required: once that link has been quiet for three intervals and a second, c asks it a question, and as no answer comes within as long again, drops it and admits the new incarnation, which serves', async () => {
    const c = await start({ id: 'c' })
    // The past incarnation: its hello, accept and open, then silence.
    const past = net.connect(c.address().port, '127.0.0.1')
    sockets.push(past)
    past.on('error', () => undefined)
    past.resume()
    const hello = { hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'default', nonce: 'AAAAAAAAAAAAAAAAAAAAAA==', started: Date.now() - 60_000 }
    past.write(`${JSON.stringify(hello)}\n{"accept":true}\n{"open":true}\n`)
    await until(() => c.peers().some((p) => p.id === 'b'), 10_000, "c to admit the past incarnation's hello")
    const heard = Date.now()
    // (Quiet is a matter of time: nothing else to wait for.)
    await until(() => Date.now() - heard > 3 * 200 + 1000, 5000, 'the link to be quiet for three intervals and a second')
    const reports: TwinReport[] = []
    const b = await start({ id: 'b', connect: [c.address()] })
    b.on('twin', (t: TwinReport) => reports.push(t))
    await b.set('after', 'restart')
    await until(() => c.gossip.get('after').value === 'restart', 10_000, "the new incarnation's write to reach c")
    assert.strictEqual(c.stats().closedBy.new_incarnation, 1)
    assert.ok(logged(c, /did not answer a question within/), (logs.get(c) ?? []).join('\n'))
    assert.deepStrictEqual([reports, b.stats().twins, c.stats().twins], [[], 0, 0])
  })
  // Writes on each twin (`count` each, at once): the keys acknowledged, and those refused with their code.
  async function writeOnBoth(b1: ScuttleNode, b2: ScuttleNode, count = 10): Promise<{ acked: string[]; refused: string[] }> {
    const acked: string[] = []
    const refused: string[] = []
    await Promise.all(
      [b1, b2].map(async (b, t) => {
        await Promise.all(
          Array.from({ length: count }, async (_, i) => {
            const key = `k${t + 1}_${i}`
            try {
              await b.set(key, key)
              acked.push(key)
            } catch (err) {
              refused.push(`${key} ${(err as { code?: string }).code}`)
            }
          }),
        )
      }),
    )
    return { acked, refused }
  }

  it("attack (fifth): without --keys the newer twin reaches c first and joins; the elder, dialing c later, is refused there and c is its only peer; it acknowledged writes that never reached c (10 of 10); required: a node refused as a twin by every peer it has acknowledges no write (answers `twin`, says so in its log and status, keeps running), the newer keeps serving, and once a peer admits the elder again it serves writes again", async () => {
    const c = await start({ id: 'c' })
    const gate = new Gate(c.address().port)
    gates.push(gate)
    const b1 = await start({ id: 'b', connect: [{ host: '127.0.0.1', port: await gate.listen() }], metrics: { host: '127.0.0.1', port: 0 } })
    await until(() => Date.now() > b1.startedAt, 1000, 'a later start for the newer twin')
    const b2 = await start({ id: 'b', connect: [c.address()] })
    const reports: TwinReport[] = []
    b2.on('twin', (t: TwinReport) => reports.push(t))
    await until(() => b2.joined, 10_000, 'the newer twin to join through c')
    // Evidence for c's refusal of the elder: a write of the newer's that c holds (a claim alone moves no node).
    await b2.set('newer', 'first')
    await until(() => c.gossip.get('newer').value === 'first', 10_000, "the newer's write at c")
    // A write of the elder's waits for a peer to admit it (its dial is held).
    const early = b1.set('early', 'elder')
    gate.release()
    await assert.rejects(early, (err: { code?: string }) => err.code === 'twin')
    assert.deepStrictEqual(b1.gossip.get('early'), { version: -Infinity, value: null }, 'the refused write was not taken back')
    await until(() => b1.stats().twins > 0, 10_000, 'the elder to be refused at c')
    const { acked, refused } = await writeOnBoth(b1, b2)
    const missing = () => acked.filter((k) => c.gossip.get(k).value !== k)
    await until(() => missing().length === 0, 10_000, 'every acknowledged write at c').catch(() => {
      throw new Error(`acknowledged writes missing at c: ${missing().join(' ')} (of ${acked.length}; refused: ${refused.join(', ')})`)
    })
    // The elder, refused by its only peer, acknowledged none; the newer (joined, the claim unauthenticated) all.
    assert.deepStrictEqual(refused.sort(), Array.from({ length: 10 }, (_, i) => `k1_${i} twin`).sort())
    assert.strictEqual(acked.length, 10)
    assert.strictEqual((b1.writeRefusal as { code?: string } | null)?.code, 'twin')
    assert.strictEqual(b1.stats().writesRefused, 10)
    assert.match(await metrics(b1), /^scuttle_writable 0$/m)
    assert.ok(logged(b1, /twin: .*local writes are refused/), `the elder did not say it refuses writes:\n${(logs.get(b1) ?? []).join('\n')}`)
    await until(() => b2.stats().twins > 0, 10_000, 'the newer to hear of the elder')
    assert.ok(reports.length > 0 && reports.every((r) => !r.newer), `the joined newer twin was told to stop on an unauthenticated claim: ${JSON.stringify(reports)}`)
    for (const n of [c, b1, b2]) assert.ok(logged(n, /twin/), `${n.gossip.id} logged no twin:\n${(logs.get(n) ?? []).join('\n')}`)
    assert.ok(c.stats().twins > 0 && (c.stats().refused.twin ?? 0) > 0, `c counted no twin: ${JSON.stringify(c.stats())}`)
    // The newer one stops: c admits the elder when it dials again, and it serves writes again.
    await b2.close()
    await until(() => b1.writeRefusal === null, 20_000, 'c to admit the elder again')
    assert.ok(logged(b1, /twin: .*local writes are served again/), `the elder did not say it serves writes again:\n${(logs.get(b1) ?? []).join('\n')}`)
    assert.match(await metrics(b1), /^scuttle_writable 1$/m)
    await b1.set('again', 'served')
    await until(() => c.gossip.get('again').value === 'served', 10_000, "the elder's write to reach c")
    assert.strictEqual(c.gossip.get('early').value, null, 'a write refused reached c')
  })

  it("attack (sixth): in a larger cluster each node gossips with one random peer an interval, so a live twin's link to c is often quiet past three intervals and a second; c took it for a past incarnation's, dropped it and admitted the newcomer, and neither twin stopped; required: c asks the quiet link a question first and, as it answers, refuses the newcomer as the twin", async () => {
    // c and the elder each ask only the last peer they got (x), never each other: their link is live and quiet.
    const last = () => 0.99
    const c = await start({ id: 'c', random: last })
    const link = new HalfLink(c.address().port, false)
    links.push(link)
    const b1 = await start({ id: 'b', random: last, connect: [await link.listen()] })
    await until(() => c.peers().some((p) => p.id === 'b') && b1.joined, 10_000, 'the elder to join through c')
    // Evidence for c's refusal of the newcomer: a write of the elder's that c holds (a claim alone moves no node).
    await b1.set('elder', 'first')
    await until(() => c.gossip.get('elder').value === 'first', 10_000, "the elder's write at c")
    const x = await start({ id: 'x', connect: [c.address(), b1.address()] })
    await until(() => c.peers().some((p) => p.id === 'x') && b1.peers().some((p) => p.id === 'x'), 10_000, 'x to connect to both')
    await until(() => Date.now() - link.last > 3 * 200 + 1000, 10_000, 'the link of the elder and c to go quiet past three intervals and a second')
    const reports: TwinReport[] = []
    const b2 = await start({ id: 'b', connect: [c.address()] })
    b2.on('twin', (t: TwinReport) => reports.push(t))
    await until(() => reports.length > 0 || (c.stats().closedBy.new_incarnation ?? 0) > 0, 10_000, "c to judge the newcomer's hello")
    assert.ok(!logged(c, /new_incarnation/), `c took a live twin for a new incarnation:\n${(logs.get(c) ?? []).join('\n')}`)
    // Evidence: a write of the elder's since the newcomer started (the one before could be the newcomer's own past).
    await above(b1, b2, 'backs')
    await until(() => reports.some((r) => r.newer), 20_000, 'the newcomer to be told to stop once a write of the elder backs the claim')
    await assert.rejects(b2.set('k', 'newer'), (err: { code?: string }) => err.code === 'twin')
    await b1.set('k', 'elder')
    await until(() => c.gossip.get('k').value === 'elder', 10_000, "the elder's write to reach c")
    await until(() => b1.stats().twins > 0, 10_000, 'the elder to hear of the newcomer')
    for (const n of [c, b1, b2]) assert.ok(logged(n, /twin/), `${n.gossip.id} logged no twin:\n${(logs.get(n) ?? []).join('\n')}`)
  })
  it('two nodes that dial each other are no twins: on main the second link of each was refused as a twin of the first, counted and logged at warn on both, again at each redial; required: both links admitted, no twin seen', async () => {
    const free = async () => {
      const s = net.createServer()
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
      const port = (s.address() as net.AddressInfo).port
      await new Promise((resolve) => s.close(resolve))
      return port
    }
    const [pa, pb] = [await free(), await free()]
    const a = await start({ id: 'a', listen: { host: '127.0.0.1', port: pa }, connect: [{ host: '127.0.0.1', port: pb }], backoff: { min: 20, max: 100 } })
    const b = await start({ id: 'b', listen: { host: '127.0.0.1', port: pb }, connect: [{ host: '127.0.0.1', port: pa }], backoff: { min: 20, max: 100 } })
    await until(() => a.peers().length === 2 || a.stats().twins + b.stats().twins > 0, 10_000, 'a second link, or a twin seen')
    await until(() => b.peers().length === 2 || a.stats().twins + b.stats().twins > 0, 10_000, 'a second link at b, or a twin seen')
    assert.deepStrictEqual([a.stats().twins, b.stats().twins, a.writeRefusal, b.writeRefusal], [0, 0, null, null])
    assert.ok(!logged(a, /twin/) && !logged(b, /twin/), [...(logs.get(a) ?? []), ...(logs.get(b) ?? [])].join('\n'))
    await a.set('k', 'a')
    await until(() => b.gossip.get('k').value === 'a', 10_000, "a's write to reach b")
  })
})

describe('adversarial: a refused twin hands its acknowledged writes over (issue 21)', function () {
  this.timeout(60_000)
  const nodes: ScuttleNode[] = []
  const dirs: string[] = []
  const servers: net.Server[] = []
  const logs = new Map<ScuttleNode, string[]>()

  async function start(options: Partial<NodeOptions> & { id: string }): Promise<ScuttleNode> {
    const lines: string[] = []
    const data = fs.mkdtempSync(path.join(os.tmpdir(), `twins-${options.id}-`))
    dirs.push(data)
    const n = await startNode({ interval: 200, data, listen: { host: '127.0.0.1', port: 0 }, resolve: base.resolution.lww_vs_current_vers, log: (l) => lines.push(l), ...options })
    nodes.push(n)
    logs.set(n, lines)
    return n
  }
  const logged = (n: ScuttleNode, re: RegExp) => (logs.get(n) ?? []).some((l) => re.test(l))
  const free = async () => {
    const s = net.createServer()
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
    const port = (s.address() as net.AddressInfo).port
    await new Promise((resolve) => s.close(resolve))
    return port
  }
  // From now on, `port` forwards to `target` (a peer that was unreachable comes up).
  async function forward(port: number, target: number): Promise<void> {
    const s = net.createServer((client) => {
      const up = net.connect(target, '127.0.0.1')
      client.on('error', () => undefined)
      up.on('error', () => undefined)
      client.pipe(up).pipe(client)
      up.once('close', () => client.destroy())
      client.once('close', () => up.destroy())
    })
    servers.push(s)
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve))
  }
  async function writes(n: ScuttleNode, prefix: string, count: number): Promise<string[]> {
    const acked: string[] = []
    for (let i = 0; i < count; i++) {
      await n.set(`${prefix}${i}`, `${prefix}${i}`)
      acked.push(`${prefix}${i}`)
    }
    return acked
  }

  afterEach(async () => {
    for (const s of servers.splice(0)) s.close()
    for (const n of nodes.splice(0)) await n.close()
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
    logs.clear()
  })

  // A raw socket that says hello to `port` as `id`, started at `started`, and answers every question as an honest peer that holds nothing.
  // With `echo`, its answers name the highest version of `id` the peer's digests named (echosquat.mjs: no forged version, no update).
  function impostor(port: number, id: string, hello: Record<string, unknown>, echo = false, localAddress?: string): net.Socket {
    const s = net.connect({ port, host: '127.0.0.1', localAddress })
    s.on('error', () => undefined)
    let buf = ''
    let named = 0
    s.on('connect', () => s.write(`${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, id, codecs: ['ndjson'], cluster: 'default', nonce: 'QUFBQUFBQUFBQUFBQUFBQQ==', ...hello })}\n`))
    s.on('data', (b: Buffer) => {
      buf += String(b)
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        let m: { accept?: boolean; open?: boolean; digest?: boolean; done?: boolean; reply?: boolean; source_id?: string; version?: number } | null = null
        try {
          m = JSON.parse(line)
        } catch {
          continue
        }
        if (m?.accept === true) s.write('{"accept":true}\n')
        if (m?.open === true) s.write('{"open":true}\n')
        if (echo && m?.digest === true && m.source_id === id && typeof m.version === 'number' && m.version > named) named = m.version
        if (m?.digest === true && m.done === true && m.reply !== true) {
          if (echo && named > 0) s.write(`${JSON.stringify({ digest: true, source_id: id, version: named })}\n`)
          s.write('{"digest":true,"done":true,"reply":true}\n')
        }
      }
    })
    return s
  }

  // A handover is taken only from a node `a` refused as a twin: b started at 2000, refused beside a live b (started 1000).
  async function refuseTwin(a: Awaited<ReturnType<typeof start>>): Promise<void> {
    const elder = impostor(a.address().port, 'b', { started: 1000 })
    await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the first b')
    const twin = impostor(a.address().port, 'b', { started: 2000, nonce: 'QkJCQkJCQkJCQkJCQkJCQg==' })
    await until(() => a.stats().refused.twin === 1, 10_000, 'a to refuse the second b as a twin')
    elder.destroy()
    twin.destroy()
  }

  it('a handover that carries a membership key (another node\'s record, or a heartbeat) is refused: the connection closed, nothing written', async () => {
    const a = await start({ id: 'a', membership: true })
    await refuseTwin(a)
    const s = net.connect(a.address().port, '127.0.0.1')
    s.on('error', () => undefined)
    let closed = false
    s.on('close', () => (closed = true))
    s.resume()
    const hello = { hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'default', nonce: 'Q0NDQ0NDQ0NDQ0NDQ0NDQw==', started: 2000, handover: true }
    s.write(`${JSON.stringify(hello)}\n{"accept":true}\n{"open":true}\n{"key":"member/zz","value":{"address":"127.0.0.1:9"}}\n{"end":true}\n`)
    await until(() => closed, 10_000, 'the handover to be refused')
    assert.strictEqual(a.gossip.get('member/zz').value, null)
    assert.strictEqual(a.stats().handedIn, 0)
    assert.strictEqual(a.stats().closedBy.bad_hello, 1)
  })

  it('attack (fifth outside red team, hoforge.sh): a socket said hello to a as b with start S beside a live b, was refused as a twin, and a handover as b with start S from elsewhere was taken: a wrote its value as its own; required: a handover is taken only from the address the refused hello came from (another host is refused, code handover); from there it is taken', async () => {
    const a = await start({ id: 'a' })
    const elder = impostor(a.address().port, 'b', { started: 1000 })
    await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the first b')
    // The refused hello comes from 127.0.0.2 (another host, on loopback).
    const twin = impostor(a.address().port, 'b', { started: 2000, nonce: 'QkJCQkJCQkJCQkJCQkJCQg==' }, false, '127.0.0.2')
    await until(() => a.stats().refused.twin === 1, 10_000, 'a to refuse the second b as a twin')
    twin.destroy()
    const handover = (localAddress: string, nonce: string) => handOver(a.address().port, nonce, { key: 'hx', value: 'forged', version: 1 }, localAddress)
    const elsewhere = await handover('127.0.0.1', 'Q0NDQ0NDQ0NDQ0NDQ0NDQw==')
    assert.match(elsewhere, /handover/, elsewhere)
    assert.doesNotMatch(elsewhere, /"handed"/, elsewhere)
    assert.strictEqual(a.gossip.get('hx').value, null)
    const there = await handover('127.0.0.2', 'RERERERERERERERERERERA==')
    assert.match(there, /"handed":1/, there)
    assert.strictEqual(a.gossip.get('hx').value, 'forged')
    elder.destroy()
  })

  it('a handed write whose key the peer holds at or above its version is left out (written again, re-dated, it replaced a write that came after it: found by the twin property), a delete\'s marker included (the deleted key came back); one above is written, and all are answered as handed', async () => {
    const a = await start({ id: 'a' })
    const v = await a.set('kept', 'newer')
    // A key deleted here since: its marker is above the handed write too.
    await a.set('gone', 'was')
    const gone = await a.delete('gone')
    await refuseTwin(a)
    const s = net.connect(a.address().port, '127.0.0.1')
    s.on('error', () => undefined)
    let text = ''
    s.on('data', (b: Buffer) => (text += String(b)))
    const hello = { hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'default', nonce: 'QUFBQUFBQUFBQUFBQUFBQQ==', started: 2000, handover: true }
    s.write(`${JSON.stringify(hello)}\n{"accept":true}\n{"open":true}\n{"key":"kept","value":"older","version":${v - 1}}\n{"key":"fresh","value":"handed","version":${v - 1}}\n{"key":"gone","value":"older","version":${gone - 1}}\n{"end":true}\n`)
    await until(() => /"handed":3/.test(text), 10_000, 'a to answer the handover')
    assert.strictEqual(a.gossip.get('kept').value, 'newer')
    assert.strictEqual(a.gossip.get('gone').value, null, 'a deleted key came back')
    assert.strictEqual(a.gossip.get('fresh').value, 'handed')
    assert.strictEqual(a.stats().handedIn, 1)
    assert.ok(logged(a, /took 3 writes handed over by b .*1 written .*2 left out/), (logs.get(a) ?? []).join('\n'))
    s.destroy()
  })

  // c, cut off from a at first, writes; b, refused at a, hands a write of
  // `key` placed below c's write over to a; then c reaches a.
  async function handedBelow(cWrites: (c: ScuttleNode) => Promise<void>, copy = false): Promise<{ a: ScuttleNode; c: ScuttleNode }> {
    const a = await start({ id: 'a' })
    const port = await free()
    const c = await start({ id: 'c', connect: [{ host: '127.0.0.1', port }], backoff: { min: 20, max: 100 } })
    // b's write of k: below c's writes of it, which a does not hold yet.
    const t1 = await c.set('probe', 'p')
    await cWrites(c)
    // a's clock past c's writes (a clock runs on between wall-clock readings): re-dated, the handed write would be above them.
    const cAt = c.gossip.history.mapping('c', 'k')?.version ?? Infinity
    await until(async () => (await a.set('tick', 't')) > cAt, 10_000, "a's clock past c's writes", 20)
    await refuseTwin(a)
    // (`copy`: b's write is a copy issued again above its past, R2, at a version above c's, placed at t1.)
    const answer = await handOver(a.address().port, 'Q0NDQ0NDQ0NDQ0NDQ0NDQw==', copy ? { key: 'k', value: 'handed', version: cAt + 1000, first: t1 } : { key: 'k', value: 'handed', version: t1 })
    assert.match(answer, /"handed":1/, answer)
    assert.strictEqual(a.stats().handedIn, 1, 'a holds nothing of k: it writes the handed write')
    await forward(port, a.address().port)
    // Both hold both writes of k (a's as a value, or withdrawn on c's delete).
    await until(() => c.gossip.history.mapping('a', 'k') !== undefined && a.gossip.history.mapping('c', 'k') !== undefined, 10_000, 'a and c to exchange k')
    return { a, c }
  }

  it("attack (hand21, a): b's write of k made at t1, handed over to a after c wrote k at t2 > t1 (c's write not at a yet): a wrote it as its own at a's version, above t2, and it replaced c's write everywhere (an acknowledged write lost); required: a places it at t1 (`first`), so c's write stays k's value at every node", async () => {
    const { a, c } = await handedBelow(async (c) => void (await c.set('k', 'later')))
    for (const n of [a, c]) assert.strictEqual(n.gossip.get('k').value, 'later', `k at ${n.gossip.id}`)
    assert.strictEqual(a.gossip.history.mapping('a', 'k')?.first, c.gossip.get('probe').version, 'placed at the handed version')
  })

  it("a handed copy issued again above b's past (R2) goes with its first version and is placed there: c's later write of k, above its first and below its version, stays k's value everywhere", async () => {
    const { a, c } = await handedBelow(async (c) => void (await c.set('k', 'later')), true)
    for (const n of [a, c]) assert.strictEqual(n.gossip.get('k').value, 'later', `k at ${n.gossip.id}`)
  })

  it("attack (hand21, b): b's write of k made at t1, handed over to a after c deleted k at t3 > t1 (c's delete not at a yet): a wrote it as its own above t3 and the deleted value came back everywhere; required: placed at t1, c's delete beats it at every node (no resurrection)", async () => {
    const { a, c } = await handedBelow(async (c) => {
      await c.set('k', 'was')
      await c.delete('k')
    })
    await until(() => a.gossip.get('k').value === null, 10_000, "c's delete to beat the handed write at a")
    for (const n of [a, c]) {
      assert.strictEqual(n.gossip.get('k').value, null, `a deleted k came back at ${n.gossip.id}`)
      assert.ok(!('k' in n.gossip.state), `k in ${n.gossip.id}'s state`)
    }
  })

  it("a handed value placed at or below the peer's horizon (a delete of its key collected there) is refused as late (docs/deletes.md, rule 5): reported (`late`, in the log line), never written, the key stays deleted; re-dated, or written at its place with the marker gone, the deleted value came back", async () => {
    const a = await start({ id: 'a', config: { tombstone_grace: 0 } })
    const t1 = await a.set('probe', 'p')
    await a.set('k', 'was')
    const t3 = await a.delete('k')
    // Below a's max, past a grace of 0: collected at the next delete.
    await a.set('other', 'o')
    await a.delete('other')
    await until(() => a.gossip.deletes.horizon >= t3, 10_000, "a to collect k's tombstone")
    await refuseTwin(a)
    const answer = await handOver(a.address().port, 'Q0NDQ0NDQ0NDQ0NDQ0NDQw==', { key: 'k', value: 'handed', version: t1 })
    assert.match(answer, /"handed":1/, answer)
    assert.strictEqual(a.gossip.get('k').value, null, 'a collected delete came back')
    assert.strictEqual(a.gossip.history.mapping('a', 'k')?.value ?? null, null)
    assert.strictEqual(a.stats().handedIn, 0)
    assert.strictEqual(a.stats().invalid.late, 1)
    assert.ok(logged(a, /took 1 writes handed over by b .*0 written .*1 refused as late/), (logs.get(a) ?? []).join('\n'))
  })

  it('a handover more than a minute after its refusal is refused (code handover), nothing written; within the minute it is taken (docs/twins.md, R6; the node\'s clock injected, no waiting)', async () => {
    let skew = 0
    const a = await start({ id: 'a', now: () => Date.now() + skew })
    await refuseTwin(a)
    const handover = (nonce: string, key: string) => handOver(a.address().port, nonce, { key, value: 'handed', version: 1 })
    skew = 60_500
    const late = await handover('Q0NDQ0NDQ0NDQ0NDQ0NDQw==', 'late')
    assert.match(late, /"refused":"handover"/, late)
    assert.strictEqual(a.gossip.get('late').value, null)
    assert.strictEqual(a.stats().handedIn, 0)
    skew = 59_000
    const inTime = await handover('RERERERERERERERERERERA==', 'inTime')
    assert.match(inTime, /"handed":1/, inTime)
    assert.strictEqual(a.gossip.get('inTime').value, 'handed')
  })

  for (const where of ['at its peer', 'at the node', 'at its peer, with an address'] as const) {
    it(`attack (red team, imp.mjs, ${where}): without --keys one socket that says hello as b with an earlier start made the real b read-only (writable: false) or stop, a single unauthenticated claim; required: a claim alone moves no node: b logs and counts it, keeps serving, and every write it acknowledges reaches a`, async () => {
      const a = await start({ id: 'a' })
      const sockets: net.Socket[] = []
      const claim = where === 'at its peer, with an address' ? { started: 1000, address: '127.0.0.1:9' } : { started: 1000 }
      try {
        if (where !== 'at the node') {
          sockets.push(impostor(a.address().port, 'b', claim))
          await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the impostor')
        }
        const reports: TwinReport[] = []
        // (Refused on a bare claim, its writes wait for evidence until the stall timeout: a short one.)
        const b = await start({ id: 'b', connect: [a.address()], stallTimeout: 2000, metrics: { host: '127.0.0.1', port: 0 } })
        b.on('twin', (t: TwinReport) => reports.push(t))
        if (where === 'at the node') sockets.push(impostor(b.address().port, 'b', claim))
        await until(() => b.stats().twins > 0, 10_000, 'b to hear of the claim')
        const acked: string[] = []
        for (let i = 0; i < 5; i++) {
          await b.set(`k${i}`, `k${i}`)
          acked.push(`k${i}`)
        }
        assert.strictEqual(b.writeRefusal, null)
        assert.match(await metrics(b), /^scuttle_writable 1$/m)
        assert.ok(reports.every((r) => !r.newer), `b was told to stop on a claim: ${JSON.stringify(reports)}`)
        assert.ok(logged(b, /twin/), (logs.get(b) ?? []).join('\n'))
        await until(() => acked.every((k) => a.gossip.get(k).value === k), 10_000, "b's acknowledged writes at a").catch(() => {
          throw new Error(`b's acknowledged writes missing at a:\n${(logs.get(b) ?? []).join('\n')}\n--- a\n${(logs.get(a) ?? []).join('\n')}`)
        })
      } finally {
        for (const s of sockets) s.destroy()
      }
    })
  }

  it('attack (third outside red team, squat_restart.sh): without --keys a socket said hello to a as b with an earlier start after b stopped; b, restarted from an EMPTY data directory (a supported recovery: it takes its past back from peers), took a\'s copy of its own past for writes of another b and stopped (`cannot run: another live node has id b`, exit 1, again at every restart while the squatter stays); required: its past is no evidence of a twin: b keeps serving, and its writes reach a', async () => {
    const a = await start({ id: 'a' })
    const past = await start({ id: 'b', connect: [a.address()] })
    for (let i = 0; i < 3; i++) await past.set(`past${i}`, i)
    await until(() => a.gossip.get('past2').value === 2, 10_000, "b's past writes at a")
    await past.close()
    nodes.splice(nodes.indexOf(past), 1)
    await until(() => !a.peers().some((p) => p.id === 'b'), 10_000, 'a to see the past b gone')
    const socket = impostor(a.address().port, 'b', { started: Date.now() - 5000 })
    try {
      await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the squatter')
      const reports: TwinReport[] = []
      const b = await start({ id: 'b', connect: [a.address()], stallTimeout: 2000 })
      b.on('twin', (t: TwinReport) => reports.push(t))
      await until(() => b.stats().twins > 0, 10_000, 'b to be refused at a')
      await b.set('after', 'restart')
      assert.ok(reports.every((r) => !r.newer), `b was told to stop by its own past: ${JSON.stringify(reports)}\n${(logs.get(b) ?? []).join('\n')}`)
      assert.strictEqual(b.writeRefusal, null)
      await until(() => a.gossip.get('after').value === 'restart', 10_000, "b's write at a")
    } finally {
      socket.destroy()
    }
  })

  it('attack (red team, squat_keep.sh; the caveat "without --keys an impersonator can cut a node off"): a socket said hello to a as b first, with an earlier start, and answered every question; the real b, restarted, was refused by a for as long as the socket stayed (no peer, not ready), its writes reaching a only handed over as a\'s; required: once the window for evidence has passed and the socket showed no write of b since the real b started, a serves both: b joins while the socket stays, its writes reach a as b\'s own, and none acknowledged is lost', async () => {
    const a = await start({ id: 'a' })
    const socket = impostor(a.address().port, 'b', { started: Date.now() - 5000 })
    try {
      await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the impostor')
      // (b runs membership, as the CLI node does: its hello says it heartbeats, so a live twin would show a write of b.)
      const b = await start({ id: 'b', connect: [a.address()], stallTimeout: 2000, backoff: { min: 50, max: 400 }, membership: true })
      const acked: string[] = []
      for (let i = 0; i < 3; i++) {
        await b.set(`early${i}`, `early${i}`)
        acked.push(`early${i}`)
      }
      await until(() => b.joined, 15_000, 'a to admit the real b while the impostor stays').catch(() => {
        throw new Error(`b kept out:\n${(logs.get(b) ?? []).join('\n')}\n--- a\n${(logs.get(a) ?? []).join('\n')}`)
      })
      assert.ok(!socket.destroyed, 'the impostor left')
      assert.strictEqual(a.peers().filter((p) => p.id === 'b').length, 2, 'a serves both sessions')
      const late: string[] = []
      for (let i = 0; i < 3; i++) {
        await b.set(`late${i}`, `late${i}`)
        late.push(`late${i}`)
      }
      await until(() => [...acked, ...late].every((k) => a.gossip.get(k).value === k), 10_000, "b's acknowledged writes at a")
      // Admitted, b's writes reach a as b's own.
      await until(() => late.every((k) => a.gossip.history.mapping('b', k)?.value === k), 10_000, "b's late writes at a as b's")
      assert.strictEqual(b.writeRefusal, null)
    } finally {
      socket.destroy()
    }
  })

  it("attack (fifth outside red team, echo1.sh/echosquat.mjs): a socket said hello to a as b first and named, in its own digests, a's own digest entry for b (the real b's writes, reached a through c): never an update, never a forged version; a took the echo for evidence (a version of b the link named) and refused the real b at every redial for as long as the socket stayed; required: only a version of b the kept link delivered, that a did not hold already, is evidence: a serves both once the window passed, and b joins at a", async () => {
    const a = await start({ id: 'a', membership: true })
    const c = await start({ id: 'c', membership: true, connect: [a.address()] })
    await until(() => c.joined, 10_000, 'c to join through a')
    const socket = impostor(a.address().port, 'b', { started: Date.now() - 5000, beats: 200 }, true)
    try {
      await until(() => a.peers().some((p) => p.id === 'b'), 10_000, 'a to admit the squatter')
      const b = await start({ id: 'b', connect: [c.address(), a.address()], stallTimeout: 2000, backoff: { min: 50, max: 400 }, membership: true })
      await until(() => a.gossip.history.sources.get('b') !== undefined, 10_000, "b's heartbeats at a through c")
      await until(() => b.peers().some((p) => p.id === 'a'), 15_000, 'a to admit the real b while the echoing squatter stays').catch(() => {
        throw new Error(`b kept out of a:\n--- a\n${(logs.get(a) ?? []).join('\n')}`)
      })
      assert.ok(!socket.destroyed, 'the squatter left')
      assert.ok(logged(a, /both are served/), (logs.get(a) ?? []).join('\n'))
    } finally {
      socket.destroy()
    }
  })

  it('the converse of squat_keep.sh: a live elder b with membership shows a heartbeat of b within the window, so the newer b is refused on evidence past it (never served alongside) and told to stop, and the elder serves', async () => {
    const c = await start({ id: 'c', membership: true })
    const b1 = await start({ id: 'b', connect: [c.address()], membership: true })
    await until(() => b1.joined, 10_000, 'the elder to join through c')
    await until(() => Date.now() > b1.startedAt, 1000, 'a later start for the newer twin')
    const reports: TwinReport[] = []
    const b2 = await start({ id: 'b', connect: [c.address()], membership: true, backoff: { min: 50, max: 400 }, stallTimeout: 10_000 })
    b2.on('twin', (t: TwinReport) => reports.push(t))
    await until(() => reports.some((r) => r.newer), 20_000, 'the newer to be told to stop on the evidence of the elder\'s heartbeats').catch(() => {
      throw new Error(`not told to stop:\n${(logs.get(b2) ?? []).join('\n')}\n--- c\n${(logs.get(c) ?? []).join('\n')}`)
    })
    assert.ok(!b2.joined, 'the newer twin joined')
    assert.ok(!logged(c, /both are served/), (logs.get(c) ?? []).join('\n'))
    await b1.set('k', 'elder')
    await until(() => c.gossip.get('k').value === 'elder', 10_000, "the elder's write at c")
  })

  for (const who of ['newcomer', 'elder'] as const) {
    it(`attack (red team, lone${who === 'elder' ? ', newer-first' : ''}): the ${who} with id b, its peers unreachable at first, acknowledged writes alone, then met c, which holds the other b, and was refused as a twin: its acknowledged writes never reached c (24 of 24 lost); required: the refused twin hands its acknowledged writes of this life to c, which writes them as its own, both say so in logs and metrics, and the other b's writes stay b's`, async () => {
      const c = await start({ id: 'c' })
      const port = await free()
      // The one alone dials a port where nothing listens yet.
      const lone = async () => start({ id: 'b', connect: [{ host: '127.0.0.1', port }], backoff: { min: 20, max: 100 }, metrics: { host: '127.0.0.1', port: 0 } })
      const joined = async () => start({ id: 'b', connect: [c.address()] })
      let alone: ScuttleNode
      let other: ScuttleNode
      if (who === 'elder') {
        alone = await lone()
        await until(() => Date.now() > alone.startedAt, 1000, 'a later start for the newer twin')
        other = await joined()
      } else {
        other = await joined()
        await until(() => Date.now() > other.startedAt, 1000, 'a later start for the newer twin')
        alone = await lone()
      }
      await until(() => other.joined, 10_000, 'the other b to join through c')
      const mine = await writes(alone, 'lone_', 24)
      // Evidence for the refusal of the newer: a write of the other's since it started.
      await above(other, alone, 'kept_0')
      const theirs = await writes(other, 'kept_', 5)
      await forward(port, c.address().port)
      await until(() => alone.writeRefusal !== null, 10_000, 'the lone b to be refused as a twin')
      const missing = () => [...mine, ...theirs].filter((k) => c.gossip.get(k).value !== k)
      await until(() => missing().length === 0, 10_000, 'every acknowledged write at c').catch(() => {
        throw new Error(`acknowledged writes missing at c: ${missing().join(' ')}\n${(logs.get(alone) ?? []).join('\n')}\n--- c\n${(logs.get(c) ?? []).join('\n')}`)
      })
      await until(() => alone.stats().handedOver === 24, 10_000, 'c to answer the handover')
      // c wrote them as its own; b's mappings at c are the other b's alone.
      for (const k of mine) assert.strictEqual(c.gossip.history.mapping('c', k)?.value, k)
      for (const k of theirs) assert.strictEqual(c.gossip.history.mapping('b', k)?.value, k)
      assert.ok(mine.every((k) => c.gossip.history.mapping('b', k) === undefined), 'the lone b reached c under id b')
      assert.ok(logged(alone, /twin: handed 24 acknowledged writes .* to peer c/), (logs.get(alone) ?? []).join('\n'))
      assert.ok(logged(c, /twin: took 24 writes handed over by b/), (logs.get(c) ?? []).join('\n'))
      assert.strictEqual(c.stats().handedIn, 24)
      assert.match(await metrics(alone), /^scuttle_twin_handed_over_total 24$/m)
      // Every write reaches the other b too (c relays its own writes).
      await until(() => mine.every((k) => other.gossip.get(k).value === k), 10_000, 'the handed writes at the other b')
    })
  }
})

describe('adversarial: a handover under --keys (issue 21)', function () {
  this.timeout(60_000)
  const nodes: ScuttleNode[] = []
  const servers: net.Server[] = []
  afterEach(async () => {
    for (const s of servers.splice(0)) s.close()
    for (const n of nodes.splice(0)) await n.close()
  })

  it('the newcomer b, alone at first, acknowledged writes, then was refused at c on an authenticated hello: it hands them over on an authenticated session and c takes them; a handover hello without a proof is refused', async () => {
    const pairs = Object.fromEntries(['b', 'c'].map((id) => [id, generateKeyPair()]))
    const publicKeys = Object.fromEntries(Object.entries(pairs).map(([id, k]) => [id, k.publicKey]))
    const auth = (id: string) => helloAuth({ id, privateKey: pairs[id].privateKey, publicKeys })
    const start = async (id: string, more: Partial<NodeOptions>) => {
      const n = await startNode({ id, interval: 200, listen: { host: '127.0.0.1', port: 0 }, auth: auth(id), resolve: base.resolution.lww_vs_current_vers, log: () => undefined, ...more })
      nodes.push(n)
      return n
    }
    const c = await start('c', {})
    const elder = await start('b', { connect: [c.address()] })
    await until(() => elder.joined, 10_000, 'the elder to join')
    const s = net.createServer()
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
    const port = (s.address() as net.AddressInfo).port
    await new Promise((resolve) => s.close(resolve))
    const lone = await start('b', { connect: [{ host: '127.0.0.1', port }], backoff: { min: 20, max: 100 } })
    const acked: string[] = []
    for (let i = 0; i < 5; i++) {
      await lone.set(`lone${i}`, i)
      acked.push(`lone${i}`)
    }
    const fwd = net.createServer((client) => {
      const up = net.connect(c.address().port, '127.0.0.1')
      client.on('error', () => undefined)
      up.on('error', () => undefined)
      client.pipe(up).pipe(client)
      up.once('close', () => client.destroy())
      client.once('close', () => up.destroy())
    })
    servers.push(fwd)
    await new Promise<void>((resolve) => fwd.listen(port, '127.0.0.1', resolve))
    await until(() => lone.stats().handedOver === 5, 10_000, 'the handover')
    assert.ok(acked.every((k, i) => c.gossip.history.mapping('c', k)?.value === i))
    // Without a proof, a handover hello is refused at the hello.
    const raw = net.connect(c.address().port, '127.0.0.1')
    raw.on('error', () => undefined)
    let got = ''
    raw.on('data', (b: Buffer) => (got += String(b)))
    raw.write(`${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'default', nonce: 'QUFBQUFBQUFBQUFBQUFBQQ==', handover: true })}\n{"accept":true}\n`)
    await until(() => /"refused":"(unauthenticated|bad_proof)"/.test(got), 5000, 'the keyless handover to be refused')
    raw.destroy()
    assert.strictEqual(c.stats().handedIn, 5)
  })
})

describe('adversarial: twins after a freeze (issue 21)', function () {
  this.timeout(60_000)
  const cluster = new Cluster()
  afterEach(() => cluster.cleanup())

  it("attack (red team, freeze.sh): e frozen (SIGSTOP, a paused VM), a new e started elsewhere took its place at every peer and took writes, then the old e thawed; a write sent to e while it was frozen was acknowledged at thaw (its admission decided long before) and never reached any peer (every one refuses the old e, and holds the new e's higher versions): lost; required: every acknowledged write of both reaches every peer", async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    const c = await cluster.node('c', [], { connect: [a, b] })
    const e = await cluster.node('e', ['--data', cluster.tmp()], { connect: [a, b, c] })
    const acked: string[] = []
    for (let i = 0; i < 5; i++) {
      await e.write(`old/${i}`, `old/${i}`)
      acked.push(`old/${i}`)
    }
    e.child.kill('SIGSTOP')
    // Sent while frozen: answered at thaw.
    const frozen = e.set('frozen', 'frozen', 30_000)
    const at = Date.now()
    // (Quiet is a matter of time: the peers' links to e must be quiet past three intervals and a second.)
    await until(() => Date.now() - at > 3 * 50 + 1000 + 200, 5000, "e's links to go quiet")
    const e2 = await cluster.node('e', ['--data', cluster.tmp()], { connect: [a, b, c] })
    await until(async () => (await e2.peers()).length === 3, 20_000, 'the new e to take the old one\'s place at every peer')
    for (let i = 0; i < 5; i++) {
      await e2.write(`new/${i}`, `new/${i}`)
      acked.push(`new/${i}`)
    }
    e.child.kill('SIGCONT')
    const answer = await frozen
    if (answer.ok === true) acked.push('frozen')
    const missing = async () => {
      const out: string[] = []
      for (const n of [a, b, c, e2]) {
        const state = await n.state()
        for (const k of acked) if (state[k]?.value !== k) out.push(`${k}@${n.id === 'e' ? 'e2' : n.id}`)
      }
      return out
    }
    await until(async () => (await missing()).length === 0, 20_000, 'every acknowledged write at every peer').catch(async () => {
      throw new Error(`acknowledged writes missing: ${(await missing()).join(' ')} (the frozen write answered ${JSON.stringify(answer)})\n--- old e:\n${e.tail(3000)}`)
    })
  })
})
