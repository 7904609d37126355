/**
 * Who may write as whom (defect 4, and attacks on signed updates).
 *
 * 4. With --keys, a peer holding no key sent the local-write shape
 *    {"key":…,"value":…}; the node applied it as its own write and signed
 *    it, so every peer accepted it as the node's. Required: a remote peer
 *    never writes as the node.
 *
 * Also: forged signed updates (altered value, moved key, bumped version, a
 * source with no trusted key) are refused, and a replay of an old, validly
 * signed update never rolls a key back.
 */
import * as assert from 'assert'
import { Cluster, DONE, Gate, adversarialHooks, converges, figure, line, stillServes, until } from './harness'

describe('adversarial: writing as someone else (defect 4, signatures)', function () {
  this.timeout(40_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'keys')

  for (const signed of [true, false]) {
    const mode = signed ? '--keys' : 'unsigned mode'
    it(`attack (${mode}): a keyless peer sends the local-write shape {"key","value"}; required: the node never applies it as its own write, and it reaches no honest peer`, async () => {
      const keys = signed ? ['--keys', cluster.keys(['a', 'b'])] : []
      const a = await cluster.node('a', keys)
      const b = await cluster.node('b', keys, { connect: [a] })
      await a.write('before', 1)
      await converges(b, 'before', 1, 5000)
      const m = await cluster.attacker(a.port)
      figure('attacker_outcome', await m.exchange(line({ key: 'owned', value: 'written by mallory' }) + DONE))
      // Let a gossip its state to b after the attack: anything a took as its own goes out now.
      await a.write('marker', 1)
      await converges(b, 'marker', 1, 5000)
      const onA = await a.get('owned')
      const onB = await b.get('owned')
      figure('owned_on_a', onA.value)
      assert.strictEqual(onA.value, null, `a applied a remote peer's {"key","value"} as its own write (version ${onA.version})`)
      assert.strictEqual(onB.value, null, 'a remote peer wrote as a: b holds its value')
      await stillServes(a, b, 'local-shape', 5000)
    })
  }

  it('attack (--keys): forged updates (altered value, key moved under a genuine signature, bumped version, untrusted source, no signature); required: refused, state unchanged, honest peers unaffected', async () => {
    const keys = cluster.keys(['a', 'b'])
    const a = await cluster.node('a', ['--keys', keys])
    const b = await cluster.node('b', ['--keys', keys], { connect: [a] })
    await a.write('x', 'genuine')
    await converges(b, 'x', 'genuine', 5000)
    // A peer collects a's genuine signed update by asking for everything.
    const spy = await cluster.attacker(a.port, 'spy')
    await spy.exchange(DONE)
    const genuine = spy.messages.find((u) => u.key === 'x' && u.source_id === 'a')
    assert.ok(genuine !== undefined && typeof genuine.signature === 'string', 'a did not send its signed update to a peer that asked')
    const v = genuine.version as number
    const forgeries: Record<string, unknown> = {
      'altered value': { ...genuine, value: 'forged' },
      'key moved': { ...genuine, key: 'y' },
      'version bumped': { ...genuine, version: v + 1_000_000 },
      'untrusted source': { key: 'x', value: 'forged', source_id: 'mallory', version: v + 1, signature: genuine.signature },
      'no signature': { key: 'x', value: 'forged', source_id: 'a', version: v + 1 },
      'signature of the wrong length': { ...genuine, value: 'forged', signature: 'A'.repeat(200) },
    }
    const outcomes: Record<string, string> = {}
    for (const [name, forged] of Object.entries(forgeries)) {
      const m = await cluster.attacker(b.port, `forger`)
      outcomes[name] = await m.exchange(line(forged) + DONE)
      assert.ok(b.alive, `b died on the forgery "${name}"`)
      assert.strictEqual((await b.get('x')).value, 'genuine', `b accepted the forgery "${name}"`)
      assert.strictEqual((await b.get('y')).value, null, `b accepted the forgery "${name}"`)
    }
    figure('forgery_outcomes', outcomes)
    figure('converge_after_attack_ms', await stillServes(b, a, 'forged', 5000))
  })

  it('attack (--keys): replay of an old, validly signed update to nodes that hold a newer one; required: no key rolls back, anywhere', async () => {
    const keys = cluster.keys(['a', 'b', 'c', 'c2'])
    const a = await cluster.node('a', ['--keys', keys])
    const b = await cluster.node('b', ['--keys', keys], { connect: [a] })
    await a.write('x', 'old')
    const spy = await cluster.attacker(a.port, 'spy')
    await spy.exchange(DONE)
    const old = spy.messages.find((u) => u.key === 'x' && u.value === 'old')
    assert.ok(old !== undefined, 'a did not send its old signed update')
    await a.write('x', 'new')
    await converges(b, 'x', 'new', 5000)
    for (const target of [a, b]) {
      const m = await cluster.attacker(target.port, 'replayer')
      await m.exchange(line(old) + DONE)
      assert.strictEqual((await target.get('x')).value, 'new', `${target.id} rolled x back to a replayed old value`)
    }
    // A newcomer that hears the replay first still ends with the newest value.
    const c = await cluster.node('c', ['--keys', keys])
    const m = await cluster.attacker(c.port, 'replayer')
    await m.exchange(line(old) + DONE)
    const c2 = await cluster.node('c2', ['--keys', keys], { connect: [c, a] })
    figure('newcomer_converge_ms', await converges(c, 'x', 'new', 5000, 'the newcomer that heard the replay first to end with the newest value'))
    await converges(c2, 'x', 'new', 5000)
    assert.strictEqual((await b.get('x')).value, 'new')
  })

  it('attack (--keys, beyond the list): push the node\'s clock ahead with an unsigned own-id digest, record its signed x = old, and replay it first to the node restarted without saved state; required: x = new (its last write) everywhere', async () => {
    const keys = cluster.keys(['a', 'b'])
    let a = await cluster.node('a', ['--keys', keys])
    const gate = new Gate(a.port)
    cluster.gates.push(gate)
    gate.release()
    const b = await cluster.node('b', ['--keys', keys], { connect: [`127.0.0.1:${await gate.listen()}`] })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect to a through the gate')
    // 1. An own-id digest 10^12 µs (11.6 days) ahead is refused (more than
    // an hour ahead), so push with the most a node believes: just under
    // half an hour (the clock moves at most that far ahead of the wall).
    let m = await cluster.attacker(a.port)
    const probe = await a.write('probe', 0)
    await m.exchange(line({ digest: true, source_id: 'a', version: probe + 1e12 }) + DONE)
    if (m.isClosed) m = await cluster.attacker(a.port, 'mallory2')
    await m.exchange(line({ digest: true, source_id: 'a', version: probe + 1.7e9 }) + DONE)
    // 2. a writes x twice; the attacker records the first, signed, as any peer may.
    await a.write('x', 'old')
    await m.exchange(line({ digest: true, source_id: 'a', version: 0 }) + DONE)
    const old = m.messages.find((u) => u.key === 'x' && u.value === 'old')
    assert.ok(old !== undefined && typeof old.signature === 'string', 'a did not send its signed x = old')
    const newest = await a.write('x', 'new')
    await converges(b, 'x', 'new', 5000)
    // 3. a restarts without saved state; b's link is held at the gate while the attacker replays.
    gate.close()
    a.kill()
    await a.exited
    a = await cluster.node('a', ['--keys', keys])
    gate.target = a.port
    const r = await cluster.attacker(a.port, 'replayer')
    await r.exchange(line(old) + DONE)
    gate.release()
    let seen: [unknown, unknown] = [null, null]
    try {
      await until(
        async () => {
          const [onA, onB] = [await a.get('x'), await b.get('x')]
          seen = [`${JSON.stringify(onA.value)}@${onA.version}`, `${JSON.stringify(onB.value)}@${onB.version}`]
          return onA.value === 'new' && onB.value === 'new' && onA.version === onB.version
        },
        5000,
        'a and b to agree on x = new',
        100,
      )
    } catch (err) {
      throw new Error(`${(err as Error).message}: a holds x=${seen[0]}, b holds x=${seen[1]}; x = new was written at ${newest} (a keyless replay rolled a signed key back)`)
    } finally {
      figure('x_on_a_and_b', seen)
      figure('x_new_written_at', newest)
    }
  })
})
