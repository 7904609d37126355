/**
 * The library's own surface, in process (defects 7, 8, 10, and hostile
 * values).
 *
 * 7. `p.set('size', v)`, sync to q, then `v.w = 7` or
 *    `p.get('size').value.w = 99`, left p and q different at the same
 *    version forever. Required: mutating a caller's object or a returned
 *    value never changes replicated state, and p and q agree.
 * 8. Two live nodes with the same id, piped together, never converged and
 *    re-issued writes forever with no event. Required: detected within a
 *    bounded number of exchanges and reported with an 'error' event on the
 *    stream, while a restart without saved state still works as today.
 * 10. `startNode` quietly defaulted `resolve`, though the README says there
 *    is no default. Required: it throws a clear error; the CLI passes one.
 */
import * as assert from 'assert'
import { Gossip, base } from '../../lib'
import { ed25519, generateKeyPair, startNode } from '../../lib/node'
import type { PeerStream, Security, Update } from '../../lib'
import type { NodeOptions } from '../../lib/node'
import * as tcp from '../../lib/node/tcp'
import { nodeCommand } from '../../bin/node'
import { bornAt, stateOf } from '../net'
import { Cluster, adversarialHooks, figure, nestedValue, until } from './harness'

const resolve = base.resolution.lww_vs_current_vers

/**
 * Streams between nodes that carry every message as its JSON text, as a
 * socket does (so objects are never shared between nodes), with traffic
 * moved by `settle()` and counted.
 */
class Wire {
  readonly links: [PeerStream, PeerStream][] = []
  updates = 0
  errors: { stream: string; message: string }[] = []

  connect(p: Gossip, q: Gossip): [PeerStream, PeerStream] {
    const link: [PeerStream, PeerStream] = [p.createStream(), q.createStream()]
    link.forEach((s, i) => s.on('error', (e: Error) => this.errors.push({ stream: `${i === 0 ? p.id : q.id}'s stream`, message: e.message })))
    this.links.push(link)
    return link
  }

  private move(from: PeerStream, to: PeerStream): number {
    let moved = 0
    if (from.destroyed) return 0
    for (let m = from.read() as unknown; m !== null; m = from.read() as unknown) {
      moved++
      if (typeof m === 'object' && m !== null && !('digest' in m)) this.updates++
      if (!to.destroyed && !to.writableEnded) to.write(JSON.parse(JSON.stringify(m)))
    }
    return moved
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 100_000; i++) {
      let moved = 0
      for (const [x, y] of this.links) moved += this.move(x, y) + this.move(y, x)
      const busy = this.links.some(([x, y]) => (!x.destroyed && x.writableLength > 0) || (!y.destroyed && y.writableLength > 0))
      if (moved === 0 && !busy) return
      await new Promise((r) => setImmediate(r))
    }
    throw new Error('links never went quiet')
  }

  /** One exchange started from each end of every link. */
  async round(): Promise<void> {
    for (const [x, y] of this.links) {
      if (!x.destroyed) x.gossip()
      await this.settle()
      if (!y.destroyed) y.gossip()
      await this.settle()
    }
  }
}

function agree(p: Gossip, q: Gossip): void {
  assert.deepStrictEqual(stateOf(q), stateOf(p), `${p.id} and ${q.id} hold different states`)
}

/** Try a mutation; a frozen value refusing it (TypeError in strict mode) is fine too. */
function mutate(f: () => void): void {
  try {
    f()
  } catch (err) {
    if (!(err instanceof TypeError)) throw err
  }
}

describe('adversarial: the library surface (defects 7, 8, 10)', function () {
  this.timeout(30_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'library')

  describe('defect 7: replicas split by a mutated value', () => {
    const original = () => ({ w: 3, dims: { h: 4 }, tags: ['a'] })

    it("attack: the caller mutates (deeply) the object it passed to set, after it replicated; required: p and q keep the written value and agree", async () => {
      const p = new Gossip('p', { resolve })
      const q = new Gossip('q', { resolve })
      const wire = new Wire()
      wire.connect(p, q)
      const v = original()
      p.set('size', v)
      await wire.round()
      v.w = 7
      v.dims.h = 8
      v.tags.push('b')
      await wire.round()
      p.set('other', 1) // a later write: whatever else travels now must not carry the mutation either
      await wire.round()
      assert.deepStrictEqual(p.get('size').value, original(), "mutating the caller's object changed p's replicated value")
      agree(p, q)
    })

    it('attack: the caller mutates the object before it replicated; required: the acknowledged value is what replicates', async () => {
      const p = new Gossip('p', { resolve })
      const q = new Gossip('q', { resolve })
      const wire = new Wire()
      wire.connect(p, q)
      const v = original()
      p.set('size', v)
      v.dims.h = 99
      await wire.round()
      assert.deepStrictEqual(p.get('size').value, original(), 'p holds a value it was never given by set')
      agree(p, q)
    })

    for (const [name, reach] of [
      ['get(key).value', (g: Gossip) => g.get('size').value],
      ['state[key].value', (g: Gossip) => g.state.size.value],
      ['sources(key)[0].value', (g: Gossip) => g.sources('size')[0].value],
      ['snapshot().updates[i].value', (g: Gossip) => g.snapshot().updates.find((u) => u.key === 'size')?.value],
      ['history.memory[i].value', (g: Gossip) => g.history.memory.find((u) => u.key === 'size')?.value],
    ] as [string, (g: Gossip) => unknown][]) {
      it(`attack: a reader mutates the value returned by ${name}, on the writer and on the replica; required: replicated state unchanged, p and q agree`, async () => {
        const p = new Gossip('p', { resolve })
        const q = new Gossip('q', { resolve })
        const wire = new Wire()
        wire.connect(p, q)
        p.set('size', original())
        await wire.round()
        for (const g of [p, q]) {
          const got = reach(g) as { w: number; dims: { h: number } }
          mutate(() => {
            got.w = 99
          })
          mutate(() => {
            got.dims.h = 99
          })
        }
        await wire.round()
        assert.deepStrictEqual(p.get('size').value, original(), `mutating ${name} changed p's replicated value`)
        assert.deepStrictEqual(q.get('size').value, original(), `mutating ${name} changed q's replicated value`)
        agree(p, q)
      })
    }

    it("attack: a value with own keys __proto__ and constructor (legal JSON) is written, replicated and restored; required: kept as plain data, no prototype pollution anywhere", async () => {
      const hostile = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"ok":1}')
      const p = new Gossip('p', { resolve })
      const q = new Gossip('q', { resolve })
      const wire = new Wire()
      wire.connect(p, q)
      p.set('hostile', hostile)
      q.write({ key: 'remote', value: JSON.parse('{"__proto__":{"polluted":true}}'), source_id: 'm', version: 1 })
      await wire.round()
      const restored = Gossip.restore('p', { resolve }, JSON.parse(JSON.stringify(p.snapshot())))
      for (const [g, key] of [[p, 'hostile'], [q, 'hostile'], [restored, 'hostile'], [p, 'remote'], [q, 'remote']] as [Gossip, string][]) {
        const v = g.get(key).value as object
        assert.ok(Object.prototype.hasOwnProperty.call(v, '__proto__'), `${g.id} lost the own key __proto__ of ${key}`)
        assert.strictEqual(Object.getPrototypeOf(v), Object.prototype, `${g.id}'s ${key} value had its prototype replaced`)
      }
      assert.strictEqual(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype was polluted')
      agree(p, q)
    })

    it('(beyond the list) a value JSON does not carry faithfully: -0 (JSON writes it as 0), at the top and nested; required: refused by set, or replicas that agree (Object.is)', async () => {
      const p = new Gossip('p', { resolve })
      const q = new Gossip('q', { resolve })
      const wire = new Wire()
      wire.connect(p, q)
      const outcomes: Record<string, string> = {}
      for (const [key, value] of [
        ['zero', -0],
        ['nested', { x: -0, list: [-0] }],
      ] as [string, unknown][]) {
        try {
          p.set(key, value)
          outcomes[key] = 'accepted'
        } catch (err) {
          outcomes[key] = `refused: ${(err as Error).message}`
        }
      }
      await wire.round()
      figure('outcomes', outcomes)
      for (const key of ['zero', 'nested']) {
        if (outcomes[key] !== 'accepted') continue
        // deepStrictEqual compares numbers with Object.is, as an application dividing by them would.
        assert.deepStrictEqual(q.get(key).value, p.get(key).value, `p and q hold different values of ${key} at the same version`)
      }
      assert.ok(Object.keys(outcomes).length === 2)
    })

    it("attack: a peer's update with a value nested 5,000 deep; required: refused with 'invalid' (not stored), and the node keeps replicating", async () => {
      const p = new Gossip('p', { resolve })
      const q = new Gossip('q', { resolve })
      const wire = new Wire()
      const [, sq] = wire.connect(p, q)
      const reasons: string[] = []
      sq.on('invalid', (_o: unknown, reason: string) => reasons.push(reason))
      sq.write({ key: 'deep', value: nestedValue(5000), source_id: 'mallory', version: 1 })
      await wire.settle()
      assert.ok(q.get('deep').value === null, 'q stored a value nested 5,000 deep, which it cannot serialize')
      assert.ok(reasons.length > 0, "no 'invalid' event for the deep value")
      p.set('after', 1)
      await wire.round()
      assert.strictEqual(q.get('after').value, 1)
      assert.deepStrictEqual(wire.errors, [])
    })
  })

  describe('defect 8: twin ids', () => {
    it("attack: two live nodes with the same id piped together; required: an 'invalid' report on a stream within 20 exchanges, and the re-issuing stops (the streams stay open)", async () => {
      const t1 = new Gossip('twin', { resolve, mtu: 10 })
      const t2 = new Gossip('twin', { resolve, mtu: 10 })
      for (let i = 0; i < 7; i++) {
        t1.set(`one${i}`, i)
        t2.set(`two${i}`, i)
      }
      const wire = new Wire()
      const link = wire.connect(t1, t2)
      const reports: string[] = []
      for (const s of link) s.on('invalid', (_o: unknown, _reason: string, code: string) => reports.push(code))
      const clocks = [t1.version, t2.version]
      let detectedAt = -1
      let atDetection = [0, 0]
      for (let round = 1; round <= 100; round++) {
        await wire.round()
        if (reports.includes('twin_writes') && detectedAt < 0) {
          detectedAt = round
          atDetection = [t1.version, t2.version]
        }
      }
      figure('detected_in_round', detectedAt)
      figure('updates_moved_in_100_rounds', wire.updates)
      figure('versions_issued', [t1.version - clocks[0], t2.version - clocks[1]])
      figure('reports', reports.slice(0, 2))
      assert.deepStrictEqual(wire.errors, [])
      assert.ok(!link[0].destroyed && !link[1].destroyed, 'the streams stay open')
      assert.ok(reports.length <= 2, `reported once per stream: ${reports.join('; ')}`)
      assert.ok(
        detectedAt > 0 && detectedAt <= 20,
        `twins were never reported (no 'invalid' report in 100 rounds, ${wire.updates} updates moved, versions issued: ${t1.version - clocks[0]} and ${t2.version - clocks[1]})`,
      )
      const after = [t1.version - atDetection[0], t2.version - atDetection[1]]
      figure('versions_issued_after_detection', after)
      assert.ok(after.every((n) => n <= 10), `the twins kept re-issuing after they were reported: ${after.join(' and ')} versions`)
    })

    it("attack (red team 5, item 1): twins that never meet a common peer (d1 via a, d2 via c), then d2 stops; required: d1 ends holding every write d2 made, as a and c do", async () => {
      const a = new Gossip('a', { resolve, mtu: 10 })
      const c = new Gossip('c', { resolve, mtu: 10 })
      const d1 = new Gossip('d', { resolve, mtu: 10 })
      const d2 = new Gossip('d', { resolve, mtu: 10 })
      const wire = new Wire()
      const [toA] = wire.connect(d1, a)
      wire.connect(a, c)
      const twinLink = wire.connect(c, d2)
      const reports: string[] = []
      toA.on('invalid', (_o: unknown, _reason: string, code: string) => reports.push(code))
      for (let round = 0; round < 30; round++) {
        d1.set(`one${round}`, round)
        d2.set(`two${round}`, round)
        d2.set('both', `d2 ${round}`)
        await wire.round()
      }
      assert.ok(reports.includes('twin_writes'), `d1 never told its twin apart: ${reports.join(', ')}`)
      // d2 stops: its link goes.
      wire.links.splice(wire.links.indexOf(twinLink), 1)
      for (const s of twinLink) s.destroy()
      for (let round = 0; round < 10; round++) await wire.round()
      assert.deepStrictEqual(wire.errors, [])
      agree(a, c)
      for (let i = 0; i < 30; i++) assert.strictEqual(d1.get(`two${i}`).value, i, `the survivor misses its stopped twin's write two${i}`)
      agree(d1, a)
    })

    for (const [name, past, fresh] of [
      ['its clock starts above its past', 1_000_000, 2_000_000],
      ['its past ran ahead of its new clock', 9_000_000, 1000],
    ] as [string, number, number][]) {
      it(`a restart without saved state (${name}) still works: no 'error', its new writes and its past reach everyone`, async () => {
        const a = bornAt(past, 'a', { resolve, mtu: 4 })
        const b = bornAt(0, 'b', { resolve, mtu: 4 })
        let wire = new Wire()
        wire.connect(a, b)
        for (let i = 0; i < 6; i++) a.set(`old${i}`, i)
        a.set('x', 'old x')
        for (let r = 0; r < 4; r++) await wire.round()
        agree(a, b)
        const a2 = bornAt(fresh, 'a', { resolve, mtu: 4 })
        a2.set('x', 'new x')
        a2.on('error', (e: Error) => wire.errors.push({ stream: 'a2', message: e.message }))
        wire = new Wire()
        wire.connect(a2, b)
        for (let r = 0; r < 10; r++) await wire.round()
        assert.deepStrictEqual(wire.errors, [], 'a legitimate restart was reported as a twin')
        agree(a2, b)
        assert.strictEqual(b.get('x').value, 'new x')
        assert.strictEqual(a2.get('old5').value, 5, 'the past did not come back')
      })
    }
  })

  describe('(beyond the list) a restart without saved state whose past ran ahead meets a stale copy of its past first', () => {
    // a's past wrote x = old, then x = new; b holds both, the stale copy holds only old.
    // a restarts without saved state, its clock below its past (the README's "past ran ahead").
    async function scenario(stale: (a2: Gossip, old: Update) => Promise<void>, security?: (id: string) => Security): Promise<void> {
      const config = (id: string) => ({ resolve, ...(security === undefined ? {} : { security: security(id) }) })
      const a = bornAt(9_000_000, 'a', config('a'))
      const b = bornAt(0, 'b', config('b'))
      const wire = new Wire()
      wire.connect(a, b)
      a.set('x', 'old')
      const old = JSON.parse(JSON.stringify(a.get('x'))) as Update
      await wire.round()
      a.set('x', 'new')
      await wire.round()
      assert.strictEqual(b.get('x').value, 'new')
      const newest = b.get('x').version
      const a2 = bornAt(1000, 'a', config('a'))
      await stale(a2, old)
      const next = new Wire()
      next.connect(a2, b)
      for (let r = 0; r < 20; r++) await next.round()
      figure('a2_x', [a2.get('x').value, a2.get('x').version])
      figure('b_x', [b.get('x').value, b.get('x').version])
      figure('newest_acknowledged', ['new', newest])
      assert.ok(
        a2.get('x').value === 'new' && b.get('x').value === 'new',
        `the newest acknowledged write was lost (same source and version, different values: replicas split for good): a2 holds x=${JSON.stringify(a2.get('x').value)}@${a2.get('x').version}, b holds x=${JSON.stringify(b.get('x').value)}@${b.get('x').version} (x=new was written at ${newest})`,
      )
      agree(a2, b)
    }

    it('a stale peer (holding only x = old) talks to the restarted node first; required: x = new everywhere, replicas agree', async () => {
      await scenario(async (a2, old) => {
        const c = bornAt(0, 'c', { resolve })
        c.write({ ...old })
        const w = new Wire()
        w.connect(a2, c)
        for (let r = 0; r < 3; r++) await w.round()
      })
    })

    it('attack (signed): a keyless peer replays the old, validly signed x = old to the restarted node first; required: x = new everywhere, replicas agree', async () => {
      const pairs = { a: generateKeyPair(), b: generateKeyPair() }
      const publicKeys = { a: pairs.a.publicKey, b: pairs.b.publicKey }
      const security = (id: string) => ed25519({ id, privateKey: pairs[id as 'a' | 'b'].privateKey, publicKeys })
      await scenario(async (a2, old) => {
        assert.strictEqual(typeof old.signature, 'string')
        // The replayer holds no key: it only verifies, and relays what it recorded.
        const replayer = bornAt(0, 'mallory', { resolve, security: ed25519({ publicKeys }) })
        replayer.write({ ...old })
        assert.strictEqual(replayer.get('x').value, 'old', 'the replayer could not even hold the genuine old update')
        const w = new Wire()
        w.connect(a2, replayer)
        for (let r = 0; r < 3; r++) await w.round()
      }, security)
    })
  })

  describe('defect 10: startNode and resolve', () => {
    it('startNode without resolve throws a clear error (the README: "there is deliberately no default")', async () => {
      for (const options of [{ id: 'x' }, { id: 'x', config: {} }] as NodeOptions[]) {
        let started: tcp.ScuttleNode | null = null
        let error: unknown = null
        try {
          started = await startNode({ ...options, log: () => undefined })
        } catch (err) {
          error = err
        }
        if (started !== null) await started.close()
        assert.ok(started === null, `startNode(${JSON.stringify(options)}) started a node with a default resolve`)
        assert.ok(error instanceof TypeError && /resolve/.test(error.message), `not a clear TypeError naming resolve: ${String(error)}`)
      }
      const ok = await startNode({ id: 'y', resolve, log: () => undefined })
      await ok.close()
    })

    it('the node command passes a resolve to startNode explicitly', async () => {
      const real = tcp.startNode
      let seen: NodeOptions | null = null
      ;(tcp as { startNode: typeof tcp.startNode }).startNode = async (options: NodeOptions) => {
        seen = options
        throw new Error('stub: not starting')
      }
      try {
        // A start failure is one 'cannot start:' line and exit 1 (issue 21).
        assert.strictEqual(await nodeCommand(['--id', 'cli', '--listen', '127.0.0.1:0']), 1)
      } finally {
        ;(tcp as { startNode: typeof tcp.startNode }).startNode = real
      }
      assert.ok(seen !== null, 'nodeCommand did not call startNode')
      const opts = seen as NodeOptions
      assert.strictEqual(typeof (opts.resolve ?? opts.config?.resolve), 'function', 'the CLI relies on a default resolve')
    })
  })

  describe('issue 21: watches and re-entrant listeners', () => {
    it('attack: 100,000 key watches were 100,000 \'change\' listeners, scanned on every set (MaxListenersExceededWarning); required: one listener, each watch called only for its key or prefix, stopping them all leaves none', () => {
      const g = new Gossip('a', { resolve })
      const calls = new Map<string, number>()
      const count = (name: string) => () => calls.set(name, (calls.get(name) ?? 0) + 1)
      const stops: (() => void)[] = []
      for (let i = 0; i < 100_000; i++) stops.push(g.watch(`w${i}`, count(`w${i}`)))
      stops.push(g.watch({ prefix: 'p/' }, count('p/')), g.watch({ prefix: 'p/q' }, count('p/q')), g.watch({ prefix: '' }, count('all')))
      stops.push(g.watch('w7', count('w7 again')))
      assert.strictEqual(g.listenerCount('change'), 1, 'watches are one indexed listener, not one listener each')
      g.set('w7', 1)
      g.set('unwatched', 1)
      g.set('p/q/r', 1)
      g.set('p/x', 1)
      assert.deepStrictEqual(Object.fromEntries([...calls].sort()), { 'p/': 2, 'p/q': 1, all: 4, w7: 1, 'w7 again': 1 })
      for (const stop of stops) stop()
      stops[0]() // twice is harmless
      assert.strictEqual(g.listenerCount('change'), 0)
      g.set('w7', 2)
      assert.strictEqual(calls.get('w7'), 1, 'a stopped watch was called')
    })

    it("attack: a 'change' listener that calls set recursed until the stack overflowed (~940 deep); required: 10,000 chained sets from listeners all happen, every listener sees every change in order, nothing reported", async () => {
      const g = new Gossip('a', { resolve })
      const invalid: string[] = []
      g.on('invalid', (_o: unknown, reason: string) => invalid.push(reason))
      const first: string[] = []
      const second: string[] = []
      const watched: string[] = []
      g.on('change', (key: string, entry?: Update) => {
        first.push(`${key}=${entry?.value}`)
        const n = entry?.value as number
        if (n < 10_000) g.set(`k${n + 1}`, n + 1)
      })
      g.on('change', (key: string, entry?: Update) => second.push(`${key}=${entry?.value}`))
      g.watch({ prefix: 'k' }, (key, entry) => watched.push(`${key}=${entry?.value}`))
      g.set('k0', 0)
      await until(() => first.length >= 10_001 || invalid.length > 0, 20_000, 'the chain to end')
      const expected = Array.from({ length: 10_001 }, (_, i) => `k${i}=${i}`)
      assert.deepStrictEqual(invalid, [])
      assert.deepStrictEqual(first, expected)
      assert.deepStrictEqual(second, expected)
      assert.deepStrictEqual(watched, expected)
      assert.strictEqual(g.get('k10000').value, 10_000)
    })

    it("attack: a 'change' listener that sets its own key forever; required: the set returns, the process keeps serving (a bounded run per turn), nothing lost in order", async () => {
      const g = new Gossip('a', { resolve })
      const seen: number[] = []
      const stop = g.watch('x', (_key, entry) => {
        seen.push(entry?.value as number)
        g.set('x', (entry?.value as number) + 1)
      })
      g.set('x', 0)
      // The first set returned: the chain yields to the event loop, which still serves.
      await new Promise((r) => setTimeout(r, 0))
      await until(() => seen.length > 30_000, 10_000, 'the chain to go on across turns')
      stop()
      assert.deepStrictEqual(seen, Array.from({ length: seen.length }, (_, i) => i))
    })
  })

  it('(sanity) the Wire helper replicates honest writes both ways', async () => {
    const p = new Gossip('p', { resolve })
    const q = new Gossip('q', { resolve })
    const wire = new Wire()
    wire.connect(p, q)
    p.set('a', 1)
    q.set('b', 2)
    await wire.round()
    await until(() => q.get('a').value === 1 && p.get('b').value === 2, 1000, 'p and q to exchange')
    agree(p, q)
    assert.ok(wire.updates >= 2)
  })
})
