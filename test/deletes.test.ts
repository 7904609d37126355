/**
 * Deletes, rule by rule (docs/deletes.md), and the defects the previous
 * design was attacked with, each as a regression. Late values (rules 5
 * and 7) are tested in late.test.ts, stale copies (rule 6) in
 * stale-copies.test.ts. The reference-model property over random
 * schedules is test/properties/model.test.ts.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { Gossip, base, counter } from '../lib'
import { ed25519, generateKeyPair } from '../lib/node'
import { openIdbGossip } from '../lib/browser'
import type { Config, Message, PeerStream as PeerStreamLike, Update } from '../lib'
import { Cluster, memory } from '../lib/testing/cluster'
import { Clock } from '../lib/clock'
import { prng as seeded } from '../lib/sim/random'
import { noticeUpdate } from '../lib/shape'
import { agree, config, graceWithExchanges, GRACE, heldBack, lww, persistences, rounds, turn, withCluster } from './deletes-cluster'

describe('deletes (docs/deletes.md)', function () {
  this.timeout(20_000)
  it('a delete hides the key everywhere; a later set brings it back', () =>
    withCluster(['a', 'b'], {}, async (c) => {
      c.node('a').set('k', 1)
      await rounds(c)
      c.node('b').delete('k')
      await rounds(c)
      for (const g of c.nodes.values()) {
        assert.strictEqual(g.get('k').version, -Infinity)
        assert.ok(!('k' in g.state))
      }
      c.node('a').set('k', 2)
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k').value, 2)
    }))

  it('a delete wins or loses through resolve, like any write', () =>
    withCluster(['a', 'b'], { resolve: base.resolution.strictly_order_values }, async (c) => {
      // strictly_order_values: null (a delete's value) is below every value.
      c.node('b').set('k', 5)
      await rounds(c)
      c.node('a').delete('k')
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k').value, 5)
    }))

  it('rule 2: a source withdraws its own value that a delete beats; sources(key) leaves out what a held delete beats', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('b').set('k', 'b wrote')
      c.node('c').set('k', 'c wrote')
      await rounds(c)
      c.node('a').delete('k')
      // Before b and c hear of it, a counts nothing of k.
      assert.deepStrictEqual(c.node('a').sources('k'), [])
      await rounds(c)
      for (const g of c.nodes.values()) {
        const marks = g.history.get('k').map((u) => [u.source_id, u.deleted === true ? 'delete' : u.withdrawn === true ? 'withdrawn' : u.value])
        assert.deepStrictEqual(marks.sort(), [
          ['a', 'delete'],
          ['b', 'withdrawn'],
          ['c', 'withdrawn'],
        ])
        assert.deepStrictEqual(g.sources('k'), [])
      }
    }))

  it('rule 2: a withdrawal takes no part in resolve: it never beats a write the delete did not beat', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('b').set('k', 'old')
      await rounds(c)
      c.node('a').delete('k') // beats b's value
      await c.exchange('a', 'c')
      c.node('c').set('k', 'newer') // after the delete: it wins
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k').value, 'newer', g.id)
      // b withdrew its old value, and that changed nothing else.
      assert.strictEqual(c.node('a').history.mapping('b', 'k')?.withdrawn, true)
    }))

  it('rule 4: collected after the grace of time spent hearing from peers: a node alone keeps its deletes, and memory goes back to one entry per source', () =>
    withCluster(['a', 'b'], {}, async (c) => {
      const a = c.node('a')
      for (let i = 0; i < 100; i++) a.set(`k${i}`, 'x'.repeat(50))
      await rounds(c)
      for (let i = 0; i < 100; i++) a.delete(`k${i}`)
      a.set('last', 1) // a source's newest mapping stays
      await rounds(c)
      // Alone, time passes without collection.
      c.partition(new Set(['a']))
      c.advance(10 * GRACE)
      a._collect()
      assert.strictEqual(a.deletes.pending, 100)
      c.heal()
      await graceWithExchanges(c)
      for (const g of c.nodes.values()) {
        assert.deepStrictEqual([...g.history.mappings()].map((u) => u.key), ['last'])
        assert.strictEqual(g.deletes.pending, 0)
      }
    }))

  it('rule 4: a delete that still beats a live value is kept until that value is withdrawn', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('b').set('k', 'b wrote')
      await rounds(c)
      // b is away: it cannot withdraw its value.
      c.partition(new Set(['b']))
      c.node('a').delete('k')
      c.node('a').set('other', 1)
      await graceWithExchanges(c)
      assert.strictEqual(c.node('a').history.mapping('a', 'k')?.deleted, true, 'kept: it beats b\'s value')
      c.heal()
      await rounds(c)
      await graceWithExchanges(c)
      // b's value is gone; b's withdrawal, its newest, stays, and with it
      // a's delete, which beats the value it names (rule 4).
      for (const g of c.nodes.values()) assert.deepStrictEqual(g.history.get('k').map((u) => [u.source_id, u.withdrawn]).sort(), [['a', undefined], ['b', true]], g.id)
      // Once b writes again, its withdrawal goes after a grace, and a's delete a grace later.
      c.node('b').set('other', 2)
      await rounds(c)
      await graceWithExchanges(c)
      await graceWithExchanges(c)
      for (const g of c.nodes.values()) assert.deepStrictEqual(g.history.get('k'), [], g.id)
    }))

  it("regression: a withdrawal reaches a node holding its source's older delete without the delete that made it (outside red team: a beaten value came back for good)", () =>
    withCluster(['n0', 'n1', 'n2', 'n3'], {}, async (c) => {
      const [n0, n1, n2] = [c.node('n0'), c.node('n1'), c.node('n2')]
      n0.set('z', 4)
      await c.exchange('n0', 'n2')
      await c.exchange('n0', 'n3')
      c.advance(2000)
      n1.delete('z')
      await c.exchange('n1', 'n2')
      await c.exchange('n1', 'n3')
      assert.strictEqual(n2.state.z, undefined)
      // n1 writes z again; n0's later delete beats it, and n1 withdraws it.
      n1.set('z', 6)
      c.advance(2000)
      n0.delete('z')
      n0.delete('y')
      c.partition(new Set(['n0', 'n1']))
      for (let i = 0; i < 8; i++) {
        await c.exchange('n0', 'n1')
        await c.exchange('n1', 'n0')
        await c.exchange('n2', 'n3')
        c.advance(GRACE / 4)
      }
      assert.strictEqual(n1.history.mapping('n1', 'z')?.withdrawn, true)
      // One exchange brings n2 n1's withdrawal, which replaces n1's delete
      // there: n0's delete must come with it (kept while the withdrawal is).
      c.heal()
      await c.exchange('n1', 'n2')
      for (const l of c.links) if (l.a !== 'n2' && l.b !== 'n2') c.down(l)
      c.down(c.link('n0', 'n2'))
      c.down(c.link('n1', 'n2'))
      assert.strictEqual(n2.history.mapping('n1', 'z')?.withdrawn, true)
      for (let i = 0; i < 20; i++) {
        assert.strictEqual(n2.state.z, undefined, `n2 shows z again (${i})`)
        await c.exchange('n2', 'n3')
        c.advance(10_000)
      }
      assert.strictEqual(c.node('n3').state.z, undefined)
    }))

  it('regression: a pause past the grace after everything agreed changes nothing (the old design lost a-wrote on three of four nodes)', () =>
    withCluster(['a', 'b', 'c', 'd'], {}, async (c) => {
      c.node('b').set('k2', 'b-wrote')
      await rounds(c)
      c.node('c').delete('k2')
      await rounds(c)
      c.node('a').set('k2', 'a-wrote')
      c.node('d').set('k1', 'd')
      await rounds(c)
      agree(c)
      // The whole cluster pauses longer than the grace, then goes on.
      c.advance(3 * GRACE)
      await graceWithExchanges(c)
      await rounds(c)
      agree(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k2').value, 'a-wrote', g.id)
    }))

  it('regression: a refetch, then a restart from a snapshot, SQLite or IndexedDB before it ends, loses nothing the cluster holds', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deletes-'))
    const { sqlite, idb } = persistences(dir)
    try {
      for (const kind of [() => memory, sqlite, idb]) {
        const persistence = kind()
        await withCluster(
          ['a', 'b', 'c'],
          { mtu: 1 },
          async (c) => {
            const a = c.node('a')
            for (let i = 0; i < 5; i++) a.set(`k${i}`, i)
            await rounds(c, 8)
            c.partition(new Set(['c']))
            a.delete('k0')
            a.set('k9', 9)
            await graceWithExchanges(c)
            c.heal()
            // c starts refetching a (mtu 1: one mapping an exchange), then restarts.
            await c.exchange('a', 'c')
            await c.exchange('c', 'a')
            await c.restart('c', 'clean')
            await rounds(c, 12)
            agree(c)
            for (let i = 1; i < 5; i++) assert.strictEqual(c.node('c').get(`k${i}`).value, i, `${persistence.name}: k${i}`)
            assert.strictEqual(c.node('c').get('k0').version, -Infinity, persistence.name)
          },
          () => persistence,
        )
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('regression: IndexedDB keeps deletes: after a reload a deleted key stays deleted and is not sent to fresh peers', async () => {
    const indexedDB = new IDBFactory()
    const cfg = { resolve: lww }
    const first = await openIdbGossip('a', cfg, 'keeps-deletes', { indexedDB, locks: null })
    first.gossip.set('k', 'v')
    first.gossip.delete('k')
    await first.store.close()
    const again = await openIdbGossip('a', cfg, 'keeps-deletes', { indexedDB, locks: null })
    assert.strictEqual(again.gossip.get('k').version, -Infinity)
    assert.strictEqual(again.gossip.history.mapping('a', 'k')?.deleted, true)
    const fresh = new Gossip('fresh', cfg)
    const s = again.gossip.createStream()
    const t = fresh.createStream()
    s.pipe(t).pipe(s)
    t.gossip()
    for (let i = 0; i < 10; i++) await turn()
    assert.strictEqual(fresh.get('k').version, -Infinity)
    assert.strictEqual(fresh.history.mapping('a', 'k')?.deleted, true)
    await again.store.close()
  })

  it('regression: a restart from nothing does not issue a collected delete again', () =>
    withCluster(['a', 'b'], {}, async (c) => {
      const a = c.node('a')
      a.set('k', 1)
      a.delete('k')
      a.set('other', 2)
      await rounds(c)
      await graceWithExchanges(c)
      assert.deepStrictEqual(c.node('b').history.get('k'), [])
      await c.restart('a', 'nothing')
      await rounds(c, 4)
      for (const g of c.nodes.values()) {
        assert.deepStrictEqual(g.history.get('k'), [], g.id)
        assert.strictEqual(g.get('other').value, 2)
      }
    }))

  it('rule 5: a horizon passed on outlives the collectors: once every node that collected a delete restarted from nothing, a write made later below its version is still refused and its writer told, not taken silently (outside model checker seeds 1607886, 2007188, 2007332)', async () => {
    // a's clock runs 10 minutes ahead: c, behind it, writes below a's delete.
    const c = await Cluster.start({ ids: ['a', 'b', 'c'], config: config(), skew: (id) => (id === 'a' ? 600_000 : 0) })
    try {
      c.node('a').delete('k')
      c.node('a').set('other', 1)
      c.partition(new Set(['c']))
      await graceWithExchanges(c)
      assert.deepStrictEqual(c.node('a').history.get('k'), [], 'a collected its delete')
      // b starts from nothing and fetches a's copy (no tombstone left in it),
      // then a starts from nothing: only b's horizon, taken from a, is left.
      await c.restart('b', 'nothing')
      await rounds(c)
      assert.strictEqual(c.node('b').get('other').value, 1)
      await c.restart('a', 'nothing')
      c.node('c').set('k', 'c wrote')
      const late: Update[][] = []
      c.node('c').on('late', (u: Update[]) => late.push(u))
      c.heal()
      await rounds(c, 4)
      assert.deepStrictEqual(late.flat().map((u) => u.key), ['k'], 'c is told its write is older than a collected delete')
      assert.strictEqual(c.node('b').get('k').version, -Infinity, 'b refuses it')
      assert.strictEqual(c.node('c').settleLate('drop'), 1)
      await rounds(c)
      agree(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k').version, -Infinity, g.id)
    } finally {
      for (const g of c.nodes.values()) g.destroy()
      c.restoreClock()
    }
  })

  it("rule 5: a horizon passed on is kept by a snapshot and said on digest ends though no update came after the digest that passed it (outside model checker seed 2119621)", async () => {
    const c = await Cluster.start({ ids: ['a', 'b', 'c'], config: config(), skew: (id) => (id === 'a' ? 600_000 : 0) })
    try {
      c.node('a').delete('k')
      c.node('a').set('other', 1)
      c.partition(new Set(['c']))
      await graceWithExchanges(c)
      const h = c.node('a').deletes.horizon
      assert.ok(h > 0, 'a collected its delete')
      await c.restart('b', 'nothing')
      await c.exchange('b', 'a') // b fetches a's copy; the horizon comes on the answer's end, after its updates
      await c.exchange('b', 'a')
      assert.strictEqual(c.node('b').snapshot().horizon, h, "b's snapshot keeps the horizon")
      await c.restart('a', 'nothing')
      await c.restart('b', 'clean') // from its snapshot: only b holds the horizon now
      c.node('c').set('k', 'c wrote') // below a's delete: c's clock is behind a's
      const late: Update[][] = []
      c.node('c').on('late', (u: Update[]) => late.push(u))
      c.heal()
      await rounds(c, 4)
      assert.deepStrictEqual(late.flat().map((u) => u.key), ['k'], 'c is told its write is older than a collected delete')
    } finally {
      for (const g of c.nodes.values()) g.destroy()
      c.restoreClock()
    }
  })

  it('attack: a forged horizon above every version its digest names is ignored and reported, not passed on: no node refuses later writes (outside red team: one digest end had every node refuse new writes for an hour)', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('a').set('x', 1)
      c.node('b').set('y', 1)
      await rounds(c)
      // A peer reads a's digest and sends it back whole, with a horizon 59 minutes ahead.
      const a = c.node('a')
      const s = a.createStream()
      const reports: string[] = []
      s.on('invalid', (_o: unknown, _reason: string, code: string) => reports.push(code))
      s.gossip()
      await turn()
      const got: Message[] = []
      for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) got.push(m)
      for (const m of got) if ('digest' in m && !('done' in m)) s.write({ digest: true, source_id: m.source_id, version: m.version })
      s.write({ digest: true, done: true, protocol: 2, horizon: c.now + 59 * 60e6 })
      await turn()
      await turn()
      assert.deepStrictEqual(reports, ['ahead'])
      s.destroy()
      await rounds(c)
      c.advance(5000)
      c.node('c').set('k', 'c wrote')
      const late: Update[][] = []
      c.node('c').on('late', (u: Update[]) => late.push(u))
      await rounds(c, 4)
      assert.deepStrictEqual(late, [])
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k').value, 'c wrote', g.id)
    }))

  it('R6: a withdrawal names the value it withdraws; a peer holding a newer value of its source keeps that value (across restarts from a snapshot, SQLite or IndexedDB) until its source, shown it, keeps or drops it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deletes-r6-'))
    try {
      let n = 0
      for (const kind of ['memory', 'sqlite', 'idb'] as const) {
        for (const choice of ['keep', 'drop'] as const) {
          const { sqlite, idb } = persistences(path.join(dir, String(n++)))
          const kept = kind === 'memory' ? memory : kind === 'sqlite' ? sqlite() : idb()
          // s restarts from nothing; a and b keep what they hold.
          await withCluster(['a', 'b', 's'], {}, (c) => r6(c, choice), (id) => (id === 's' ? memory : kept))
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }

    async function r6(c: Cluster, choice: 'keep' | 'drop'): Promise<void> {
      const both = async (x: string, y: string) => {
        await c.exchange(x, y)
        await c.exchange(y, x)
      }
      c.node('s').set('k', 'v0')
      const v0 = (c.node('s').history.mapping('s', 'k') as Update).version
      await both('s', 'a')
      c.advance(2000)
      c.node('a').delete('k')
      c.advance(2000)
      // Newer than the delete, and held by b alone.
      c.node('s').set('k', 'v1')
      await both('s', 'b')
      c.advance(2000)
      await c.restart('s', 'nothing')
      // s's past comes back from a alone (v0, which a's delete beats): s
      // settles and withdraws v0, above v1, which it never saw again.
      for (let i = 0; i < 3; i++) await both('s', 'a')
      await c.restart('a', 'clean')
      const w = c.node('a').history.mapping('s', 'k') as Update
      assert.strictEqual(w.withdrawn, true)
      assert.strictEqual(w.value, v0, 'the withdrawal names v0, restored so')
      const before = c.invalid.length
      await both('a', 'b')
      // b does not let it replace v1, nor claims s past it, after a restart too.
      await c.restart('b', 'clean')
      assert.strictEqual(c.node('b').history.mapping('s', 'k')?.value, 'v1')
      assert.ok(c.node('b').history.sources.get('s')!.max < w.version)
      assert.deepStrictEqual(c.invalid.slice(before).map(([id, reason, code]) => [id, code, /R6/.test(reason)]), [['b', 'late', true]])
      const late: Update[][] = []
      c.node('s').on('late', (u: Update[]) => late.push(u))
      await rounds(c)
      assert.deepStrictEqual(late.flat().map((u) => u.value), ['v1'])
      assert.strictEqual(c.node('s').settleLate(choice), 1)
      await rounds(c)
      agree(c)
      for (const g of c.nodes.values()) {
        if (choice === 'keep') assert.strictEqual(g.get('k').value, 'v1', g.id)
        else assert.strictEqual(g.history.mapping('s', 'k')?.withdrawn, true, g.id)
      }
      assert.deepStrictEqual(c.unsynced(), [])
    }
  })

  it('attack: a node that issues its writes again (a digest naming it above its clock) issues its markers as markers: a deleted key stays deleted', async () => {
    for (const secure of [false, true]) {
      const keys = { v: generateKeyPair(), w: generateKeyPair() }
      const publicKeys = { v: keys.v.publicKey, w: keys.w.publicKey }
      const cfg = (id: 'v' | 'w'): Config =>
        secure ? { resolve: lww, security: ed25519({ id, privateKey: keys[id].privateKey, publicKeys }) } : { resolve: lww }
      const v = new Gossip('v', cfg('v'))
      const w = new Gossip('w', cfg('w'))
      const sv = v.createStream()
      const sw = w.createStream()
      sv.pipe(sw).pipe(sv)
      const settle = async () => {
        sv.gossip()
        for (let i = 0; i < 20; i++) await turn()
      }
      v.set('doc', 'draft')
      v.set('other', 1)
      await settle()
      v.delete('doc')
      v.set('gone', 1)
      v.delete('gone')
      await settle()
      // A peer (no key, no write) says it holds v above v's clock: v issues its writes again.
      const evil = v.createStream()
      evil.resume()
      const before = v.version
      for (let i = 0; i < 3; i++) {
        evil.write({ digest: true, source_id: 'v', version: v.version + 1 })
        evil.write({ digest: true, done: true, protocol: 2 })
        for (let t = 0; t < 10; t++) await turn()
      }
      await settle()
      assert.ok(v.version > before, 'the writes went again')
      for (const g of [v, w]) {
        assert.ok(!('doc' in g.state) && !('gone' in g.state), `${g.id}${secure ? ' (signed)' : ''}: ${JSON.stringify(g.state)}`)
        assert.strictEqual(g.get('other').value, 1)
        for (const k of ['doc', 'gone']) for (const u of g.history.get(k)) assert.ok(u.deleted === true || u.withdrawn === true, `${k} is a marker`)
      }
    }
  })

  it('attack: a relay without a private key under config.security passes nothing of a source to a peer behind its collection; the peer refetches once it meets a node with a key', async () => {
    const real = Clock.now
    let now = 1.7e15
    Clock.now = () => now
    try {
      const keys = { a: generateKeyPair(), b: generateKeyPair() }
      const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
      const cfg = (id: 'a' | 'b' | 'c'): Config => ({
        resolve: lww,
        tombstone_grace: 1000,
        mtu: 3,
        security: id === 'c' ? ed25519({ id, publicKeys }) : ed25519({ id, privateKey: keys[id].privateKey, publicKeys }),
      })
      const g = { a: new Gossip('a', cfg('a')), b: new Gossip('b', cfg('b')), c: new Gossip('c', cfg('c')) }
      let links: [PeerStreamLike, PeerStreamLike, string][] = []
      const connect = (x: 'a' | 'b' | 'c', y: 'a' | 'b' | 'c') => {
        const sx = g[x].createStream({ peer: y })
        const sy = g[y].createStream({ peer: x })
        sx.pipe(sy).pipe(sx)
        links.push([sx, sy, x + y])
      }
      const cut = (name: string) => {
        for (const [sx, sy, n] of links) if (n === name) (sx.destroy(), sy.destroy())
        links = links.filter((l) => l[2] !== name)
      }
      const round = async () => {
        for (const [sx, sy] of links) (sx.gossip(), sy.gossip())
        for (let i = 0; i < 30; i++) await turn()
        now += 50_000
      }
      connect('a', 'c')
      connect('c', 'b')
      g.a.set('k2', 'old')
      for (let i = 0; i < 4; i++) await round()
      assert.strictEqual(g.b.get('k2').value, 'old')
      cut('cb')
      g.a.delete('k2')
      for (let i = 0; i < 12; i++) {
        g.a.set('tick', i)
        now += 300_000
        await round()
      }
      assert.deepStrictEqual(g.c.history.get('k2'), [], 'collected at c')
      connect('c', 'b')
      for (let i = 0; i < 8; i++) {
        g.a.set('tick', 100 + i)
        now += 300_000
        await round()
      }
      // c could not tell b (it cannot sign a notice): b's copy of a stays
      // behind the collection rather than passing it with k2 in it.
      const gc = g.a.deletes.gcOf('a') as number
      assert.ok((g.b.history.sources.get('a')?.max ?? -Infinity) < gc, "b's max of a did not pass a's collection")
      connect('a', 'b')
      for (let i = 0; i < 8; i++) {
        g.a.set('tick', 200 + i)
        now += 300_000
        await round()
      }
      for (const n of ['a', 'b', 'c'] as const) assert.strictEqual(g[n].state.k2, undefined, `${n} holds k2`)
      assert.strictEqual(g.b.get('tick').value, 207)
    } finally {
      Clock.now = real
    }
  })

  it('counters: a delete of a counter key makes every source withdraw its count; totals agree, then count up from zero', () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      counter.add(c.node('a'), 'n', 3)
      counter.add(c.node('b'), 'n', 4)
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(counter.total(g, 'n'), 7)
      c.node('c').delete('n')
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(counter.total(g, 'n'), 0)
      counter.add(c.node('a'), 'n')
      await rounds(c)
      for (const g of c.nodes.values()) assert.strictEqual(counter.total(g, 'n'), 1)
    }))

  it("every stream reports 'sync' after deletes, withdrawals and collection (the old design left digests naming versions nobody could send)", () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('a').set('x', 1)
      c.node('b').set('x', 2)
      await rounds(c)
      c.node('c').delete('x')
      await rounds(c)
      await graceWithExchanges(c)
      await rounds(c)
      assert.deepStrictEqual(c.unsynced(), [])
    }))

  it("R7: an update of a node's own id that a peer passes back after answering (a gap fill) shows nothing of the peer's copy below it: the past's value only that peer holds still reaches its source, and every node ends up holding the same of it (outside red team, B4: it stayed at that peer alone, sources disagreeing)", async () => {
    // Each seed picks what the mtu leaves out; without the rule these three
    // left n1's first life's z=5 at n2 alone (or everywhere but at n1).
    for (const seed of [26, 48, 65]) {
      const skews: Record<string, number> = { n0: -218_613, n1: -403_851, n2: 0, n3: 13_977 }
      const c = await Cluster.start({
        ids: ['n0', 'n1', 'n2', 'n3'],
        config: (id) => ({ resolve: lww, tombstone_grace: GRACE, mtu: 2, random: seeded(seed * 31 + id.charCodeAt(1)) }),
        skew: (id) => skews[id],
      })
      try {
        c.onNode((g) => g.on('late', () => g.settleLate('keep')))
        const n = (id: string) => c.node(id)
        n('n2').set('y', 2)
        n('n2').set('x', 3)
        n('n1').set('z', 5) // n1's first life: only n2 will hold it
        n('n3').set('x', 7)
        await c.exchange('n2', 'n1')
        await c.exchange('n3', 'n2')
        await c.restart('n1', 'nothing')
        await c.restart('n3', 'nothing')
        await c.exchange('n2', 'n3')
        await c.exchange('n3', 'n1')
        n('n0').delete('y')
        n('n1').delete('x')
        n('n3').set('z', 17)
        await c.exchange('n3', 'n1')
        c.advance(30_000)
        await c.exchange('n0', 'n3')
        c.advance(10_000)
        await c.exchange('n3', 'n0')
        c.advance(310_000)
        n('n2').set('z', 20)
        await c.exchange('n2', 'n3')
        await c.exchange('n0', 'n2')
        c.advance(30_000)
        await c.exchange('n2', 'n0')
        c.advance(30_000)
        await c.restart('n1', 'nothing')
        n('n1').set('y', 25)
        n('n2').set('x', 26)
        n('n0').set('y', 27)
        for (let i = 0; i < 30; i++) {
          for (const a of c.nodes.keys()) for (const b of c.nodes.keys()) if (a !== b) await c.exchange(a, b)
          c.advance(GRACE / 4)
        }
        const held = [...c.nodes.values()].map((g) => JSON.stringify(g.history.mapping('n1', 'z') ?? null))
        assert.ok(held.every((h) => h === held[0]), `seed ${seed}: n1's z\n${held.join('\n')}`)
        const sources = [...c.nodes.values()].map((g) => JSON.stringify(g.sources('z').map((u) => [u.source_id, u.version])))
        assert.ok(sources.every((s) => s === sources[0]), `seed ${seed}: sources(z)\n${sources.join('\n')}`)
        agree(c)
      } finally {
        for (const g of c.nodes.values()) g.destroy()
        c.restoreClock()
      }
    }
  })


  it("rule 5: a source asking for its past (`past`) is sent what is held of it above a held-back max; under config.security only on a stream authenticated as that source", async () => {
    const keys = { a: generateKeyPair(), b: generateKeyPair(), m: generateKeyPair() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey, m: keys.m.publicKey }
    for (const [secure, peer, sent] of [[false, undefined, true], [true, 'a', true], [true, 'm', false], [true, undefined, false]] as const) {
      const sec = (id: 'a' | 'b') => (secure ? { security: ed25519({ id, privateKey: keys[id].privateKey, publicKeys }) } : {})
      const a = new Gossip('a', { resolve: lww, ...sec('a') })
      a.set('boom', 1)
      a.set('k', 2)
      // b holds a's k above a's max (held back).
      const b = await heldBack(a, sec('b'))
      const s = b.createStream(peer === undefined ? {} : { peer })
      s.write({ digest: true, done: true, protocol: 2, past: 'a' })
      await turn()
      const keysSent: string[] = []
      for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) if (!('digest' in m) && 'key' in m && m.source_id === 'a') keysSent.push(m.key)
      assert.deepStrictEqual(keysSent, sent ? ['k'] : [], `secure ${secure}, peer ${peer}`)
      a.destroy()
      b.destroy()
    }
  })

  it('signatures: stale notices and late reports are taken only signed by a member for our latest nonce, and from the peer the stream was opened with', async () => {
    const keys = { a: generateKeyPair(), b: generateKeyPair(), m: generateKeyPair() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey, m: keys.m.publicKey }
    const sec = (id: 'a' | 'b' | 'm') => ed25519({ id, privateKey: keys[id].privateKey, publicKeys })
    const b = new Gossip('b', { resolve: lww, security: sec('b') })
    const a = new Gossip('a', { resolve: lww, security: sec('a') })
    a.set('k', 1)
    const held = a.history.mapping('a', 'k') as Update
    b.write(held)
    b.set('mine', 1)
    const mine = b.history.mapping('b', 'mine') as Update
    await turn()
    assert.strictEqual(b.get('k').value, 1)
    const said: string[] = []
    // The stream knows its peer is a: what m signed is refused.
    const s = b.createStream({ peer: 'a' })
    s.on('invalid', (_o: unknown, _r: string, code: string) => said.push(code))
    s.gossip()
    let nonce = ''
    for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) if ('done' in m && m.nonce !== undefined) nonce = m.nonce
    assert.ok(nonce.length > 0)
    const gc = held.version + 10
    const stale = new Map([['a', [gc, held.version] as const]])
    const late: [string, number][] = [['b', mine.version]]
    const signedBy = (id: 'a' | 'm', n: string, withLate = false) => sec(id).sign(noticeUpdate(id, n, stale, withLate ? late : undefined))
    let refetches = 0
    let lates = 0
    b.on('refetch', () => refetches++)
    b.on('late', () => lates++)
    const named = { digest: true, source_id: 'a', version: gc }
    // (As answers: a question would be answered with a fresh nonce.)
    const notice = { digest: true, done: true, protocol: 2, reply: true, stale: { a: [gc, held.version] } }
    s.write(named)
    s.write({ ...notice, notice_by: 'm', notice_nonce: nonce, notice_signature: signedBy('m', nonce) })
    s.write(named)
    s.write(notice)
    s.write(named)
    s.write({ ...notice, notice_by: 'a', notice_nonce: 'not-ours', notice_signature: signedBy('a', 'not-ours') })
    // A late report no member signed: our write is not reported late.
    s.write({ digest: true, done: true, protocol: 2, reply: true, late })
    // Signed, but not over the late report that came with it.
    s.write({ digest: true, done: true, protocol: 2, reply: true, late, notice_by: 'a', notice_nonce: nonce, notice_signature: signedBy('a', nonce) })
    await turn()
    assert.strictEqual(refetches, 0)
    assert.strictEqual(lates, 0)
    assert.deepStrictEqual(said, ['notice_unsigned', 'notice_unsigned', 'notice_unsigned', 'notice_unsigned', 'notice_unsigned'])
    s.write(named)
    s.write({ ...notice, late, notice_by: 'a', notice_nonce: nonce, notice_signature: signedBy('a', nonce, true) })
    await turn()
    assert.strictEqual(refetches, 1)
    assert.strictEqual(lates, 1)
  })

  it('signatures: a relay cannot turn a write of null into a delete or a withdrawal, nor forge one', async () => {
    const keys = { a: generateKeyPair(), b: generateKeyPair() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const a = new Gossip('a', { resolve: lww, security: ed25519({ id: 'a', privateKey: keys.a.privateKey, publicKeys }) })
    const b = new Gossip('b', { resolve: lww, security: ed25519({ id: 'b', privateKey: keys.b.privateKey, publicKeys }) })
    a.set('n', null)
    const signedNull = a.get('n') as Update
    const refused: string[] = []
    b.on('invalid', (_o: unknown, r: string) => refused.push(r))
    b.write({ ...signedNull, deleted: true })
    b.write({ ...signedNull, withdrawn: true })
    a.delete('gone')
    b.write({ ...(a.history.mapping('a', 'gone') as Update) })
    // R6: a withdrawal signs the version it names; a relay cannot aim it at another value.
    const sec = ed25519({ id: 'a', privateKey: keys.a.privateKey, publicKeys })
    const w = { key: 'w', value: 5, source_id: 'a', version: (a.get('n') as Update).version + 1, signature: '', withdrawn: true as const }
    w.signature = sec.sign(w)
    b.write({ ...w, value: 4 })
    b.write({ ...w, value: null })
    b.write(w)
    await turn()
    assert.strictEqual(refused.length, 4)
    assert.deepStrictEqual(b.history.get('n'), [])
    assert.strictEqual(b.history.mapping('a', 'gone')?.deleted, true)
    assert.strictEqual(b.history.mapping('a', 'w')?.value, 5)
  })
})
