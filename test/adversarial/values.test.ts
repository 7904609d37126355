/**
 * Values a peer or a local writer can hand the node that the rest of the
 * system cannot carry (defects 2 and 3).
 *
 * 2. A value nested 5,000+ deep in a peer's update was stored; relaying it
 *    failed to serialize, so the node dropped its good peers each time it
 *    tried, and `get` of that key crashed the process. Required: refused;
 *    the node lives, good peers stay connected, `get` works, and a --data
 *    node restarts.
 * 3. `set` of a value the wire cannot carry (2 MB; the wire limit is 1 MiB
 *    per line) was acknowledged, then the peer dropped the connection on
 *    every attempt and later writes were stuck behind it. Required: `set`
 *    refuses it, and every acknowledged write replicates.
 */
import * as assert from 'assert'
import { Cluster, DONE, NodeProc, adversarialHooks, converges, figure, nested, stillServes, until } from './harness'

describe('adversarial: values the system cannot carry (defects 2, 3)', function () {
  this.timeout(40_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'values')

  async function deepAttack(a: NodeProc, b: NodeProc, text: string): Promise<void> {
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    const m = await cluster.attacker(a.port)
    figure('attacker_outcome', await m.exchange(`${text}\n${DONE}`).catch((e: Error) => e.message))
    const got = await a.get('deep')
    assert.strictEqual(got.value, null, `a stored the deep value (get answered ${JSON.stringify(got).slice(0, 80)}…); required: refused`)
    // The honest peer gets a's next write, and meanwhile a has tried to relay whatever it holds.
    await a.write('relay-probe', 1)
    await converges(b, 'relay-probe', 1, 5000, 'b to get a write made on a after the deep value arrived')
    assert.strictEqual((await b.get('deep')).value, null, 'the deep value reached b')
    const drops = a.count(/closing connection to b/) + b.count(/closing connection to a|peer a disconnected/)
    figure('honest_link_drops', drops)
    assert.strictEqual(drops, 0, `the link between a and its good peer b was dropped ${drops} times:\n${a.tail(600)}`)
    figure('converge_after_attack_ms', await stillServes(a, b, 'deep', 5000))
  }

  it('attack: an update whose value is an array nested 5,000 deep (no --data); required: refused, a lives, b stays connected, get works', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await deepAttack(a, b, `{"key":"deep","value":${nested(5000)},"source_id":"mallory","version":1}`)
  })

  it('attack: an update whose value is an object nested 20,000 deep (no --data); required: refused, a lives, b stays connected, get works', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    const value = '{"d":'.repeat(20_000) + '0' + '}'.repeat(20_000)
    await deepAttack(a, b, `{"key":"deep","value":${value},"source_id":"mallory","version":1}`)
  })

  it('attack: an update nested 5,000 deep against a --data node; required: refused, a lives, and restarts from its data directory', async () => {
    const dir = cluster.tmp()
    const a = await cluster.node('a', ['--data', dir])
    const b = await cluster.node('b', [], { connect: [a] })
    await deepAttack(a, b, `{"key":"deep","value":${nested(5000)},"source_id":"mallory","version":1}`)
    const code = await a.stop()
    figure('exit_code', code)
    assert.strictEqual(code, 0, `a did not stop cleanly:\n${a.tail()}`)
    const again = await cluster.node('a', ['--data', dir], { connect: [b] })
    assert.strictEqual((await again.get('deep')).value, null)
    await stillServes(again, b, 'deep-restart', 5000)
  })

  it('attack: `set` of values and keys the 1 MiB wire cannot carry (2 MB string, 1.1 MB key, a string that JSON-escapes to 2.4 MB); required: refused, or acknowledged and replicated; later writes replicate', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    const cases: { name: string; key: string; value: unknown; mustRefuse: boolean }[] = [
      { name: '2 MB string', key: 'big', value: 'x'.repeat(2_000_000), mustRefuse: true },
      { name: '1.1 MB key', key: 'k'.repeat(1_100_000), value: 1, mustRefuse: true },
      { name: '400k control characters (2.4 MB as JSON)', key: 'escaped', value: '\u0001'.repeat(400_000), mustRefuse: true },
      { name: '100 kB string', key: 'medium', value: 'm'.repeat(100_000), mustRefuse: false },
    ]
    const answers: Record<string, unknown> = {}
    for (const c of cases) {
      const answer = await a.set(c.key, c.value)
      answers[c.name] = answer.ok === true ? 'acknowledged' : String(answer.error).slice(0, 120)
      if (answer.ok === true) {
        assert.ok(!c.mustRefuse, `set of a ${c.name} was acknowledged, but the wire (1 MiB per line) cannot carry it`)
        await until(
          async () => JSON.stringify((await b.get(c.key, 20_000)).value) === JSON.stringify(c.value),
          8000,
          `the acknowledged ${c.name} to reach b`,
          100,
        )
      }
    }
    figure('answers', answers)
    const start = Date.now()
    await a.write('later', 2)
    await converges(b, 'later', 2, 5000, 'a write made after the oversized ones to reach b')
    figure('later_write_ms', Date.now() - start)
    const drops = b.count(/closing connection to a/)
    figure('b_dropped_a', drops)
    assert.strictEqual(drops, 0, `b dropped a ${drops} times:\n${b.tail(400)}`)
  })

  it('attack (unsigned mode, beyond the list): a peer update whose line is under 1 MiB but re-serializes 3x over it ([1e9, 1e9, ...] becomes [1000000000, ...]); required: refused, or relayed; the honest link stays up', async () => {
    const a = await cluster.node('a')
    const b = await cluster.node('b', [], { connect: [a] })
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    const text = `{"key":"expands","value":[${Array(250_000).fill('1e9').join(',')}],"source_id":"mallory","version":1}`
    assert.ok(text.length < 1 << 20)
    figure('line_chars', text.length)
    figure('reserialized_chars', JSON.stringify(JSON.parse(text)).length)
    const m = await cluster.attacker(a.port)
    figure('attacker_outcome', await m.exchange(`${text}\n${DONE}`))
    const held = Array.isArray((await a.get('expands', 20_000)).value)
    figure('held_by_a', held)
    await a.write('later', 2)
    await converges(b, 'later', 2, 5000, 'a write made after the expanding update to reach b')
    if (held) await until(async () => Array.isArray((await b.get('expands', 20_000)).value), 5000, 'b to get the update a accepted', 200)
    const drops = b.count(/closing connection to a/) + a.count(/closing connection to b/)
    figure('honest_link_drops', drops)
    assert.strictEqual(drops, 0, `the honest link was dropped ${drops} times:\n${b.tail(300)}`)
  })

  it('(--keys, beyond the list) `set` of a value that fits the 1 MiB wire unsigned but not with its signature; required: refused, or acknowledged and replicated', async () => {
    const keys = cluster.keys(['a', 'b'])
    const a = await cluster.node('a', ['--keys', keys])
    const b = await cluster.node('b', ['--keys', keys], { connect: [a] })
    await a.write('before', 1)
    await converges(b, 'before', 1, 5000)
    // {"key":"edge","value":"…","source_id":"a","version":<16 digits>} is about 70 characters; the signature adds 103.
    const value = 'e'.repeat((1 << 20) - 130)
    const answer = await a.set('edge', value)
    figure('answer', answer.ok === true ? 'acknowledged' : String(answer.error).slice(0, 120))
    if (answer.ok === true) {
      await until(async () => (await b.get('edge', 20_000)).value === value, 5000, 'the acknowledged signed value to reach b', 200)
    }
    await a.write('later', 2)
    await converges(b, 'later', 2, 5000, 'a later write to reach b')
    assert.strictEqual(b.count(/closing connection to a/), 0, `b dropped a:\n${b.tail(300)}`)
  })
})
