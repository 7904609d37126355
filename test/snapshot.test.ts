/**
 * The restart path (issue 23): a store's rows are summed without building
 * their text, read back in key order, and restored in bulk (each source's
 * log sorted once). Each shortcut gives what the plain way gives.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import * as zlib from 'zlib'
import fc from 'fast-check'
import { Clock, Gossip } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import type { Snapshot, Update } from '../lib'
import { sortByVersion } from '../lib/history'
import { rowCrc } from '../lib/node/store'
import { lww } from './net'

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  // Lone and paired surrogates, and the characters around them.
  fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)) }),
  fc.string({ minLength: 250, maxLength: 600 }),
)
const version = fc.oneof(
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, 1e8 - 1, 1e8, 1e8 + 1, 99_999_999_999_999, 1e15, 2 ** 53 - 1, 1_733_555_555_000_000),
  fc.double(),
)

describe('restart path', () => {
  it('property: rowCrc is the CRC-32 of the row text (key, source, version, value, signature, NUL between) in UTF-8', () => {
    fc.assert(
      fc.property(text, text, version, text, fc.option(text), (k, s, v, value, sig) => {
        const expected = zlib.crc32(`${k}\u0000${s}\u0000${v}\u0000${value}\u0000${sig ?? ''}`)
        assert.strictEqual(rowCrc(k, s, v, value, sig), expected)
      }),
      { numRuns: 2000 },
    )
  })

  it('property: sortByVersion sorts as a stable comparison sort would, in order or not, by radix or not', () => {
    const versions = fc.oneof(
      fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 1500 }),
      fc.array(fc.integer({ min: 1_700_000_000_000_000, max: 1_700_000_000_000_000 + 2 ** 40 }), { minLength: 500, maxLength: 1500 }),
      fc.array(fc.oneof(fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.constant(2 ** 53 - 1)), { minLength: 500, maxLength: 1200 }),
      fc.array(fc.double({ noNaN: true }), { maxLength: 800 }),
    )
    fc.assert(
      fc.property(versions, fc.boolean(), (vs, presorted) => {
        if (presorted) vs.sort((a, b) => a - b)
        const list: Update[] = vs.map((v, i) => ({ key: `k${i}`, value: i, source_id: 'a', version: v }))
        const expected = [...list].sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0))
        const inOrder = list.every((u, i) => i === 0 || list[i - 1].version <= u.version)
        const moved = sortByVersion(list)
        assert.deepStrictEqual(list, expected)
        assert.strictEqual(moved, !inOrder)
      }),
      { numRuns: 200 },
    )
  })

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
      live: g.history._liveCount,
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
