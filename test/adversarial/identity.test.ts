/**
 * Identity on the wire (defect 8 for the node, and what a hello may claim).
 *
 * 8. Two live nodes with the same id never converge and re-issue writes
 *    forever, silently. For the node, required: a clear log line within a
 *    bounded time; a restart without saved state must still work as today.
 *
 * Also: a peer's hello id goes into the node's log as it is; required: a
 * peer cannot forge log lines (newlines) or send terminal escapes into it.
 */
import * as assert from 'assert'
import { Cluster, adversarialHooks, converges, figure, line, stillServes, until } from './harness'

const TWIN_LOG = /twin|duplicate|same id|another (live )?(node|process|instance)|already in use|id conflict|conflicting id/i

describe('adversarial: identity (defect 8, hello ids)', function () {
  this.timeout(40_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'identity')

  it('attack: two live node processes with the same id, both connected to a third; required: a clear log line (twin / duplicate / same id) within 5 s on both, the newcomer stops, the elder serves', async () => {
    // (ids that no reporting regex matches by themselves)
    const mid = await cluster.node('m')
    const t1 = await cluster.node('echo', [], { connect: [mid] })
    await until(async () => (await mid.peers()).length === 1, 5000, 'the elder to connect')
    const v1 = await t1.write('one', 1)
    const t2 = await cluster.node('echo', [], { connect: [mid] })
    const ms = await until(() => TWIN_LOG.test(t1.stderr) && TWIN_LOG.test(t2.stderr) && TWIN_LOG.test(mid.stderr), 5000, 'a log line reporting the twin ids on all three', 50)
    figure('detected_ms', ms)
    figure('newcomer_exit', await t2.exited)
    assert.strictEqual(t2.exitCode, 1, `the newcomer did not stop:\n${t2.tail(400)}`)
    const w1 = await t1.write('probe', 1)
    figure('versions_issued_in_window', w1 - v1 - 1)
    await converges(mid, 'probe', 1, 5000, "the elder's write to reach its peer")
    await converges(mid, 'one', 1, 5000, "the elder's earlier write to be held")
  })

  it('a restart without saved state (same id, fresh process) still works: its new write and its past reach everyone, and nothing is reported as a twin', async () => {
    const b = await cluster.node('b')
    let a = await cluster.node('a', [], { connect: [b] })
    for (let i = 0; i < 5; i++) await a.write(`old${i}`, i)
    await converges(b, 'old4', 4, 5000)
    a.kill()
    await a.exited
    a = await cluster.node('a', [], { connect: [b] })
    await a.write('fresh', 'after restart')
    await converges(b, 'fresh', 'after restart', 5000, 'the restarted node’s new write to reach b')
    await converges(a, 'old4', 4, 5000, 'the restarted node to get its past back')
    await stillServes(a, b, 'restart', 5000)
    assert.ok(!TWIN_LOG.test(a.stderr + b.stderr), `a legitimate restart was reported as a twin:\n${a.tail(400)}`)
  })

  it('attack: a hello whose id holds newlines and terminal escapes; required: the peer cannot forge lines in, or send escapes to, the node’s log', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect')
    const forged = 'x\n[a] peer b disconnected\n[a] SIGTERM: flushing and stopping\u001b[2J\u001b]0;pwned\u0007'
    const m = await cluster.attacker(a.port, forged)
    await m.send(line({ key: 'k', value: 1, source_id: 'mallory', version: 1 }))
    await m.exchange('{"digest":true,"done":true}\n').catch(() => 'closed')
    m.destroy()
    // b's hello was logged once; wait for a to log the attacker's too (or its refusal).
    await until(() => a.count(/connected \(in, |closing connection to|hello/) >= 2, 5000, 'a to log the attacker')
    const lines = a.stderr.split('\n').filter((l) => l.length > 0)
    // Every line the node writes starts with its time, a level and its id.
    const ours = /^\d{4}-\d\d-\d\dT[\d:.]+Z (error|warn|info|debug) \[a\] /
    const notOurs = lines.filter((l) => !ours.test(l))
    figure('forged_lines', notOurs.length + a.count(/^\S+ \S+ \[a\] (peer b disconnected|SIGTERM: flushing and stopping)$/m))
    assert.ok(!a.stderr.includes('\u001b'), 'a peer wrote a terminal escape sequence into the node’s log')
    assert.strictEqual(a.count(/^\S+ \S+ \[a\] SIGTERM: flushing and stopping$/m), 0, `a peer forged a log line:\n${a.tail(400)}`)
    assert.strictEqual(a.count(/^\S+ \S+ \[a\] peer b disconnected$/m), 0, `a peer forged a log line:\n${a.tail(400)}`)
    assert.deepStrictEqual(notOurs, [], 'lines in the node’s log that it did not write')
    await stillServes(a, b, 'log', 5000)
  })
})
