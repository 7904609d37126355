/**
 * Restoring a node from what it saved (lib/snapshot.ts), on the restart
 * path of issue 23: restored in bulk (each source's log sorted once), a
 * snapshot gives the same node whatever the order of its updates, and a
 * store restarts into the node it saved.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import fc from 'fast-check'
import { Clock, Gossip } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import type { Snapshot, Update } from '../lib'
import { exchange, lww } from './net'

describe('restart path', () => {
  // Snapshots of several sources writing overlapping keys, deletes among them.
  const snapshots = fc
    .record({
      writes: fc.array(
        fc.record({ key: fc.integer({ min: 0, max: 700 }), source: fc.constantFrom('a', 'a', 'a', 'b', 'c'), del: fc.boolean() }),
        { minLength: 1, maxLength: 3000 },
      ),
      max_history: fc.constantFrom(Infinity, 1000, 7, 300),
    })
    .map(({ writes, max_history }) => {
      // Versions distinct per source; several mappings of a key by one source: the newest counts.
      const updates: Update[] = writes.map((w, i) => {
        const u: Update = { key: `k${w.key}`, value: w.del ? null : i, source_id: w.source, version: 1_700_000_000_000_000 + i * 3 }
        return w.del ? { ...u, deleted: true } : u
      })
      return { snapshot: { version: 1_700_000_000_000_000 + writes.length * 3, updates } as Snapshot, max_history }
    })

  function view(g: Gossip): unknown {
    const sources = [...g.history.sources.keys()].sort()
    return {
      state: JSON.stringify(Object.fromEntries(Object.keys(g.state).sort().map((k) => [k, g.state[k]]))),
      live: g.history.liveCount,
      resolved: g.history._resolvedCount,
      // What each source's log answers, from the start and from its middle.
      news: sources.map((id) => {
        const all = g.history.news(id, -Infinity)
        const mid = all.length === 0 ? 0 : all[all.length >> 1].version
        return [id, all.map((u) => `${u.key}@${u.version}`), g.history.news(id, mid, 5).map((u) => u.version)]
      }),
      length: g.history.length,
    }
  }

  it('property: a restore gives the same node whatever the order of the updates (grouped by key, by version, shuffled)', () => {
    fc.assert(
      fc.property(snapshots, fc.integer(), ({ snapshot, max_history }, seed) => {
        const config = lww({ max_history })
        const byKey = [...snapshot.updates].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.source_id < y.source_id ? -1 : 1))
        const byVersion = [...snapshot.updates].sort((x, y) => x.version - y.version)
        let r = seed
        const shuffled = [...snapshot.updates].sort(() => ((r = (r * 1103515245 + 12345) | 0) & 1 ? 1 : -1))
        // The same clock for each (a restore may write: see docs/deletes.md).
        const now = Clock.now
        let views: unknown[]
        try {
          views = [byKey, byVersion, shuffled].map((updates) => {
            Clock.now = () => 1_800_000_000_000
            return view(Gossip.restore('z', config, { ...snapshot, updates }))
          })
        } finally {
          Clock.now = now
        }
        assert.deepStrictEqual(views[1], views[0])
        assert.deepStrictEqual(views[2], views[0])
        // Each source's news is its newest mapping of each key, in version order.
        const g = Gossip.restore('z', config, { ...snapshot, updates: shuffled })
        for (const id of ['a', 'b', 'c']) {
          const newest = new Map<string, Update>()
          for (const u of snapshot.updates) if (u.source_id === id && (newest.get(u.key)?.version ?? -1) < u.version) newest.set(u.key, u)
          const expected = [...newest.values()].sort((x, y) => x.version - y.version).map((u) => `${u.key}@${u.version}`)
          assert.deepStrictEqual(g.history.news(id, -Infinity).map((u) => `${u.key}@${u.version}`), expected)
        }
        // And later writes go on as on any node.
        g.set('k1', 'again')
        assert.strictEqual(g.get('k1').value, 'again')
        assert.ok(g.history.length <= Math.max(max_history, 1))
      }),
      { numRuns: 60 },
    )
  })

  it('attack (fourth outside attack on issue 21): a node restored from an old backup of its state re-issued the writes of the backup above the newer writes its later run made (every node lost them, deletes came back); required: what its id wrote since the backup stands', async () => {
    const a = new Gossip('a', lww())
    const round = async (d: Gossip, times = 3): Promise<void> => {
      const sa = a.createStream()
      const sd = d.createStream()
      for (let i = 0; i < times; i++) {
        await exchange(sd, sa)
        await exchange(sa, sd)
      }
    }
    // d starts without state, writes, and its state is backed up.
    const d1 = new Gossip('d', lww())
    for (let i = 0; i < 5; i++) d1.set(`r${i}`, 'old')
    d1.set('gone', 'old')
    await round(d1)
    const backup = JSON.parse(JSON.stringify(d1.snapshot())) as Snapshot
    // Restarted from it, d writes newer values and a delete, which a takes.
    const d2 = Gossip.restore('d', lww(), d1.snapshot())
    await round(d2)
    for (let i = 0; i < 5; i++) d2.set(`r${i}`, 'mid')
    d2.delete('gone')
    await round(d2)
    assert.strictEqual(a.get('r0').value, 'mid')
    // The old backup put back: d takes back from a what was written after it.
    const d3 = Gossip.restore('d', lww(), backup)
    await round(d3, 6)
    for (const g of [a, d3]) {
      for (let i = 0; i < 5; i++) assert.strictEqual(g.get(`r${i}`).value, 'mid', `${g.id}: r${i}`)
      assert.strictEqual(g.state.gone, undefined, `${g.id}: gone came back`)
    }
  })

  it('a store restarts into the node it saved: rows read in pages, restored in bulk', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-restore-'))
    try {
      const n = 10_000 // more than two pages of rows
      const first = openGossip('a', lww({ max_history: Infinity }), dir)
      const peer = new Gossip('b', lww())
      for (let i = 0; i < n; i++) first.gossip.set(`k${i}`, i % 3 === 0 ? { i } : i)
      for (let i = 0; i < 50; i++) first.gossip.delete(`k${i * 7}`)
      for (let i = 0; i < 300; i++) {
        peer.set(`k${i * 5}`, `b${i}`)
        const u = peer.get(`k${i * 5}`) as Update
        first.gossip.write({ key: u.key, value: u.value, source_id: u.source_id, version: u.version })
      }
      const before = view(first.gossip)
      await first.store.close()
      const again = openGossip('a', lww({ max_history: Infinity }), dir)
      try {
        assert.deepStrictEqual(view(again.gossip), before)
      } finally {
        await again.store.close()
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
