/**
 * The Gossip stream (lib/gossip.ts), case by case: construction, local
 * writes and bad input; set's backpressure and 'drain'; and a node with
 * many peers, each on its own stream with its own backpressure, getting
 * exactly what it lacks.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, PeerStream, base, Base, History, resolution } from '../lib'
import type { Message, Update } from '../lib'
import { Net, lww } from './net'

const turn = () => new Promise((resolve) => setImmediate(resolve))

/** Everything a stream has queued for its peer. */
function drain(s: PeerStream): Message[] {
  const out: Message[] = []
  for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) out.push(m)
  return out
}

describe('Gossip', () => {
  describe('construction', () => {
    it('refuses a bad local write with a TypeError carrying the code an invalid report of it would (key, value, too_big)', () => {
      const g = new Gossip('a', lww({ mtu_bytes: 16384 }))
      const code = (f: () => unknown): unknown => {
        try {
          f()
        } catch (err) {
          assert.ok(err instanceof TypeError)
          return (err as { code?: unknown }).code
        }
        return 'no error'
      }
      assert.strictEqual(code(() => g.set('', 1)), 'key')
      assert.strictEqual(code(() => g.set('a\u0000b', 1)), 'key')
      assert.strictEqual(code(() => g.set('x', undefined as never)), 'value')
      assert.strictEqual(code(() => g.set('x', () => 1)), 'value')
      assert.strictEqual(code(() => g.set('x', 'y'.repeat(20000))), 'too_big')
      assert.strictEqual(code(() => g.delete('__proto__')), 'key')
      assert.strictEqual(code(() => g.set('x', 1)), 'no error')
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

  describe('writes into the stream', () => {
    it('takes a write made while another is being taken after that one, in order', () => {
      const g = new Gossip('a', lww())
      const seen: string[] = []
      g.history.on('update', (u: Update) => {
        seen.push(`in ${u.key}`)
        if (u.key === 'x') {
          g.write({ key: 'y', value: 2, source_id: 'b', version: g.version + 1 })
          seen.push(`y held: ${g.history.mapping('b', 'y') === undefined}`)
        }
        seen.push(`out ${u.key}`)
      })
      g.write({ key: 'x', value: 1, source_id: 'b', version: g.version + 1 })
      g.write({ key: 'z', value: 3, source_id: 'b', version: g.version + 1 })
      assert.deepStrictEqual(seen, ['in x', 'y held: true', 'out x', 'in y', 'out y', 'in z', 'out z'])
      assert.strictEqual(g.writableCorked, 0)
    })

    it('calls back a write given a callback, and refuses a write after end', async () => {
      const g = new Gossip('a', lww())
      const called = await new Promise<unknown[]>((resolve) => g.write({ key: 'k', value: 1, source_id: 'b', version: 1 }, (...args: unknown[]) => resolve(args)))
      assert.ok(called.length === 0 || called[0] == null)
      assert.strictEqual(g.history.mapping('b', 'k')?.value, 1)
      g.end()
      const err = await new Promise<unknown>((resolve) => {
        g.on('error', resolve)
        g.write({ key: 'l', value: 1, source_id: 'b', version: 2 })
      })
      assert.match(String(err), /write after end/)
      assert.strictEqual(g.history.mapping('b', 'l'), undefined)
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
      g.write({ digest: true, done: true, protocol: 2 })
      assert.strictEqual(g.destroyed, false)
    })
  })
})

describe('set: backpressure and drain', () => {
  it("returns false at the high-water mark, and 'drain' follows once the peer reads", async () => {
    const g = new Gossip('a', lww({ mtu: 2 }))
    g.set('seed', 0)
    // nobody reads: the digests fill the buffer past the mtu
    g.gossip()
    g.gossip()
    assert.ok(g.readableLength >= g.readableHighWaterMark)
    assert.strictEqual(g.set('k', 1), false)
    assert.strictEqual(g.get('k').value, 1, 'the write was made; only the caller is asked to wait')
    let drained = 0
    g.on('drain', () => drained++)
    g.resume()
    for (let i = 0; i < 5 && drained === 0; i++) await turn()
    assert.strictEqual(drained, 1)
    assert.strictEqual(g.set('k', 2), true)
  })

  it('a writer that waits for drain never hangs, piped to a slow peer (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 60 }), fc.nat({ max: 3 }), async (mtu, writes, slowness) => {
        const a = new Gossip('a', lww({ mtu }))
        const b = new Gossip('b', lww({ mtu }))
        // b reads a's output only every few turns
        let reading = true
        const pump = setInterval(() => {
          reading = !reading
          if (reading) a.resume()
          else if (slowness > 0) a.pause()
        }, 0)
        a.pipe(b).pipe(a)
        let written = 0
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`hung after ${written} of ${writes} writes`)), 5000)
          const write = (): void => {
            while (written < writes) {
              a.gossip()
              const ok = a.set(`k${written}`, written)
              written++
              if (!ok) {
                a.once('drain', write)
                return
              }
            }
            clearTimeout(timer)
            resolve()
          }
          write()
        })
        clearInterval(pump)
        a.resume()
        assert.strictEqual(written, writes)
      }),
      { numRuns: 40 },
    )
  })

  it("under flow control returns false while the write waits, and 'drain' follows its admission", async () => {
    let now = 0
    const g = new Gossip('a', lww({ flow_control: { initial: 1, burst: 1, now: () => now } }))
    assert.strictEqual(g.set('a', 1), true)
    assert.strictEqual(g.set('b', 2), false, 'over the allowed rate: waits in the backlog')
    let drained = 0
    g.on('drain', () => drained++)
    g.resume()
    now = 5
    g.gossip() // an exchange admits what the rate allows
    for (let i = 0; i < 3; i++) await turn()
    assert.strictEqual(g.get('b').value, 2)
    assert.strictEqual(drained, 1)
  })
})

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
          solo.write({ digest: true, done: true, protocol: 2 })
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
          sp.write({ digest: true, done: true, protocol: 2 })
          sq.write({ digest: true, done: true, protocol: 2 })
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
    for (let i = 0; i < 50; i++) stalled.write({ digest: true, done: true, protocol: 2 })
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
