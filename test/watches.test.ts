/**
 * Watches (lib/watches.ts): callbacks on changes of one key or a prefix,
 * saying local, remote or delete; and the original's 'update' event.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import type { Update } from '../lib'
import { Cluster } from '../lib/testing/cluster'
import { exchange } from './net'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

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
