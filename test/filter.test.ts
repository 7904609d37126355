/**
 * Stream filters (lib/filter.ts): a filter that keeps a stream to some
 * sources or keys, both ways, with digests that stay truthful so the
 * exchange settles.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base } from '../lib'
import type { Update } from '../lib'
import { exchange } from './net'

const lww = base.resolution.lww_vs_current_vers

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
            for (const u of src.history.mappings()) {
              const held = node.history.mapping('src', u.key)
              assert.ok(held !== undefined || u.version > max, `${node.id} claims src up to ${max} but lacks ${u.key}@${u.version}`)
            }
          }
          // so an unfiltered exchange with src brings full everything
          const s3 = src.createStream()
          const f3 = full.createStream()
          for (let r = 0; r < 2 * writes.length + 4; r++) await exchange(f3, s3)
          for (const u of src.history.mappings()) assert.strictEqual(full.get(u.key).value, u.value)
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
