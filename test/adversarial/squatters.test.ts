/**
 * Issue 21, peers: slots and members that honest peers must not be
 * squatted out of.
 *
 * - 64 sockets that answer every question with an empty done kept an
 *   honest dialing peer out for 40 s or more (with --keys too: the hello
 *   was not authenticated; see operator.test.ts for --keys).
 * - maxMembers 64 filled by 63 forged members kept a real new node out of
 *   `members`.
 */
import * as assert from 'assert'
import * as crypto from 'crypto'
import * as net from 'net'
import { base } from '../../lib'
import { startNode, type ScuttleNode } from '../../lib/node'
import { Cluster, adversarialHooks, figure, line, until } from './harness'

describe('adversarial: squatters (issue 21)', function () {
  this.timeout(60_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'squatters')
  const nodes: ScuttleNode[] = []
  const sockets: net.Socket[] = []
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    for (const n of nodes.splice(0)) await n.close()
  })
  const resolve = base.resolution.lww_vs_current_vers
  const start = async (o: Parameters<typeof startNode>[0]): Promise<ScuttleNode> => {
    const n = await startNode({ resolve, interval: 50, log: () => undefined, ...o })
    nodes.push(n)
    return n
  }

  // A socket that says hello and answers every question (and digest) with an empty reply, and reconnects when dropped.
  function squatter(port: number, id: string, alive: () => boolean): void {
    const s = net.connect(port, '127.0.0.1')
    sockets.push(s)
    s.on('error', () => undefined)
    let text = ''
    s.on('data', (b: Buffer) => {
      text += String(b)
      let nl: number
      while ((nl = text.indexOf('\n')) >= 0) {
        const l = text.slice(0, nl)
        text = text.slice(nl + 1)
        if (/"done":true/.test(l) && !/"reply":true/.test(l)) s.write(line({ digest: true, done: true, protocol: 2, reply: true }))
      }
    })
    s.once('connect', () => s.write(line({ hello: 'simple-scuttle', protocol: 2, id, codecs: ['ndjson'] })))
    s.once('close', () => {
      if (alive()) setImmediate(() => squatter(port, id, alive))
    })
  }

  it('attack: 64 sockets that answer every question with an empty done, reconnecting when dropped; required: an honest dialing peer gets in and syncs within 10 s', async () => {
    const a = await start({ id: 'a', maxConnections: 64 })
    for (let i = 0; i < 20; i++) await a.set(`k${i}`, i)
    let alive = true
    for (let i = 0; i < 64; i++) squatter(a.address().port, `sq${i}`, () => alive)
    await until(() => a.peers().length >= 64, 10_000, 'the squatters to hold every slot')
    // Every squatter has answered by now.
    await until(() => a.stats().asked >= 128, 10_000, 'a to ask the squatters')
    const t0 = Date.now()
    const b = await start({ id: 'b', connect: [a.address()] })
    try {
      await until(() => b.gossip.get('k19').value === 19, 10_000, 'b to get in and sync')
      figure('honest_in_ms', Date.now() - t0)
    } finally {
      alive = false
    }
    assert.ok(a.peers().some((p) => p.id === 'b'))
  })

  it('attack: 63 forged members (records and heartbeats) from one peer into a node of maxMembers 64; required: a real new node still appears in members', async () => {
    const a = await start({ id: 'a', membership: { maxMembers: 64 } })
    const b0 = await start({ id: 'b0', membership: true, connect: [a.address()] })
    await until(() => a.membership?.member('b0')?.status === 'live', 10_000, 'b0 to be a member')
    const m = await cluster.attacker(a.address().port)
    const now = Date.now() * 1000
    let v = now
    // 63 forged members, each its own source, with a record and heartbeats.
    const forge = async (round: number) => {
      let text = ''
      for (let i = 0; i < 63; i++) {
        const id = `f${i}`
        if (round === 0) text += line({ key: `member/${id}`, value: { address: `127.0.0.1:${1000 + i}`, started: 1, meta: null }, source_id: id, version: v++ })
        text += line({ key: `heartbeat/${id}`, value: round, source_id: id, version: v++ })
      }
      await m.send(text + line({ digest: true, done: true, protocol: 2 }))
    }
    const forged = () => (a.membership?.members() ?? []).filter((x) => x.id.startsWith('f')).length
    // Forge until as many are tracked as the node lets one peer fill (all 63 once, leaving no room).
    let round = 0
    await until(
      async () => {
        await forge(round++)
        return forged() >= 55 || m.isClosed
      },
      10_000,
      'the forged members to fill a',
    )
    figure('forged_tracked_before_join', forged())
    const c = await start({ id: 'c', membership: true, connect: [a.address()] })
    await until(
      async () => {
        if (!m.isClosed) await forge(round++)
        return a.membership?.member('c')?.status === 'live'
      },
      15_000,
      'the real node c to be a live member of a',
    )
    figure('forged_tracked', forged())
    assert.ok(c.membership !== null)
  })

  it('attack (seventh outside attack on issue 21): dialing as fast as one can, 150 times each a hello then gone, a hello then an invalid line, and a hello then an answer (a new set of peers in sync each time), every time under another id; required: the log grows by a bounded number of lines (the first few of each kind, then a count), not by one or two per dial; every connection counted in stats', async () => {
    const lines: string[] = []
    const a = await start({ id: 'a', log: (l) => lines.push(l) })
    const port = a.address().port
    const before = lines.length
    // One dial: a hello; once the session is open (the node asks at once), an invalid line, an answer or nothing; then gone.
    const answering: net.Socket[] = []
    const dial = (id: string, then: 'gone' | 'invalid' | 'answer') =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1')
        sockets.push(s)
        let text = ''
        s.on('error', () => undefined)
        s.on('close', () => resolve())
        s.on('data', (b: Buffer) => {
          text += String(b)
          if (!/"done":true/.test(text)) return
          text = ''
          if (then === 'invalid') s.write(line({ key: '', value: 1, source_id: id, version: 1 }))
          else if (then === 'gone') s.destroy()
          else if (!answering.includes(s)) {
            answering.push(s)
            s.write(line({ digest: true, done: true, protocol: 2, reply: true }))
            resolve()
          }
        })
        s.once('connect', () => s.write(line({ hello: 'simple-scuttle', protocol: 2, id, codecs: ['ndjson'] })))
      })
    const N = 150
    for (let i = 0; i < N; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => [dial(`gone${i + j}`, 'gone'), dial(`bad${i + j}`, 'invalid'), dial(`ans${i + j}`, 'answer')]).flat())
      await until(() => a.peers().filter((p) => p.synced).length === 25, 5000, 'the answering dials to be in sync')
      for (const s of answering.splice(0)) s.destroy()
    }
    await until(() => a.peers().length === 0, 5000, 'every dial to be closed')
    const said = lines.slice(before)
    figure('log_lines', said.length)
    assert.ok(said.length <= 60, `${said.length} log lines for ${3 * N} dials:\n${said.slice(0, 5).join('\n')}\n...`)
    const s = a.stats()
    assert.strictEqual(s.connected, 3 * N)
    assert.strictEqual(s.closedBy.key, N)
    assert.ok((s.logUnsaid.connected ?? 0) > 0, JSON.stringify(s.logUnsaid))
  })

  it('attack (seventh outside attack on issue 21, unsigned mode): one peer forges 100 members and restarts them every round (2,100 member lines on a node in 10 rounds); required: member lines bounded like per-connection ones, every event still counted', async () => {
    const lines: string[] = []
    const a = await start({ id: 'a', membership: true, log: (l) => lines.push(l) })
    const m = await cluster.attacker(a.address().port)
    // It answers the node's first question: the node has joined, and membership runs.
    await m.send(line({ digest: true, done: true, protocol: 2, reply: true }))
    await until(() => a.membership !== null, 5000, 'membership to start')
    const ms = a.membership
    assert.ok(ms !== null)
    let events = 0
    for (const e of ['live', 'restart', 'dead', 'collected']) ms.on(e, () => events++)
    let v = Date.now() * 1000
    let round = 0
    // Rounds as fast as the node takes them, each a new incarnation of every forged member.
    await until(
      async () => {
        round++
        let text = ''
        for (let i = 0; i < 100; i++) {
          const id = `f${i}`
          text += line({ key: `member/${id}`, value: { address: `10.9.9.9:${i + 1}`, started: Date.now() + round, meta: null }, source_id: id, version: v++ })
          text += line({ key: `heartbeat/${id}`, value: round, source_id: id, version: v++ })
        }
        await m.send(text + line({ digest: true, done: true, protocol: 2 }))
        return events >= 200 || m.isClosed
      },
      20_000,
      'the forged members to move membership 200 times',
    )
    assert.ok(!m.isClosed)
    const said = lines.filter((l) => /^member f\d+ /.test(l))
    figure('member_events', events)
    figure('member_lines', said.length)
    assert.ok(said.length <= 40, `${said.length} member lines for ${events} events`)
    const unsaid = a.stats().logUnsaid
    assert.strictEqual(said.length + Object.entries(unsaid).reduce((n, [k, x]) => (k.startsWith('member_') ? n + x : n), 0), events, JSON.stringify(unsaid))
  })

  it('attack (seventh outside attack on issue 21): 100 dials saying hello as the live peer b, or as the node itself (a twin each time, refused); required: the twin lines bounded like per-connection ones, each twin still refused', async () => {
    const lines: string[] = []
    const a = await start({ id: 'a', log: (l) => lines.push(l) })
    const port = a.address().port
    await start({ id: 'b', connect: [a.address()] })
    await until(() => a.peers().some((p) => p.id === 'b'), 5000, 'b to connect')
    const before = lines.length
    // A session as `id` (docs/wire.md): hello, accept, open; resolves when the node closes it.
    const claim = (id: string) =>
      new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1')
        sockets.push(s)
        let text = ''
        let refused = ''
        s.on('error', () => undefined)
        s.on('close', () => resolve(refused))
        s.on('data', (b: Buffer) => {
          text += String(b)
          let nl: number
          while ((nl = text.indexOf('\n')) >= 0) {
            const m = JSON.parse(text.slice(0, nl)) as { accept?: unknown; open?: unknown; refused?: string }
            text = text.slice(nl + 1)
            if (m.accept !== undefined) s.write(line({ accept: true }))
            if (m.open !== undefined) s.write(line({ open: true }))
            if (m.refused !== undefined) refused = m.refused
          }
        })
        s.once('connect', () => s.write(line({ hello: 'simple-scuttle', protocol: 2, id, codecs: ['ndjson'], nonce: crypto.randomBytes(16).toString('base64'), started: Date.now() })))
      })
    const verdicts: string[] = []
    for (let i = 0; i < 100; i += 25) verdicts.push(...(await Promise.all(Array.from({ length: 25 }, (_, j) => claim(j % 2 === 0 ? 'b' : 'a')))))
    assert.deepStrictEqual(new Set(verdicts), new Set(['twin']))
    const said = lines.slice(before)
    figure('twin_lines', said.length)
    assert.ok(said.length <= 30, `${said.length} log lines for 100 twin hellos:\n${said.slice(0, 4).join('\n')}`)
    assert.ok(a.peers().some((p) => p.id === 'b'), 'the real b kept')
  })
})
