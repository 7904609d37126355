/**
 * What users ask of a replication stream: to know when it is in sync and
 * how far behind each side is; streams that only send or only receive; a
 * filter that keeps a stream to some sources or keys, with digests that
 * stay truthful so the exchange settles; and watches on keys.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base } from '../lib'
import type { Message, PeerStream, Update } from '../lib'
import { Cluster } from '../lib/testing/cluster'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

/** Move what `a` and `b` queued for each other until both are quiet; returns updates moved. */
async function settle(a: PeerStream, b: PeerStream): Promise<number> {
  let updates = 0
  for (;;) {
    let moved = 0
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      for (let m = from.read() as Message | null; m !== null; m = from.read() as Message | null) {
        if (!('digest' in m)) updates++
        to.write(m)
        moved++
      }
    }
    if (moved === 0) return updates
    await turn()
  }
}

async function exchange(a: PeerStream, b: PeerStream): Promise<number> {
  a.gossip()
  return settle(a, b)
}

describe('in sync', () => {
  it("emits 'sync' once both hold the same versions of every source, with how far behind each was", async () => {
    const a = new Gossip('a', { resolve: lww, mtu: 3 })
    const b = new Gossip('b', { resolve: lww, mtu: 3 })
    for (let i = 0; i < 7; i++) a.set(`a${i}`, i)
    for (let i = 0; i < 2; i++) b.set(`b${i}`, i)
    const sa = a.createStream()
    const sb = b.createStream()
    const seen: { them: number; us: number }[] = []
    sa.on('sync', (p) => seen.push(p))
    let synced = 0
    a.on('synced', () => synced++)
    await exchange(sa, sb)
    // a asked: b lacked 7 of a's (a counted), a lacked 2 of b's (b said so
    // on its reply); b knows only what a lacked (a's question says nothing)
    assert.deepStrictEqual(sa.behind, { them: 7, us: 2 })
    assert.strictEqual(sb.behind.them, 2)
    assert.strictEqual(sa.synced, false)
    for (let r = 0; r < 5 && !sa.synced; r++) await exchange(sa, sb)
    assert.strictEqual(sa.synced, true)
    assert.deepStrictEqual(sa.behind, { them: 0, us: 0 })
    assert.deepStrictEqual(seen, [{ them: 0, us: 0 }])
    assert.strictEqual(synced, 1, "the node's 'synced' once its only stream is in sync")
    // a new write: out of sync until the next exchange carries it
    a.set('late', 1)
    await exchange(sa, sb)
    await exchange(sa, sb)
    assert.strictEqual(b.get('late').value, 1)
    assert.strictEqual(sa.synced, true)
  })

  it("the node emits 'synced' only once every stream is in sync", async () => {
    const hub = new Gossip('hub', { resolve: lww })
    const p = new Gossip('p', { resolve: lww })
    const q = new Gossip('q', { resolve: lww })
    const hp = hub.createStream()
    const hq = hub.createStream()
    const ph = p.createStream()
    const qh = q.createStream()
    let synced = 0
    hub.on('synced', () => synced++)
    p.set('x', 1)
    q.set('y', 2)
    for (let r = 0; r < 4; r++) {
      await exchange(hp, ph)
      if (r === 1) assert.strictEqual(synced, 0, 'q has not exchanged yet')
      await exchange(hq, qh)
    }
    // both in sync; p and q each caught up with the other through the hub
    for (let r = 0; r < 3; r++) {
      await exchange(hp, ph)
      await exchange(hq, qh)
    }
    assert.ok(hp.synced && hq.synced)
    assert.ok(synced >= 1)
  })
})

describe('one-way streams', () => {
  it("a replica's writes never reach the primary through a stream that takes none; the replicas converge", async () => {
    const primary = new Gossip('primary', { resolve: lww })
    const replicas = [new Gossip('r1', { resolve: lww }), new Gossip('r2', { resolve: lww })]
    const links = replicas.map((r) => [primary.createStream({ writable: false }), r.createStream()] as const)
    const refused: string[] = []
    for (const [ps] of links) ps.on('invalid', (_o: unknown, why: string) => refused.push(why))
    primary.set('config', { v: 1 })
    replicas[0].set('replica-only', 'r1 wrote it')
    for (let r = 0; r < 3; r++) {
      for (const [ps, rs] of links) {
        await exchange(ps, rs)
        await exchange(rs, ps)
      }
    }
    for (const r of replicas) assert.deepStrictEqual(r.get('config').value, { v: 1 })
    assert.strictEqual(primary.get('replica-only').version, -Infinity, "the replica's write reached the primary")
    assert.deepStrictEqual(refused, [], 'the replica was told, and sent nothing')
    // a peer that ignores the announcement is refused
    links[0][0].write({ key: 'forced', value: 1, source_id: 'r1', version: 1 } as Message)
    await turn()
    assert.strictEqual(primary.get('forced').version, -Infinity)
    assert.match(refused[0], /takes no updates/)
    // nor a local write, which would come back as the primary's own (attack found it)
    links[0][0].write({ key: 'leak', value: 1 } as unknown as Message)
    await turn()
    assert.strictEqual(primary.get('leak').version, -Infinity)
    assert.match(refused[1], /takes no updates/)
  })

  for (const both of [true, false]) {
    it(`a one-way link is in sync once the receiving end holds what the sender does (${both ? 'both ends say so' : 'only the receiving end says readable: false'}; attack found it)`, async () => {
      const a = new Gossip('a', { resolve: lww })
      const b = new Gossip('b', { resolve: lww })
      a.set('a-only', 1)
      b.set('b-data', 2)
      const sa = a.createStream({ readable: false })
      const sb = b.createStream(both ? { writable: false } : {})
      const events: string[] = []
      sa.on('sync', () => events.push('sa sync'))
      sb.on('sync', () => events.push('sb sync'))
      a.on('synced', () => events.push('a synced'))
      b.on('synced', () => events.push('b synced'))
      for (let r = 0; r < 3; r++) {
        await exchange(sa, sb)
        await exchange(sb, sa)
      }
      assert.strictEqual(a.get('b-data').value, 2)
      assert.strictEqual(b.get('a-only').version, -Infinity)
      assert.deepStrictEqual([...events].sort(), ['a synced', 'b synced', 'sa sync', 'sb sync'])
      assert.deepStrictEqual([sa.behind, sb.behind], [{ them: 0, us: 0 }, { them: 0, us: 0 }])
      // A new write on the sending end: out of sync until it crossed.
      b.set('more', 3)
      await exchange(sb, sa)
      assert.ok(!sb.synced, 'b knows a lacks its new write')
      await exchange(sa, sb)
      assert.strictEqual(a.get('more').value, 3)
      await exchange(sb, sa)
      assert.ok(sa.synced && sb.synced)
    })
  }

  it('a stream that sends nothing receives, and sends its digests', async () => {
    const a = new Gossip('a', { resolve: lww })
    const b = new Gossip('b', { resolve: lww })
    const sa = a.createStream({ readable: false })
    const sb = b.createStream()
    a.set('a-only', 1)
    b.set('b-data', 2)
    for (let r = 0; r < 3; r++) {
      await exchange(sa, sb)
      await exchange(sb, sa)
    }
    assert.strictEqual(a.get('b-data').value, 2)
    assert.strictEqual(b.get('a-only').version, -Infinity)
  })
})

describe('filters', () => {
  const prefix = { prefixes: ['public/'] }

  it('a filter at one end only: the other end never claims what was kept out, so a third node still gets it (attack found it)', async () => {
    const a = new Gossip('a', { resolve: lww })
    const c = new Gossip('c', { resolve: lww })
    const d = new Gossip('d', { resolve: lww })
    const e = new Gossip('e', { resolve: lww })
    a.set('private/x', 'x')
    a.set('public/y', 'y')
    await exchange(a.createStream(), c.createStream()).then(async () => undefined)
    const ac = [a.createStream(), c.createStream()] as const
    await exchange(ac[1], ac[0])
    await exchange(ac[0], ac[1])
    // c serves d public keys only; d's end has no filter, and asks first.
    const cd = c.createStream({ filter: prefix })
    const dc = d.createStream()
    for (let r = 0; r < 3; r++) {
      await exchange(dc, cd)
      await exchange(cd, dc)
    }
    assert.deepStrictEqual(Object.keys(d.state), ['public/y'])
    assert.ok((d.history.sources.get('a')?.max ?? -Infinity) < (a.get('private/x') as Update).version + 1)
    // d tells e what it holds of a; e then meets a directly.
    const de = [d.createStream(), e.createStream()] as const
    for (let r = 0; r < 2; r++) await exchange(de[1], de[0])
    const ea = [e.createStream(), a.createStream()] as const
    for (let r = 0; r < 3; r++) {
      await exchange(ea[0], ea[1])
      await exchange(ea[1], ea[0])
    }
    assert.strictEqual(e.get('private/x').value, 'x', 'e never got what d claimed to hold')
  })

  it('a stream filtered to a key prefix carries only those keys, both ways, and the exchange settles', async () => {
    const a = new Gossip('a', { resolve: lww, mtu: 4 })
    const b = new Gossip('b', { resolve: lww, mtu: 4 })
    for (let i = 0; i < 6; i++) {
      a.set(`public/a${i}`, i)
      a.set(`private/a${i}`, i)
      b.set(`private/b${i}`, i)
    }
    b.set('public/b', 'x')
    const sa = a.createStream({ filter: prefix })
    const sb = b.createStream() // b applies what a's end markers announce
    let moved = 0
    for (let r = 0; r < 8; r++) moved = (await exchange(sa, sb)) + (await exchange(sb, sa))
    assert.strictEqual(moved, 0, 'the exchange settled')
    for (let i = 0; i < 6; i++) {
      assert.strictEqual(b.get(`public/a${i}`).value, i)
      assert.strictEqual(b.get(`private/a${i}`).version, -Infinity, 'a private key left a')
      assert.strictEqual(a.get(`private/b${i}`).version, -Infinity, 'a private key reached a')
    }
    assert.strictEqual(a.get('public/b').value, 'x')
    assert.ok(sa.synced, 'in sync through the filter')
  })

  it("a filtered feed never makes the node's digest claim what it kept out (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ pub: fc.boolean(), i: fc.nat({ max: 9 }), v: fc.nat() }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 5 }),
        async (writes, mtu) => {
          // src writes public and private keys; mid takes only public ones
          // from src, and passes them on to full through the same filter;
          // neither may come to believe it holds src's private keys it
          // lacks: a later direct, unfiltered exchange with src brings them.
          const src = new Gossip('src', { resolve: lww, mtu })
          const mid = new Gossip('mid', { resolve: lww, mtu })
          const full = new Gossip('full', { resolve: lww, mtu })
          for (const w of writes) src.set(`${w.pub ? 'public/' : 'private/'}${w.i}`, w.v)
          const s1 = src.createStream()
          const m1 = mid.createStream({ filter: prefix })
          const m2 = mid.createStream({ filter: prefix })
          const f2 = full.createStream({ filter: prefix })
          for (let r = 0; r < 3 * writes.length + 4; r++) {
            await exchange(m1, s1)
            await exchange(f2, m2)
          }
          // every public key reached full, through mid
          for (const w of writes) if (w.pub) assert.strictEqual(full.get(`public/${w.i}`).value, src.get(`public/${w.i}`).value)
          // neither node's max for src passes a mapping of src it lacks
          for (const node of [mid, full]) {
            const max = node.history.sources.get('src')?.max ?? -Infinity
            for (const u of src.history._mappings()) {
              const held = node.history.mapping('src', u.key)
              assert.ok(held !== undefined || u.version > max, `${node.id} claims src up to ${max} but lacks ${u.key}@${u.version}`)
            }
          }
          // so an unfiltered exchange with src brings full everything
          const s3 = src.createStream()
          const f3 = full.createStream()
          for (let r = 0; r < 2 * writes.length + 4; r++) await exchange(f3, s3)
          for (const u of src.history._mappings()) assert.strictEqual(full.get(u.key).value, u.value)
        },
      ),
      { numRuns: 100 },
    )
  })

  it('a stream can block a source', async () => {
    const a = new Gossip('a', { resolve: lww })
    const b = new Gossip('b', { resolve: lww })
    a.write({ key: 'from-evil', value: 1, source_id: 'evil', version: a.version + 1 })
    a.set('fine', 2)
    const sa = a.createStream()
    const sb = b.createStream({ filter: { exclude_sources: ['evil'] } })
    for (let r = 0; r < 3; r++) await exchange(sb, sa)
    assert.strictEqual(b.get('fine').value, 2)
    assert.strictEqual(b.get('from-evil').version, -Infinity)
    assert.throws(() => a.createStream({ filter: { prefixes: 'x' } as never }), /filter\.prefixes/)
  })
})

describe('watches', () => {
  it('calls back on changes of one key or a prefix, saying local, remote or delete', async () => {
    const a = new Gossip('a', { resolve: lww })
    const b = new Gossip('b', { resolve: lww })
    const one: [string, unknown, string][] = []
    const all: [string, unknown, string][] = []
    const stop = a.watch('users/ann', (key, entry, how) => one.push([key, entry?.value, how]))
    a.watch({ prefix: 'users/' }, (key, entry, how) => all.push([key, entry?.value, how]))
    a.set('users/ann', 1)
    a.set('other', 0)
    b.set('users/bob', 2)
    const sa = a.createStream()
    const sb = b.createStream()
    await exchange(sa, sb)
    a.delete('users/ann')
    stop()
    a.set('users/ann', 3)
    assert.deepStrictEqual(one, [
      ['users/ann', 1, 'local'],
      ['users/ann', undefined, 'delete'],
    ])
    assert.deepStrictEqual(all, [
      ['users/ann', 1, 'local'],
      ['users/bob', 2, 'remote'],
      ['users/ann', undefined, 'delete'],
      ['users/ann', 3, 'local'],
    ])
    void (b.get('users/bob') as Update)
    // numeric keys, as set takes them
    const n: unknown[] = []
    a.watch(5, (key, entry) => n.push([key, entry?.value]))
    a.set(5, 'five')
    assert.deepStrictEqual(n, [['5', 'five']])
  })

  it('reports one delete once: not again when its tombstone is collected, nor when a second delete replaces it', async () => {
    const a = new Gossip('a', { resolve: lww, tombstone_grace: 0 })
    const b = new Gossip('b', { resolve: lww })
    const seen: string[] = []
    a.watch('k', (_key, _entry, how) => seen.push(how))
    a.set('k', 1)
    a.delete('k')
    b.delete('k')
    const sa = a.createStream()
    const sb = b.createStream()
    await exchange(sa, sb)
    await new Promise((r) => setTimeout(r, 2))
    await exchange(sa, sb) // collects
    assert.deepStrictEqual(a.sources('k'), [])
    assert.deepStrictEqual(seen, ['local', 'delete'])
  })

  it("a listener that throws is reported as 'invalid' on the node: exchanges, refetches and collections go on (attack found it)", async () => {
    const grace = 60_000
    const cluster = await Cluster.start({ ids: ['a', 'b', 'c'], config: () => ({ resolve: lww, tombstone_grace: grace }) })
    try {
      const b = cluster.node('b')
      const said: string[] = []
      b.on('invalid', (_o: unknown, reason: string) => said.push(reason))
      b.watch({ prefix: '' }, () => {
        throw new Error('boom')
      })
      // the listeners after it still hear every change (an attack found them starved)
      const heard: string[] = []
      b.watch({ prefix: '' }, (key, _entry, how) => heard.push(`${how} ${key}`))
      const a = cluster.node('a')
      for (const k of ['x', 'y', 'z']) a.set(k, k)
      await cluster.exchange('a', 'b')
      // b away while a deletes y and, hearing from c, collects the delete
      // (a later write keeps it from being a's newest): b's copy of a is
      // stale when it comes back, and it refetches a, its listener throwing
      // at the key the refetch drops.
      cluster.partition(new Set(['b']))
      a.delete('y')
      a.set('w', 'w')
      for (let i = 0; i < 4; i++) {
        cluster.advance(grace / 2)
        await cluster.exchange('a', 'c')
      }
      assert.deepStrictEqual(a.history.get('y'), [])
      let refetches = 0
      b.on('refetch', () => refetches++)
      cluster.heal()
      for (let i = 0; i < 3; i++) {
        await cluster.exchange('a', 'b')
        await cluster.exchange('b', 'a')
      }
      assert.strictEqual(refetches, 1)
      assert.deepStrictEqual(Object.keys(b.state).sort(), ['w', 'x', 'z'])
      assert.ok(heard.includes('remote x') && heard.includes('remote y') && heard.includes('delete y'), heard.join(', '))
      assert.ok(said.length >= 4 && said.every((r) => r === "a 'change' listener threw: boom"), said.join('; '))
    } finally {
      cluster.restoreClock()
    }
  })

  it("leaves 'update' as the original had it: every update written, whether or not it changed state", async () => {
    const g = new Gossip('n', { resolve: base.resolution.strictly_order_values })
    const updates: unknown[] = []
    const changes: unknown[] = []
    g.history.on('update', (u: Update, resolved: boolean) => updates.push([u.value, resolved]))
    g.on('change', (_k: string, e: Update | undefined) => changes.push(e?.value))
    g.write({ key: 'k', value: 5, source_id: 'p', version: 1 })
    g.write({ key: 'k', value: 3, source_id: 'q', version: 2 })
    await turn()
    assert.deepStrictEqual(updates, [
      [5, true],
      [3, false],
    ])
    assert.deepStrictEqual(changes, [5])
  })
})
