/**
 * Streams piped into each other (`sa.pipe(sb).pipe(sa)`), both ends
 * gossiping: issue 18 found two of them deadlocked with mtu 1 (each held
 * back what the other wrote while its own output was full). Each stream now
 * takes every message in at once and owes what it cannot send yet (see
 * docs/ALGORITHM.md, "Flow and backpressure"); these tests check that
 * links converge whatever the schedule, and that a peer that does not read
 * still bounds what a node buffers for it.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip } from '../../lib'
import type { Message, PeerStream } from '../../lib'
import { lww, stateOf } from '../net'

const turn = () => new Promise<void>((r) => setImmediate(r))
const micro = () => new Promise<void>((r) => queueMicrotask(r))

/** What one stream sent and was sent: updates read out of it, digest ends written into it. */
interface Count {
  updates: number
  ends: number
}

/** Pipe `sa` and `sb` into each other, counting what crosses. */
function pipeBoth(sa: PeerStream, sb: PeerStream, counts: Map<PeerStream, Count>): void {
  for (const [from, to] of [
    [sa, sb],
    [sb, sa],
  ] as const) {
    const c: Count = { updates: 0, ends: 0 }
    counts.set(from, c)
    from.on('data', (m: Message) => {
      if (!('digest' in m)) c.updates++
      // A digest end read out of `from` is written into `to`.
      else if ('done' in m) (counts.get(to) as Count).ends++
    })
  }
  sa.pipe(sb).pipe(sa)
}

describe('streams piped into each other', () => {
  it('regression (issue 18): mtu 1, both ends gossiping every turn, converge instead of deadlocking', async () => {
    const a = new Gossip('a', lww({ mtu: 1 }))
    const b = new Gossip('b', lww({ mtu: 1 }))
    for (let i = 0; i < 8; i++) a.set(`k${i}`, i)
    const sa = a.createStream()
    const sb = b.createStream()
    sa.pipe(sb).pipe(sa)
    let n = 0
    for (; n < 400 && !(sb.synced && sa.synced); n++) {
      sb.gossip()
      sa.gossip()
      await turn()
    }
    assert.strictEqual(Object.keys(b.state).length, 8, `b holds ${Object.keys(b.state).length}/8 after ${n} turns`)
    assert.ok(sa.synced && sb.synced, 'both streams in sync')
  })

  it('regression: two nodes piped as the README wires them, mtu 1, both gossiping', async () => {
    const a = new Gossip('a', lww({ mtu: 1 }))
    const b = new Gossip('b', lww({ mtu: 1 }))
    for (let i = 0; i < 8; i++) a.set(`a${i}`, i)
    for (let i = 0; i < 5; i++) b.set(`b${i}`, i)
    a.pipe(b).pipe(a)
    for (let n = 0; n < 400 && !(a.synced && b.synced); n++) {
      a.gossip()
      b.gossip()
      await turn()
    }
    assert.deepStrictEqual(stateOf(a), stateOf(b))
    assert.strictEqual(Object.keys(a.state).length, 13)
  })

  it('property: 2 or 3 nodes, piped both ways, mtu 1..5, both ends gossiping at random: all converge and every stream reports sync', async () => {
    const step = fc.record({
      // Which streams gossip this step (bit i: stream i).
      gossip: fc.nat(63),
      // A write: node, key, value (or none).
      write: fc.option(fc.tuple(fc.nat(2), fc.nat(5), fc.integer()), { nil: undefined }),
      // How long before the next step: none, a microtask, or a turn of the loop.
      wait: fc.constantFrom('none', 'micro', 'turn'),
    })
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(step, { minLength: 1, maxLength: 40 }),
        // The healing schedule, cycled: which streams gossip each turn.
        fc.array(fc.nat(63), { minLength: 1, maxLength: 8 }).filter((p) => p.some((x) => x !== 0)),
        async (n, mtu, steps, healing) => {
          const nodes = Array.from({ length: n }, (_, i) => new Gossip(`n${i}`, lww({ mtu })))
          const streams: PeerStream[] = []
          const counts = new Map<PeerStream, Count>()
          const synced = new Set<PeerStream>()
          for (let i = 0; i < n; i++) {
            for (let j = i + 1; j < n; j++) {
              const si = nodes[i].createStream()
              const sj = nodes[j].createStream()
              pipeBoth(si, sj, counts)
              streams.push(si, sj)
            }
          }
          for (const s of streams) s.on('sync', () => synced.add(s))
          for (let i = 0; i < n; i++) nodes[i].set(`from-${i}`, i)
          for (const st of steps) {
            if (st.write !== undefined) {
              const [who, key, value] = st.write
              nodes[who % n].set(`k${key}`, value)
            }
            streams.forEach((s, i) => {
              if ((st.gossip >> i) & 1) s.gossip()
            })
            if (st.wait === 'micro') await micro()
            else if (st.wait === 'turn') await turn()
          }
          // No more writes: every stream must end in sync (and have said so:
          // 'sync' comes as a stream goes into sync).
          const done = (): boolean => streams.every((s) => s.synced && synced.has(s)) && nodes.every((g) => JSON.stringify(stateOf(g)) === JSON.stringify(stateOf(nodes[0])))
          let t = 0
          for (; t < 2000 && !done(); t++) {
            const pattern = healing[t % healing.length]
            streams.forEach((s, i) => {
              if ((pattern >> ((i + t) % 6)) & 1) s.gossip()
            })
            await turn()
          }
          assert.ok(done(), `n=${n} mtu=${mtu}: not converged after ${t} turns: ${streams.map((s) => `${s.node.id}:${s.synced}/${s.readableLength}/${s.writableLength}`).join(' ')}`)
          for (const g of nodes) for (let i = 0; i < n; i++) assert.strictEqual(g.get(`from-${i}`).value, i)
          // The mtu bounds the deltas of each exchange: a stream sends at
          // most mtu updates per digest end its peer wrote to it.
          for (const s of streams) {
            const c = counts.get(s) as Count
            assert.ok(c.updates <= mtu * c.ends, `a stream sent ${c.updates} updates for ${c.ends} digest ends at mtu ${mtu}`)
          }
          for (const s of streams) s.destroy()
        },
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 60) },
    )
  })

  describe('a peer that does not read', () => {
    it('a stream piped one way, its output never read: the peer gossiping every turn does not grow its buffer, and every question is replied to once read', async () => {
      for (const mtu of [1, 3]) {
        const x = new Gossip('x', lww({ mtu }))
        const y = new Gossip('y', lww({ mtu }))
        for (let i = 0; i < 50; i++) x.set(`k${i}`, i)
        const s = x.createStream()
        const p = y.createStream()
        p.pipe(s) // s's output is never read
        let asked = 0
        let most = 0
        for (let t = 0; t < 300; t++) {
          if (p.gossip()) asked++
          s.gossip()
          await turn()
          most = Math.max(most, s.readableLength)
        }
        assert.ok(asked > 100, `p asked ${asked} times`)
        // At most the high-water mark and one reply (a digest of one source,
        // mtu updates, the end) are queued; the rest is owed, not buffered.
        assert.ok(most <= mtu + 1 + mtu + 1, `mtu ${mtu}: s buffered ${most}`)
        assert.strictEqual(s.writableLength, 0)
        // Read at last: each question gets its reply, and y catches up.
        const replies = { n: 0 }
        s.on('data', (m: Message) => {
          if ('done' in m && m.reply === true) replies.n++
        })
        s.pipe(p)
        for (let t = 0; t < 2000 && Object.keys(y.state).length < 50; t++) {
          p.gossip()
          await turn()
        }
        assert.ok(replies.n >= asked, `${replies.n} replies to ${asked} questions`)
        assert.strictEqual(Object.keys(y.state).length, 50)
      }
    })

    it('a writer that floods questions and never reads: the buffer stays bounded and the node works on', () => {
      const x = new Gossip('x', lww({ mtu: 2 }))
      for (let i = 0; i < 20; i++) x.set(`k${i}`, i)
      const s = x.createStream()
      for (let i = 0; i < 10_000; i++) s.write({ digest: true, done: true, protocol: 2 })
      assert.ok(s.readableLength <= 2 + 1 + 2 + 1, `buffered ${s.readableLength}`)
      assert.strictEqual(s.writableLength, 0)
      assert.strictEqual(s.gossip(), false, 'no digest is queued for a peer that does not read')
      x.set('late', 1)
      assert.strictEqual(x.get('late').value, 1)
    })

    it('the node itself, asked to gossip again and again with nobody reading, queues one digest', () => {
      const x = new Gossip('x', lww({ mtu: 1 }))
      x.set('k', 1)
      let queued = 0
      for (let i = 0; i < 1000; i++) if (x.gossip()) queued++
      assert.strictEqual(queued, 1)
      assert.ok(x.readableLength <= 2)
    })
  })

  it('each owed reply is whole: the deltas the newest digest calls for, cut at mtu', () => {
    const x = new Gossip('x', lww({ mtu: 2 }))
    for (let i = 0; i < 20; i++) x.set(`k${i}`, i)
    const s = x.createStream()
    // The first question is answered at once and fills the buffer; the
    // next two are owed, and paid as the buffer is read.
    for (let i = 0; i < 3; i++) s.write({ digest: true, done: true, protocol: 2 })
    assert.ok(s.exchange.owes)
    const runs: number[] = []
    let n = 0
    for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) {
      if (!('digest' in m)) n++
      else if ('done' in m) {
        assert.strictEqual(m.reply, true)
        runs.push(n)
        n = 0
      }
    }
    // Fewer than mtu deltas would tell the peer nothing more was missing.
    assert.deepStrictEqual(runs, [2, 2, 2])
    assert.strictEqual(s.exchange.owes, false)
  })

  it('ends its side once the peer has ended and what it owed is read', async () => {
    const x = new Gossip('x', lww({ mtu: 1 }))
    for (let i = 0; i < 5; i++) x.set(`k${i}`, i)
    const s = x.createStream()
    s.write({ digest: true, done: true, protocol: 2 })
    s.write({ digest: true, done: true, protocol: 2 })
    s.end()
    const out: Message[] = []
    s.on('data', (m: Message) => out.push(m))
    await new Promise<void>((resolve) => s.on('end', resolve))
    assert.strictEqual(out.filter((m) => 'done' in m && m.reply === true).length, 2)
  })
})
