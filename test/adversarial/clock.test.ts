/**
 * Clock poisoning (defect 1). Versions are Lamport clocks, so whatever a
 * peer names moves the clock: a digest entry naming the node's own id at
 * MAX_VERSION (digests are unsigned, so this works even with --keys), or in
 * unsigned mode one update at MAX_VERSION from any source, made the node's
 * next write exceed what every peer accepts: refused everywhere, connections
 * dropped in a loop, the poison relayed, and with --data a node that then
 * refused to restart. Digest lines naming the node's own id just above its
 * clock made it re-sign and re-log all its writes each time.
 *
 * Required: no input from a peer, signed or not, leaves a node unable to
 * write, replicate or restart; what one such line costs is bounded.
 */
import * as assert from 'assert'
import { Clock } from '../../lib'
import { Attacker, Cluster, DONE, MAX_VERSION, NodeProc, adversarialHooks, converges, figure, line, stillServes } from './harness'

/** A write on `n` must be acknowledged with a version that every peer accepts. */
async function writableVersion(n: NodeProc, key: string): Promise<number> {
  const v = await n.write(key, 'probe')
  assert.ok(
    Number.isSafeInteger(v) && v <= MAX_VERSION,
    `after the attack ${n.id} acknowledged a write at version ${v}, above MAX_VERSION ${MAX_VERSION}: every peer refuses it`,
  )
  return v
}

describe('adversarial: clock poisoning (defect 1)', function () {
  this.timeout(40_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'clock')

  it("attack: an unsigned digest entry naming the node's own id at MAX_VERSION, against --keys nodes; required: the node's next writes still reach an honest peer", async () => {
    const keys = cluster.keys(['a', 'b'])
    const a = await cluster.node('a', ['--keys', keys])
    const b = await cluster.node('b', ['--keys', keys], { connect: [a] })
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    const m = await cluster.attacker(a.port)
    figure('attacker_outcome', await m.exchange(line({ digest: true, source_id: 'a', version: MAX_VERSION }) + DONE))
    const dropsBefore = b.count(/closing connection to a/)
    await writableVersion(a, 'probe')
    figure('converge_after_attack_ms', await stillServes(a, b, 'digest-poison', 5000))
    figure('b_dropped_a_after_attack', b.count(/closing connection to a/) - dropsBefore)
    assert.strictEqual(b.count(/closing connection to a/) - dropsBefore, 0, `honest b dropped a after the attack:\n${b.tail(600)}`)
  })

  it('attack (unsigned mode): one update at MAX_VERSION from a made-up source, on a line a - b - c; required: every node can still write and replicate, the poison does not spread', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    const c = await cluster.node('c', [], { connect: [b] })
    await c.write('before', 1)
    await converges(a, 'before', 1, 5000)
    const m = await cluster.attacker(a.port)
    figure('attacker_outcome', await m.exchange(line({ key: 'poison', value: 1, source_id: 'mallory', version: MAX_VERSION }) + DONE))
    for (const n of [a, b, c]) await writableVersion(n, `probe-${n.id}`)
    const start = Date.now()
    await a.write('from-a', 'a')
    await c.write('from-c', 'c')
    await converges(c, 'from-a', 'a', 5000, 'a write on the attacked node a to reach c, two hops away')
    await converges(a, 'from-c', 'c', 5000, 'a write on c to reach the attacked node a')
    figure('converge_after_attack_ms', Date.now() - start)
    for (const n of [b, c]) {
      const v = (await n.write(`late-${n.id}`, 1)) as number
      assert.ok(v <= MAX_VERSION, `the poison spread: ${n.id} now writes at ${v}`)
    }
  })

  it("attack (unsigned mode): an update naming the honest peer b's id at MAX_VERSION, sent to a, which relays it to b; required: b can still write and replicate", async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await b.write('before', 1)
    await converges(a, 'before', 1, 5000)
    const m = await cluster.attacker(a.port)
    figure('attacker_outcome', await m.exchange(line({ key: 'framed', value: 1, source_id: 'b', version: MAX_VERSION }) + DONE))
    // a relays b's "update" to b with its next answers: two of a's writes reaching b bracket that.
    for (const marker of ['sync1', 'sync2']) {
      await a.write(marker, 1)
      await converges(b, marker, 1, 5000)
    }
    await writableVersion(b, 'probe-b')
    await writableVersion(a, 'probe-a')
    figure('converge_after_attack_ms', await stillServes(b, a, 'framed', 5000))
  })

  it('attack: the same poison (own-id digest and an update at MAX_VERSION) against a --data node; required: it stops cleanly, restarts from its data directory and still replicates', async () => {
    const dir = cluster.tmp()
    const a = await cluster.node('a', ['--data', dir])
    const b = await cluster.node('b', [], { connect: [a] })
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    const m = await cluster.attacker(a.port)
    await m.exchange(
      line({ digest: true, source_id: 'a', version: MAX_VERSION }) +
        line({ key: 'poison', value: 1, source_id: 'mallory', version: MAX_VERSION }) +
        DONE,
    )
    await a.set('after-poison', 1)
    const code = await a.stop()
    figure('exit_code_after_poison', code)
    assert.strictEqual(code, 0, `a did not stop cleanly after the poison:\n${a.tail()}`)
    const again = await cluster.node('a', ['--data', dir], { connect: [b] })
    assert.strictEqual((await again.get('before')).value, 1, 'the restarted node lost its acknowledged write')
    await writableVersion(again, 'probe')
    figure('converge_after_restart_ms', await stillServes(again, b, 'restart', 8000))
  })

  async function burned(kind: 'digest' | 'update'): Promise<void> {
    const a = await cluster.node('a', ['--mtu', '200'])
    const b = await cluster.node('b', [], { connect: [a] })
    const WRITES = 100
    for (let i = 0; i < WRITES; i++) await a.write(`k${i}`, i)
    await converges(b, `k${WRITES - 1}`, WRITES - 1, 5000)
    let m: Attacker = await cluster.attacker(a.port)
    const LINES = 20
    const first = await a.write('probe', 0)
    const t0 = Date.now()
    let last = first
    for (let i = 1; i <= LINES; i++) {
      // One line naming our own id just above the clock (the last acknowledged version).
      const poison =
        kind === 'digest'
          ? line({ digest: true, source_id: 'a', version: last + 1 })
          : line({ key: `k${i}`, value: 'forged', source_id: 'a', version: last + 1 })
      if (m.isClosed) m = await cluster.attacker(a.port, `mallory${i}`)
      // The node may rate-limit the attacker's digests (answering none past
      // its rate): an unanswered line is an attack that did not land.
      await m.exchange(poison + DONE, 1500).catch(() => 'ignored')
      last = await a.write('probe', i)
    }
    // Versions follow the wall clock (a clock that fell more than a second
    // behind takes its reading): what passed in µs is not burned.
    // (The node's clock may lag the wall clock by up to a second at first.)
    const elapsed = (Date.now() - t0 + 10) * 1000
    const extra = Math.max(0, last - Math.max(first, t0 * 1000) - LINES - elapsed)
    figure('poison_lines', LINES)
    figure('writes_held', WRITES)
    figure('versions_burned', extra)
    figure('versions_burned_per_line', extra / LINES)
    // A claim on the node's own id above what it sent may be a real past
    // incarnation, whose writes it must then issue again above it (its
    // evidence may be gone, see README "Hostile peers"); a claim that keeps
    // coming back is a twin or a liar: reported, and no more re-issuing
    // after Clock.TWIN_LIMIT rounds. So what the lines can burn is bounded
    // by that, not by the number of lines.
    const bound = (Clock.TWIN_LIMIT + 1) * (WRITES + 1 + LINES) + LINES
    assert.ok(
      extra <= bound,
      `${LINES} ${kind} lines naming a's own id just above its clock burned ${extra} versions (a holds ${WRITES} writes); bound ${bound}`,
    )
    assert.match(a.stderr, /another live node writes as "a"/, 'the attack was logged')
    assert.ok(a.alive)
    figure('converge_after_attack_ms', await stillServes(a, b, kind, 5000))
  }

  it("attack: 20 digest lines naming the node's own id just above its clock; required: what they burn is bounded (not per line), and the attack is logged", async () => {
    await burned('digest')
  })

  it("attack (unsigned mode): 20 updates of the node's own id just above its clock; required: what they burn is bounded (not per line), and the attack is logged", async () => {
    await burned('update')
  })
})
