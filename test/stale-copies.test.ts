/**
 * Stale copies (lib/stale-copies.ts; docs/deletes.md, rule 6): a copy
 * behind collected markers is told, refetches, and drops what no fresh
 * copy sends again; forged and old notices change nothing. Deletes as a
 * whole are in deletes.test.ts.
 */
import * as assert from 'assert'
import { Gossip } from '../lib'
import type { Config } from '../lib'
import { Cluster, memory, type Persistence } from '../lib/testing/cluster'
import { Clock } from '../lib/clock'
import { classify, Kind, noticeUpdate } from '../lib/shape'
import { agree, graceWithExchanges, GRACE, lww, rounds, turn, withCluster } from './deletes-cluster'

describe('stale copies (lib/stale-copies.ts: rule 6)', function () {
  this.timeout(20_000)

  it('rule 6: a copy behind collected markers is refetched: what the fresh copy lacks goes, nothing else', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      const a = c.node('a')
      a.set('gone', 1)
      a.set('stays', 2)
      await rounds(c)
      c.partition(new Set(['c']))
      a.delete('gone')
      a.set('newer', 3)
      await graceWithExchanges(c)
      assert.deepStrictEqual(a.history.get('gone'), [])
      const events: unknown[][] = []
      c.node('c').on('refetch', (...e: unknown[]) => events.push(['refetch', e[0]]))
      c.node('c').on('refetched', (...e: unknown[]) => events.push(['refetched', ...e]))
      c.heal()
      await rounds(c)
      assert.deepStrictEqual(events, [
        ['refetch', 'a'],
        ['refetched', 'a', 1],
      ])
      agree(c)
      assert.strictEqual(c.node('c').get('gone').version, -Infinity)
      assert.strictEqual(c.node('c').get('stays').value, 2)
      assert.strictEqual(c.node('c').get('newer').value, 3)
    }))

  it("rule 6: a refetch drops a suspect tombstone beating a value the serving copy holds too: its source replaced it there (outside model checker seed 2443055)", () =>
    withCluster(['a', 'b', 'c', 'd'], {}, async (c) => {
      c.node('b').set('k', 'm')
      await rounds(c, 1) // everyone takes b's m
      c.partition(new Set(['b'])) // b never sees a tombstone beating m
      c.node('c').delete('k')
      await c.exchange('c', 'a') // a takes c's tombstone, which beats m
      c.partition(new Set(['a', 'b']))
      c.node('c').set('k', 'v') // c replaces its tombstone itself
      await c.exchange('c', 'd')
      c.node('d').delete('k')
      await c.exchange('d', 'c') // c withdraws v, which d's tombstone beats
      c.node('c').delete('k0')
      c.node('c').set('k9', 'x')
      await graceWithExchanges(c)
      await graceWithExchanges(c) // c's withdrawal is collected: a's copy of c is stale
      assert.deepStrictEqual(c.node('d').history.get('k').map((u) => u.source_id).sort(), ['b', 'd']) // d's tombstone waits for b's m (rule 4)
      c.node('d').set('k', 'w') // and d replaces it itself
      await c.exchange('d', 'c')
      const events: unknown[][] = []
      c.node('a').on('refetched', (...e: unknown[]) => events.push(e))
      c.heal()
      await c.exchange('a', 'c') // a refetches c, and leaves its suspect tombstone out of answers (b never takes it)
      await rounds(c)
      assert.deepStrictEqual(events, [['c', 1]])
      agree(c)
      // b's m was never withdrawn (b took no tombstone beating it): every node lists it, a too.
      const sources = [...c.nodes.values()].map((g) => g.sources('k').map((u) => `${u.source_id}:${String(u.value)}`).sort().join(','))
      assert.deepStrictEqual(sources, ['b:m,d:w', 'b:m,d:w', 'b:m,d:w', 'b:m,d:w'])
      assert.deepStrictEqual(c.unsynced(), [])
    }))

  it("rule 6: a notice may carry the source's life floor (at or below its gc), and signs it; without one, the bytes of earlier releases", () => {
    const done = (o: Record<string, unknown>) => {
      const r = classify({ digest: true, done: true, protocol: 2, ...o })
      assert.strictEqual(r.kind, Kind.Done)
      return r as Extract<ReturnType<typeof classify>, { kind: Kind.Done }>
    }
    assert.deepStrictEqual(done({ stale: { a: [9, 1, 5] } }).stale, new Map([['a', [9, 1, 5]]]))
    assert.deepStrictEqual(done({ stale: { a: [9, 1] } }).stale, new Map([['a', [9, 1]]]))
    // A floor above the gc says nothing of what the markers replaced: dropped, the notice kept.
    assert.deepStrictEqual(done({ stale: { a: [9, 1, 12] } }).stale, new Map([['a', [9, 1]]]))
    assert.deepStrictEqual(done({ stale: { a: [9, 1, 5, 2] } }).stale, new Map([['a', [9, 1, 5, 2]]]))
    assert.strictEqual(done({ stale: { a: [9, 1, 5, 2, 0] } }).stale, undefined)
    assert.deepStrictEqual(
      done({ lives: { a: 5, b: -1, c: 'x', d: [7, 3], e: [7] } }).lives,
      new Map([
        ['a', [5, -Infinity]],
        ['d', [7, 3]],
      ]),
    )
    assert.deepStrictEqual(noticeUpdate('m', 'n', new Map([['a', [9, 1]]]), undefined).value, ['n', [['a', 9, 1]], []])
    assert.deepStrictEqual(noticeUpdate('m', 'n', new Map([['a', [9, 1, 5]]]), undefined).value, ['n', [['a', 9, 1, 5]], []])
    assert.deepStrictEqual(noticeUpdate('m', 'n', new Map([['a', [9, 1, 5, 2]]]), undefined).value, ['n', [['a', 9, 1, 5, 2]], []])
  })

  it('attack: a stale copy told once, on a connection that then drops, is still refetched; short connections complete the refetch', async () => {
    for (const first of ['a', 'b'] as const) {
      const real = Clock.now
      let now = 1.7e15
      Clock.now = () => now
      try {
        const cfg: Config = { resolve: lww, tombstone_grace: 1000 }
        const [a, b, c] = ['a', 'b', 'c'].map((id) => new Gossip(id, cfg))
        // One connection: some exchanges each way, then it drops.
        const connect = async (x: Gossip, y: Gossip, who: ('x' | 'y')[]) => {
          const sx = x.createStream()
          const sy = y.createStream()
          sx.pipe(sy).pipe(sx)
          for (const w of who) {
            ;(w === 'x' ? sx : sy).gossip()
            for (let i = 0; i < 30; i++) await turn()
          }
          sx.unpipe()
          sy.unpipe()
          sx.destroy()
          sy.destroy()
        }
        a.set('k', 'old')
        await connect(a, b, ['x']) // b holds a's k=old
        now += 1e3
        a.delete('k')
        a.set('x', 1)
        for (let i = 0; i < 10; i++) {
          now += 300e3
          await connect(a, c, ['x', 'y']) // a collects its tombstone past the grace
        }
        a.set('y', 2)
        assert.deepStrictEqual(a.history.get('k'), [], 'collected')
        // One exchange tells b its copy of a is stale; the connection drops.
        await connect(a, b, [first === 'a' ? 'x' : 'y'])
        for (let r = 0; r < 5; r++) {
          now += 20e3
          await connect(a, b, ['x', 'y', 'x'])
          await connect(b, c, ['x', 'y'])
        }
        for (const g of [a, b, c]) {
          assert.ok(!('k' in g.state) && g.sources('k').length === 0, `${first} first: ${g.id} holds ${JSON.stringify(g.sources('k'))}`)
          assert.strictEqual(g.get('y').value, 2)
        }
      } finally {
        Clock.now = real
      }
    }
  })

  // p and q exchange both ways, three times.
  async function both(c: Cluster, p: string, q: string): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await c.exchange(p, q)
      await c.exchange(q, p)
    }
  }

  // Every node's refetch events, as [node, event, source].
  function refetchEvents(c: Cluster): unknown[][] {
    const events: unknown[][] = []
    c.onNode((g) => {
      for (const e of ['refetch', 'refetched', 'refetchAbandoned']) g.on(e, (id: string) => events.push([g.id, e, id]))
    })
    return events
  }

  it("rule 6: a refetch ends once the copy reaches the gc with no suspect, served or not, and keeps the gc: a node whose refetch a grace would have abandoned tells a stale copy it passes the source to (outside red team, issue 18, B2: a deleted value shown for good)", () =>
    withCluster(['a', 'b', 'c', 'd', 'e'], { mtu: 1 }, async (c) => {
      const events = refetchEvents(c)
      const a = c.node('a')
      a.set('y', 1)
      await both(c, 'a', 'b')
      // b, away, keeps a's y=1; a deletes it, writes two keys, and collects the delete with d and c.
      c.partition(new Set(['b']))
      a.delete('y')
      a.set('z', 2)
      a.set('w', 3)
      for (let i = 0; i < 8; i++) {
        c.advance(GRACE / 4)
        for (const [p, q] of ['ad', 'da', 'ac', 'ca', 'cd', 'dc']) await c.exchange(p, q)
      }
      assert.deepStrictEqual(a.history.get('y'), [], 'collected')
      // c restarts from nothing and meets a until it holds a's z (told the gc,
      // past it, not yet served as far as a names itself: the mtu is one update).
      c.partition(new Set(['c', 'e']))
      await c.restart('c', 'nothing')
      c.heal()
      c.partition(new Set(['b']))
      c.partition(new Set(['a', 'c']))
      for (let i = 0; i < 6 && c.node('c').history.mapping('a', 'z') === undefined; i++) await c.exchange('a', 'c')
      assert.strictEqual(c.node('c').history.mapping('a', 'w'), undefined, 'c holds a only up to z')
      // Then c hears only from e, which holds none of a, for longer than the grace.
      c.heal()
      c.partition(new Set(['c', 'e']))
      for (let i = 0; i < 12; i++) {
        c.advance(GRACE / 4)
        await c.exchange('c', 'e')
        await c.exchange('e', 'c')
      }
      // b, whose copy of a still holds y=1, meets c first, then everyone.
      c.heal()
      c.partition(new Set(['b', 'c']))
      await both(c, 'b', 'c')
      c.heal()
      for (let i = 0; i < 30; i++) {
        await c.round()
        c.advance(GRACE / 8)
      }
      for (const g of c.nodes.values()) assert.ok(!('y' in g.state) && g.sources('y').length === 0, `${g.id} shows a's deleted y: ${JSON.stringify(g.sources('y'))}`)
      assert.ok(!events.some((e) => e[1] === 'refetchAbandoned'), JSON.stringify(events))
      assert.deepStrictEqual(
        events.filter((e) => e[0] === 'b'),
        [
          ['b', 'refetch', 'a'],
          ['b', 'refetched', 'a'],
        ],
      )
      agree(c)
    }))

  it('rule 6: a doubted copy (its refetch abandoned with a suspect) tells a peer it sends the source to, and the peer believes it once its copy reaches the gc: a deleted value does not come back at both', () =>
    withCluster(['a', 'c', 'd', 'e'], { mtu: 1 }, async (c) => {
      const only = (...groups: string[][]) => {
        c.heal()
        for (const g of groups) c.partition(new Set(g))
      }
      const events = refetchEvents(c)
      const a = c.node('a')
      a.set('y', 1)
      await both(c, 'a', 'd')
      // d and e away; a deletes y, writes two keys, and collects the delete with c.
      only(['d'], ['e'])
      a.delete('y')
      a.set('z', 2)
      a.set('w', 3)
      for (let i = 0; i < 8; i++) {
        c.advance(GRACE / 4)
        await c.exchange('a', 'c')
        await c.exchange('c', 'a')
      }
      assert.deepStrictEqual(a.history.get('y'), [], 'collected')
      // d meets c until it is told and holds a's z (past the gc; y still suspect)...
      only(['c', 'd'])
      for (let i = 0; i < 8 && c.node('d').history.mapping('a', 'z') === undefined; i++) await c.exchange('c', 'd')
      assert.strictEqual(c.node('d').history.mapping('a', 'w'), undefined, 'd holds a only up to z')
      // ...then only e, which holds none of a, for longer than the grace: d's refetch is abandoned, y kept.
      only(['d', 'e'])
      for (let i = 0; i < 12; i++) {
        c.advance(GRACE / 4)
        await c.exchange('d', 'e')
        await c.exchange('e', 'd')
      }
      assert.ok(events.some((e) => e[0] === 'd' && e[1] === 'refetchAbandoned'), JSON.stringify(events))
      // e goes away; the others meet, then everyone.
      only(['e'])
      for (let i = 0; i < 10; i++) {
        await c.round()
        c.advance(GRACE / 8)
      }
      c.heal()
      for (let i = 0; i < 30; i++) {
        await c.round()
        c.advance(GRACE / 8)
      }
      for (const g of c.nodes.values()) assert.ok(!('y' in g.state) && g.sources('y').length === 0, `${g.id} shows a's deleted y: ${JSON.stringify(g.sources('y'))}`)
      agree(c)
      // e was told, and refetched a from a fresh copy (not d's doubted one).
      assert.ok(events.some((e) => e[0] === 'e' && e[1] === 'refetched'), JSON.stringify(events))
    }))

  it("Limits, restored from an old state: a node restored from a state older than what peers collected of its own deletes reports 'restored_stale' on the stream that tells it (outside red team, issue 18: it took its later writes back first and said nothing); a clean restart does not", async () => {
    let backup: string | undefined
    // Snapshots in memory; a restart from `backup` once one is set.
    const old: Persistence = { ...memory, reopen: async (node, cfg) => Gossip.restore(node.id, cfg, JSON.parse(backup ?? JSON.stringify(node.snapshot()))) }
    await withCluster(
      ['a', 'b', 'd'],
      {},
      async (c) => {
        const codes: string[] = []
        c.onNode((g) => {
          if (g.id !== 'd') return
          // Each new connection of d's, once its links are up again.
          void Promise.resolve().then(() => {
            for (const l of c.links) for (const s of [l.a === 'd' ? l.sa : null, l.b === 'd' ? l.sb : null]) s?.on('invalid', (_o: unknown, _r: string, code: string) => codes.push(code))
          })
        })
        c.node('d').set('x', 1)
        await rounds(c)
        await c.restart('d', 'clean')
        await rounds(c)
        assert.strictEqual(codes.join(','), '', 'a clean restart')
        backup = JSON.stringify(c.node('d').snapshot())
        c.node('d').set('x', 2)
        c.node('d').delete('x')
        c.node('d').set('c', 1) // the tombstone is no longer d's newest mapping: collected
        await rounds(c)
        await graceWithExchanges(c)
        await rounds(c)
        assert.ok(c.node('a').snapshot().collected?.d !== undefined, 'a collected a delete of d')
        await c.restart('d', 'clean') // from the backup
        await rounds(c)
        assert.ok(codes.includes('restored_stale'), `codes: ${codes.join(',')}`)
      },
      () => old,
    )
  })

  it("Limits, restored from an old state: a node restarted from its newest state that wrote on is not told it is stale once peers collect its own markers of this life (red team 18, seed 1001040: it was, and a restart from nothing then lost its newest write)", () =>
    withCluster(['a', 'b', 'd'], {}, async (c) => {
      c.node('d').delete('y') // what d restarts with: a tombstone only
      await rounds(c)
      const restoredTop = c.node('d').history.sources.get('d')?.max ?? -Infinity
      await c.restart('d', 'clean')
      await rounds(c)
      c.node('d').set('z', 14)
      await rounds(c)
      c.node('a').delete('z') // d withdraws its z: a marker of this life
      await rounds(c)
      c.node('d').set('w', 1)
      await graceWithExchanges(c)
      await graceWithExchanges(c)
      await rounds(c)
      const gc = c.node('a').snapshot().collected?.d
      assert.ok(gc !== undefined && gc > restoredTop, 'peers collected a marker of d above its restored state')
      c.node('d').set('y', 22)
      // A new connection: d asks a for its past from scratch, and a tells it the gc.
      c.down(c.link('a', 'd'))
      c.up(c.link('a', 'd'))
      await rounds(c)
      assert.deepStrictEqual(c.invalid.filter(([, , code]) => code === 'restored_stale'), [])
      for (const g of c.nodes.values()) assert.strictEqual(g.get('y')?.value, 22, g.id)
    }))

  it('attack: the old reset line from a peer changes nothing; a forged stale notice neither drops nor stalls anything', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('a').set('k', 1)
      await rounds(c)
      const b = c.node('b')
      const refetches: unknown[] = []
      for (const g of c.nodes.values()) g.on('refetch', (...e: unknown[]) => refetches.push([g.id, ...e]))
      const s = b.createStream()
      s.write({ digest: true, done: true, protocol: 2, reset: 9e15, floors: { a: 9e15 }, reset_keys: 'AAAA' })
      // A gc no clock believes, named by the forger as held: refused.
      s.write({ digest: true, source_id: 'a', version: 1 })
      s.write({ digest: true, done: true, protocol: 2, stale: { a: [8e15, 1] } })
      // A believable gc of a source the forger's whole digest leaves out:
      // the one a source names so while it asks for its past (its notices
      // of its own markers count), so it costs b one refetch of a, no more
      // (docs/deletes.md, Limits: Trust).
      s.write({ digest: true, done: true, protocol: 2, stale: { a: [Clock.now() + 1000, 1] } })
      await turn()
      s.destroy()
      assert.deepStrictEqual(refetches, [['b', 'a', Clock.now() + 1000, 1]])
      c.advance(1000)
      c.node('a').set('k', 2)
      c.node('a').set('j', 'new')
      await rounds(c)
      agree(c)
      assert.strictEqual(b.get('k').value, 2)
      assert.strictEqual(b.get('j').value, 'new')
      assert.deepStrictEqual(c.unsynced(), [])
    }))

  it('attack: a forged notice a peer claims to back, then abandons, stalls nothing and drops nothing', () =>
    withCluster(['a', 'b'], {}, async (c) => {
      c.node('a').set('k', 1)
      await rounds(c)
      const b = c.node('b')
      const abandoned: unknown[][] = []
      b.on('refetchAbandoned', (...e: unknown[]) => abandoned.push(e))
      const s = b.createStream()
      const gc = Clock.now() + 60_000_000
      s.write({ digest: true, source_id: 'a', version: gc })
      s.write({ digest: true, done: true, protocol: 2, stale: { a: [gc, 1] } })
      await turn()
      s.destroy()
      assert.strictEqual(b.deletes.refetching, true)
      // a goes on writing: b takes it all the while, and keeps what it held.
      c.node('a').set('k2', 2)
      await rounds(c)
      assert.strictEqual(b.get('k2').value, 2)
      assert.strictEqual(b.get('k').value, 1)
      // No peer serves the refetch for a grace: it is abandoned, loudly.
      await graceWithExchanges(c)
      assert.strictEqual(b.deletes.refetching, false)
      // (k2, taken below the gc meanwhile, is in doubt too.)
      assert.deepStrictEqual(abandoned, [['a', gc, 2]])
      await rounds(c)
      agree(c)
      assert.strictEqual(b.get('k').value, 1)
      assert.deepStrictEqual(c.unsynced(), [])
    }))
})
