/**
 * A node with many peers: each peer gets exactly what it lacks, on its own
 * stream, with its own backpressure.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip } from '../lib'
import type { Message, PeerStream } from '../lib'
import { Net, lww } from './net'

function drain(s: PeerStream): Message[] {
  const out: Message[] = []
  for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) out.push(m)
  return out
}

/** A node holding `counts[i]` updates from source `s{i}`. */
function holding(counts: number[], mtu: number): Gossip {
  const x = new Gossip('x', lww({ mtu, random: () => 0.5 }))
  counts.forEach((n, i) => {
    for (let v = 1; v <= n; v++) x.write({ key: `s${i}/${v % 4}/${v}`, value: v, source_id: `s${i}`, version: v })
  })
  return x
}

describe('many peers', () => {
  it("one peer's digest never changes what another peer receives", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.option(fc.nat({ max: 14 }), { nil: undefined }), { minLength: 5, maxLength: 5 }),
        fc.array(fc.option(fc.nat({ max: 14 }), { nil: undefined }), { minLength: 5, maxLength: 5 }),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        (counts, mtu, dp, dq, interleave) => {
          const digest = (d: (number | undefined)[]) =>
            counts.flatMap((_, i) => (d[i] === undefined ? [] : [{ digest: true, source_id: `s${i}`, version: d[i] }]))
          const p = digest(dp)
          const q = digest(dq)

          // q's answer when q is the only peer asking
          const alone = holding(counts, mtu)
          const solo = alone.createStream()
          for (const e of q) solo.write(e)
          solo.write({ digest: true, done: true })
          const expected = drain(solo)

          // the same, with p's digest interleaved entry by entry on another stream
          const x = holding(counts, mtu)
          const sp = x.createStream()
          const sq = x.createStream()
          const pending = [...p.map((e) => [sp, e] as const), ...q.map((e) => [sq, e] as const)]
          let i = 0
          while (pending.length > 0) {
            const take = interleave[i++ % interleave.length] ? pending.findIndex(([s]) => s === sp) : 0
            const [s, e] = pending.splice(take < 0 ? 0 : take, 1)[0]
            s.write(e)
          }
          sp.write({ digest: true, done: true })
          sq.write({ digest: true, done: true })
          assert.deepStrictEqual(drain(sq), expected)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a peer that stops reading fills only its own buffer; other peers and local writes go on', async () => {
    const net = new Net(['x', 'q'], () => lww({ mtu: 3 }))
    const [x, q] = net.nodes
    for (let i = 0; i < 30; i++) x.set(`k${i}`, i)
    const link = net.connect(0, 1)

    const stalled = x.createStream() // nobody reads this one until the end
    for (let i = 0; i < 50; i++) stalled.write({ digest: true, done: true })
    // Every question is taken in at once (nothing waits on the writable
    // side, so two streams piped into each other cannot deadlock); one
    // answer (3 updates, a digest of one source and its end) sits in the
    // buffer and the rest is owed, not queued.
    assert.strictEqual(stalled.writableLength, 0)
    assert.ok(stalled.readableLength <= 3 + 2, `stalled buffer holds ${stalled.readableLength}`)
    assert.strictEqual(stalled.gossip(), false, 'no digest is queued for a stalled peer')

    x.set('late', 'still applied at once')
    assert.strictEqual(x.get('late').value, 'still applied at once')

    for (let r = 0; r < 12 && Object.keys(q.state).length < Object.keys(x.state).length; r++) {
      link.sb.gossip()
      await net.settle()
    }
    assert.strictEqual(Object.keys(q.state).length, Object.keys(x.state).length)
    assert.strictEqual(q.get('late').value, 'still applied at once')
    assert.ok(stalled.readableLength <= 5)
    // Read at last, it replies to each of the 50 questions, once.
    const out = drain(stalled)
    assert.strictEqual(out.filter((m) => 'done' in m && m.reply === true).length, 50)
    assert.strictEqual(stalled.gossip(), true)
  })

  it('createStream gives each peer a stream of the same node', async () => {
    const net = new Net(['hub', 'a', 'b', 'c'], () => lww({ mtu: 2 }))
    for (let i = 1; i < 4; i++) net.connect(0, i)
    net.nodes.forEach((g, i) => g.set(`from-${g.id}`, i))
    for (let r = 0; r < 6; r++) {
      for (const l of net.links) {
        l.sb.gossip()
        await net.settle()
      }
    }
    for (const g of net.nodes) assert.strictEqual(Object.keys(g.state).length, 4, `${g.id} holds everything`)
    const s = net.nodes[0].createStream()
    assert.strictEqual(s.node, net.nodes[0])
    assert.strictEqual(s.readableHighWaterMark, 2)
  })
})
