/**
 * The Gossip stream's API and protocol, case by case.
 */
import * as assert from 'assert'
import { Gossip, PeerStream, base, Base, History, resolution } from '../lib'
import type { Message, Update } from '../lib'
import { Net, lww } from './net'

/** Everything a stream has queued for its peer. */
function drain(s: PeerStream): Message[] {
  const out: Message[] = []
  for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) out.push(m)
  return out
}

const updates = (ms: Message[]) => ms.filter((m): m is Update => !('digest' in m))

describe('Gossip', () => {
  describe('construction', () => {
    it('refuses to run without config.resolve, pointing at base.resolution', () => {
      assert.throws(() => new Gossip('a', {} as never), /base\.resolution/)
      assert.throws(() => new Gossip('a', { resolve: null }), /config\.resolve is required/)
    })

    it('refuses bad ids and settings with clear errors', () => {
      assert.throws(() => new Gossip('', lww()), /id must not be empty/)
      assert.throws(() => new Gossip('__proto__', lww()), /reserved/)
      assert.throws(() => new Gossip('a', null as never), /config must be an object/)
      assert.throws(() => new Gossip('a', lww({ mtu: -1 })), /mtu/)
      assert.throws(() => new Gossip('a', lww({ mtu: 1.5 })), /mtu/)
      assert.throws(() => new Gossip('a', lww({ max_history: -5 })), /max_history/)
      assert.throws(() => new Gossip('a', lww({ order: 'widest' as never })), /order/)
      assert.throws(() => new Gossip('a', lww({ sort: 1 as never })), /sort/)
      assert.throws(() => new Gossip('a', lww({ random: 1 as never })), /random/)
    })

    it('takes its defaults from base.config and sets the highWaterMark to the mtu', () => {
      const g = new Gossip('a', lww())
      assert.strictEqual(g.mtu, base.config.mtu)
      assert.strictEqual(g.history.max_history, base.config.max_history)
      assert.strictEqual(g.readableHighWaterMark, base.config.mtu)
      assert.strictEqual(new Gossip('b', lww({ mtu: 7 })).writableHighWaterMark, 7)
      assert.strictEqual(base.config.resolve, null)
      assert.strictEqual(Base, base)
      assert.strictEqual(base.resolution, resolution)
      assert.ok(g.history instanceof History)
    })

    it('restores a snapshot: state, history and a clock that never goes back', () => {
      const a = new Gossip('a', lww())
      a.set('x', 1)
      a.set('y', 2)
      const snap = a.snapshot()
      const b = Gossip.restore('a', lww(), snap)
      assert.deepStrictEqual(b.get('x'), a.get('x'))
      assert.deepStrictEqual(b.history.news('a', -1).map((u) => u.key), ['x', 'y'])
      assert.ok(b.version >= a.version)
      b.set('x', 3)
      assert.ok(b.get('x').version > a.get('y').version)
      assert.throws(() => Gossip.restore('a', lww(), { version: 1, updates: [{ key: 1 }] } as never), /invalid update/)
      assert.throws(() => Gossip.restore('a', lww(), {} as never), /snapshot/)
    })
  })

  describe('local writes', () => {
    it('set and get, with a missing key read as {version: -Infinity, value: null}', () => {
      const g = new Gossip('a', lww())
      assert.deepStrictEqual(g.get('nope'), { version: -Infinity, value: null })
      assert.strictEqual(g.set('k', { deep: [1] }), true)
      const u = g.get('k') as Update
      assert.deepStrictEqual(u.value, { deep: [1] })
      assert.strictEqual(u.source_id, 'a')
      assert.strictEqual(u.version, g.version)
      assert.strictEqual(g.state['k'], u)
    })

    it('issues versions above everything seen (Lamport)', () => {
      const g = new Gossip('a', lww())
      const far = g.version + 1000
      g.write({ key: 'r', value: 1, source_id: 'b', version: far })
      g.set('k', 1)
      assert.strictEqual(g.get('k').version, far + 1)
    })

    it("runs lww_vs_current_vers through the node's get, a subclass's too", () => {
      // The replica decides lww_vs_current_vers itself while get is the
      // node's own; a get replaced by a subclass must still be asked.
      class Pinned extends Gossip {
        override get(key: string | number): Update | { version: number; value: null } {
          const e = super.get(key)
          return key === 'pinned' && e.version !== -Infinity ? { ...e, version: Number.MAX_SAFE_INTEGER } : e
        }
      }
      const g = new Pinned('a', lww())
      const plain = new Gossip('a', lww())
      for (const n of [g, plain]) {
        n.write({ key: 'pinned', value: 1, source_id: 'b', version: n.version + 1 })
        n.write({ key: 'other', value: 1, source_id: 'b', version: n.version + 1 })
        n.set('pinned', 2)
        n.set('other', 2)
      }
      assert.strictEqual(g.get('pinned').value, 1)
      assert.strictEqual(g.get('other').value, 2)
      assert.strictEqual(plain.get('pinned').value, 2)
    })

    it('accepts a local write written into the stream, like set', () => {
      const g = new Gossip('a', lww())
      g.write({ key: 'k', value: 'v' })
      assert.strictEqual(g.get('k').value, 'v')
      assert.strictEqual((g.get('k') as Update).source_id, 'a')
    })

    it('throws a TypeError for bad keys and undefined values at set', () => {
      const g = new Gossip('a', lww())
      assert.throws(() => g.set('', 1), TypeError)
      assert.throws(() => g.set('__proto__', 1), /reserved/)
      assert.throws(() => g.set(NaN, 1), /string or a finite number/)
      assert.throws(() => g.set({} as never, 1), /string or a finite number/)
      assert.throws(() => g.set('k', undefined), /undefined/)
    })

    it("emits 'update' on the history for local and remote updates", () => {
      const g = new Gossip('a', lww())
      const seen: string[] = []
      g.history.on('update', (u: Update) => seen.push(`${u.key}@${u.source_id}`))
      g.set('k', 1)
      g.write({ key: 'r', value: 2, source_id: 'b', version: g.version + 1 })
      assert.deepStrictEqual(seen, ['k@a', 'r@b'])
    })
  })

  describe('the exchange', () => {
    it('answers a digest with what the peer lacks, then its own digest (push-pull)', () => {
      const a = new Gossip('a', lww())
      a.set('x', 1)
      a.write({ key: 'y', value: 2, source_id: 'c', version: 5 })
      a.write({ digest: true, source_id: 'c', version: 5 })
      a.write({ digest: true, done: true })
      const out = drain(a)
      // c is named at 5: nothing of c; a is not named: all of a.
      assert.deepStrictEqual(updates(out).map((u) => u.key), ['x'])
      const digest = out.filter((m) => 'digest' in m)
      // the end says how far behind the peer was: one update (x)
      assert.deepStrictEqual(digest[digest.length - 1], { digest: true, done: true, reply: true, behind: 1 })
      assert.ok(digest.some((m) => 'source_id' in m && m.source_id === 'c' && m.version === 5))
      assert.ok(digest.some((m) => 'source_id' in m && m.source_id === 'a' && m.version === a.version))
    })

    it('never answers a reply with a digest, so stray or repeated digests cannot ping-pong', async () => {
      // Two streams joined directly, then a question neither side asked and
      // a repeated one: each is answered once and the link falls quiet.
      const net = new Net(['a', 'b'], () => lww())
      const link = net.connect(0, 1)
      net.nodes[0].set('x', 1)
      link.sa.write({ digest: true, done: true })
      link.sb.write({ digest: true, done: true })
      link.sb.write({ digest: true, done: true })
      await net.settle()
      assert.strictEqual(net.nodes[1].get('x').value, 1)
      let moved = 0
      for (const s of [link.sa, link.sb]) while (s.read() !== null) moved++
      assert.strictEqual(moved, 0)
    })

    it("accepts 'id' as an alias of source_id in digests", () => {
      const a = new Gossip('a', lww())
      a.write({ key: 'y', value: 2, source_id: 'c', version: 5 })
      a.write({ digest: true, id: 'c', version: 5 })
      a.write({ digest: true, done: true })
      assert.deepStrictEqual(updates(drain(a)), [])
    })

    it('treats a version of its own id it never sent as a past incarnation, and writes again above it', () => {
      const a = new Gossip('a', lww())
      a.set('x', 1)
      const before = a.get('x').version
      // a peer claims to hold a's versions up to one a never sent anyone
      a.write({ digest: true, source_id: 'a', version: before })
      a.write({ digest: true, done: true })
      const sent = updates(drain(a))
      assert.deepStrictEqual(sent.map((u) => [u.key, u.value]), [['x', 1]])
      assert.ok(sent[0].version > before)
    })

    it('one gossip() on either end reconciles both directions', async () => {
      for (const side of ['sa', 'sb'] as const) {
        const net = new Net(['a', 'b'], () => lww())
        const link = net.connect(0, 1)
        net.nodes[0].set('from-a', 1)
        net.nodes[1].set('from-b', 2)
        assert.strictEqual(link[side].gossip(), true)
        await net.settle()
        for (const g of net.nodes) {
          assert.strictEqual(g.get('from-a').value, 1)
          assert.strictEqual(g.get('from-b').value, 2)
        }
      }
    })

    it('works piped as in the original: A.pipe(B).pipe(A)', async () => {
      const a = new Gossip('a', lww())
      const b = new Gossip('b', lww())
      a.pipe(b).pipe(a)
      a.set('x', 'from a')
      b.set('y', 'from b')
      const done = new Promise<void>((resolve) => {
        const check = () => {
          if (Object.keys(a.state).length === 2 && Object.keys(b.state).length === 2) resolve()
        }
        a.history.on('update', check)
        b.history.on('update', check)
      })
      b.gossip()
      await done
      assert.strictEqual(a.get('y').value, 'from b')
      assert.strictEqual(b.get('x').value, 'from a')
    })

    it('sends at most mtu updates per exchange, each source in version order without gaps', async () => {
      for (const order of ['depth', 'breadth'] as const) {
        const a = new Gossip('a', lww({ mtu: 5, order }))
        for (let i = 0; i < 7; i++) a.set(`a${i}`, i)
        for (let i = 0; i < 4; i++) a.write({ key: `c${i}`, value: i, source_id: 'c', version: i + 1 })
        a.write({ digest: true, done: true })
        const sent = updates(drain(a))
        assert.strictEqual(sent.length, 5)
        for (const src of ['a', 'c']) {
          const mine = sent.filter((u) => u.source_id === src).map((u) => u.version)
          const all = a.history.news(src, -1).map((u) => u.version)
          assert.deepStrictEqual(mine, all.slice(0, mine.length), `${order}: ${src} sent a prefix`)
        }
        if (order === 'depth') {
          // the source with most waiting (a: 7) fills the exchange
          assert.deepStrictEqual(sent.map((u) => u.source_id), ['a', 'a', 'a', 'a', 'a'])
        } else {
          // rank by rank: both sources' first two deltas before anyone's third
          const fromA = sent.filter((u) => u.source_id === 'a').length
          assert.ok(fromA === 2 || fromA === 3, `breadth sent ${fromA} of a`)
        }
      }
    })

    it('breaks depth ties at random, with config.random', () => {
      const firsts = new Set<string>()
      for (const r of [0, 0.99]) {
        const a = new Gossip('a', lww({ mtu: 1, random: () => r }))
        a.write({ key: 'x', value: 1, source_id: 'b', version: 1 })
        a.write({ key: 'y', value: 1, source_id: 'c', version: 1 })
        a.write({ digest: true, id: 'a', version: 0 })
        a.write({ digest: true, done: true })
        firsts.add(updates(drain(a))[0].source_id)
      }
      assert.deepStrictEqual([...firsts].sort(), ['b', 'c'])
    })

    it('nodes that agree exchange digests and no updates', async () => {
      const net = new Net(['a', 'b'], () => lww({ mtu: 3 }))
      const link = net.connect(0, 1)
      for (let i = 0; i < 5; i++) net.nodes[0].set(`k${i}`, i)
      for (let i = 0; i < 3; i++) {
        link.sb.gossip()
        await net.settle()
        link.sa.gossip()
        await net.settle()
      }
      assert.strictEqual(Object.keys(net.nodes[1].state).length, 5)
      const before = net.traffic.updates
      link.sa.gossip()
      link.sb.gossip()
      await net.settle()
      assert.strictEqual(net.traffic.updates, before)
    })

    it('answers from the state what a small history forgot', async () => {
      const net = new Net(['a', 'b'], () => lww({ max_history: 2, mtu: 3 }))
      const link = net.connect(0, 1)
      const memories: number[] = []
      net.nodes[0].history.on('compaction', (memory: Update[]) => memories.push(memory.length))
      for (let i = 0; i < 10; i++) net.nodes[0].set(`k${i}`, i)
      assert.ok(memories.length > 0, "'compaction' was emitted")
      assert.ok(net.nodes[0].history.length <= 2)
      for (let i = 0; i < 4; i++) {
        link.sb.gossip()
        await net.settle()
      }
      assert.strictEqual(Object.keys(net.nodes[1].state).length, 10)
    })

    it('does not queue a digest for a peer that has not read the last one', () => {
      const a = new Gossip('a', lww({ mtu: 1 }))
      a.set('x', 1)
      assert.strictEqual(a.gossip(), true)
      assert.strictEqual(a.gossip(), false)
      drain(a)
      assert.strictEqual(a.gossip(), true)
    })

    it('ignores a duplicate of the current mapping without consulting resolve', () => {
      let calls = 0
      const g = new Gossip('a', {
        resolve: (gossip, u) => {
          calls++
          return resolution.lww_vs_current_vers(gossip, u)
        },
      })
      const u = { key: 'k', value: 1, source_id: 'b', version: 3 }
      g.write(u)
      g.write(u)
      assert.strictEqual(calls, 1)
    })
  })

  describe('bad input', () => {
    it("reports each refused object once with 'invalid', and keeps working", () => {
      const a = new Gossip('a', lww())
      const reports: [unknown, string][] = []
      a.on('invalid', (o: unknown, reason: string) => reports.push([o, reason]))
      const bad: unknown[] = [
        null,
        42,
        'text',
        [1, 2],
        {},
        { key: 'k' },
        { key: 'k', value: 1, source_id: 'b' },
        { key: 'k', value: 1, version: 1 },
        { key: 'k', value: 1, source_id: 'b', version: -1 },
        { key: 'k', value: 1, source_id: 'b', version: 1.5 },
        { key: 'k', value: 1, source_id: 'b', version: NaN },
        { key: 'k', value: 1, source_id: 'b', version: Infinity },
        { key: 'k', value: 1, source_id: '', version: 1 },
        { key: '__proto__', value: 1 },
        { key: 'constructor', value: 1, source_id: 'b', version: 1 },
        { digest: true },
        { digest: true, source_id: 'b', version: '3' },
        { digest: 'yes', source_id: 'b', version: 3 },
        {
          get key(): string {
            throw new Error('boom')
          },
        },
      ]
      for (const o of bad) a.write(o)
      assert.strictEqual(reports.length, bad.length)
      reports.forEach(([o, reason], i) => {
        assert.strictEqual(o, bad[i])
        assert.ok(typeof reason === 'string' && reason.length > 0)
      })
      assert.strictEqual(Object.keys(a.state).length, 0)
      assert.strictEqual(({} as Record<string, unknown>).value, undefined)
      a.set('ok', 1)
      assert.strictEqual(a.get('ok').value, 1)
      assert.strictEqual(a.destroyed, false)
    })

    it("reports a resolve that throws as 'invalid' instead of crashing", () => {
      const g = new Gossip('a', {
        resolve: () => {
          throw new Error('policy bug')
        },
      })
      const reasons: string[] = []
      g.on('invalid', (_o: unknown, reason: string) => reasons.push(reason))
      g.write({ key: 'k', value: 1, source_id: 'b', version: 1 })
      g.write({ key: 'k', value: 1 })
      assert.deepStrictEqual(reasons, ['resolve threw: policy bug', 'resolve threw: policy bug'])
      assert.strictEqual(g.destroyed, false)
    })

    it('refuses a digest that names endlessly many sources', () => {
      const g = new Gossip('a', lww())
      let refused = 0
      g.on('invalid', () => refused++)
      for (let i = 0; i < 5000; i++) g.write({ digest: true, source_id: `s${i}`, version: 1 })
      // four parts' worth (see DIGEST_PART) is more than any honest digest
      assert.strictEqual(refused, 5000 - 4 * 1024)
      g.write({ digest: true, done: true })
      assert.strictEqual(g.destroyed, false)
    })
  })
})
