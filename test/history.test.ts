/**
 * The history is the paper's mu: it answers `news(id, version)` exactly as a
 * scan of every source's newest mapping of each key would, whatever was
 * replaced, swept or forgotten.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { base, Gossip, History } from '../lib'
import type { Missing, Update } from '../lib'
import { sortByVersion } from '../lib/history'
import { isMembershipKey } from '../lib/membership'
import { Cluster } from '../lib/testing/cluster'

// mu as a model: (source, key) -> the newest update written.
type Mu = Map<string, Update>

function expectedNews(mu: Mu, id: string, version: number): Update[] {
  return [...mu.values()].filter((u) => u.source_id === id && u.version > version).sort((a, b) => a.version - b.version)
}

describe('History', () => {
  it('news equals a version-ordered scan of the state, after any writes and compactions', () => {
    fc.assert(
      fc.property(
        // a source never issues a version twice
        fc.uniqueArray(
          fc.record({
            key: fc.nat({ max: 40 }),
            source: fc.constantFrom('p', 'q', 'r'),
            version: fc.nat({ max: 300 }),
          }),
          { maxLength: 300, selector: (w) => `${w.source}:${w.version}` },
        ),
        fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constant(Infinity)),
        fc.nat({ max: 300 }),
        fc.integer({ min: 1, max: 30 }),
        (writes, max_history, from, limit) => {
          const h = new History(max_history)
          const mu: Mu = new Map()
          for (const w of writes) {
            const u = h.write(`k${w.key}`, w.version, w.source, w.version)
            const at = `${w.source}/k${w.key}`
            const before = mu.get(at)
            if (before === undefined || before.version < w.version) mu.set(at, u)
            // Searches between writes: a log's search samples, built by
            // one, must follow the inserts, sweeps and compactions after it.
            for (const v of [from, w.version - 1 - (w.key % 7)]) {
              assert.deepStrictEqual(h.news(w.source, v, limit), expectedNews(mu, w.source, v).slice(0, limit))
            }
          }
          assert.ok(h.length <= max_history)
          for (const id of ['p', 'q', 'r', 'nobody']) {
            for (const v of [-1, from]) {
              const want = expectedNews(mu, id, v)
              assert.deepStrictEqual(h.news(id, v), want)
              assert.deepStrictEqual(h.news(id, v, limit), want.slice(0, limit))
              assert.ok(h.waiting(id, v) >= want.length)
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('replaces an older update of the same key and source', () => {
    const h = new History()
    h.write('k', 1, 's', 1)
    h.write('k', 2, 's', 2)
    assert.deepStrictEqual(h.news('s', 0).map((u) => u.value), [2])
    assert.strictEqual(h.length, 1)
    assert.strictEqual(h.sources.get('s')?.live, 1)
  })

  it("emits 'compaction' with the updates it is about to forget, oldest first", () => {
    const h = new History(4)
    const forgotten: number[][] = []
    h.on('compaction', (memory: Update[], history: History) => {
      assert.strictEqual(history, h)
      // still answerable from the log at the moment of the event
      assert.ok(memory.every((u) => h.news(u.source_id, u.version - 1, 1)[0] === u))
      forgotten.push(memory.map((u) => u.version))
    })
    for (let v = 1; v <= 6; v++) h.write(`k${v}`, v, 's', v)
    assert.deepStrictEqual(forgotten, [[1, 2]])
    assert.strictEqual(h.sources.get('s')?.floor, 2)
    assert.deepStrictEqual(h.news('s', 0).map((u) => u.version), [1, 2, 3, 4, 5, 6])
  })

  it('finds an update by exact version with at()', () => {
    const h = new History()
    h.write('a', 1, 's', 3)
    h.write('b', 1, 's', 7)
    assert.strictEqual(h.at('s', 7)?.key, 'b')
    assert.strictEqual(h.at('s', 5), undefined)
    assert.strictEqual(h.at('t', 7), undefined)
  })

  it('sweeps replaced updates, so a hot key does not grow its log', () => {
    for (const max_history of [Infinity, 5000]) {
      const h = new History(max_history)
      h.write('cold', 0, 's', 1)
      for (let v = 2; v < 3000; v++) h.write('hot', v, 's', v)
      const log = h.sources.get('s')
      assert.ok(log !== undefined && log.updates.length < 100, `log holds ${log?.updates.length}`)
      assert.deepStrictEqual(h.news('s', 0).map((u) => u.key), ['cold', 'hot'])
      assert.strictEqual(h.length, 2)
    }
  })

  it("a node's history answers entry(key), entries() and mappings() (what stores and the state read), a delete's entry included", async () => {
    const resolve = base.resolution.lww_vs_current_vers
    const a = new Gossip('a', { resolve })
    const b = new Gossip('b', { resolve })
    a.set('x', 1)
    b.set('x', 2)
    b.set('y', 3)
    a.pipe(b).pipe(a)
    b.gossip()
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
    a.delete('y')
    const h = a.history
    assert.deepStrictEqual(h.entry('x'), a.get('x'))
    assert.strictEqual(h.entry('y')?.deleted, true)
    assert.strictEqual(h.entry('z'), undefined)
    assert.deepStrictEqual([...h.entries()].map((u) => `${u.key}:${u.source_id}`).sort(), ['x:b', 'y:a'])
    assert.deepStrictEqual([...h.mappings()].map((u) => `${u.key}:${u.source_id}`).sort(), ['x:a', 'x:b', 'y:a', 'y:b'])
  })

  it("resolve's get of the key it is asked about sees the key's entry, a delete included, and reads afresh once the history takes a write", () => {
    const seen: unknown[] = []
    const show = (u: Update | Missing): unknown => (u.version === -Infinity ? 'missing' : (u as Update).deleted === true ? 'deleted' : u.value)
    let once = true
    const g: Gossip = new Gossip('a', {
      resolve: (_ctx, u) => {
        const cur = g.get(u.key)
        seen.push(show(cur))
        if (u.value === 2 && once) {
          // A write that asks no resolve: only the history's count of writes tells.
          once = false
          g.history.write('k', 'z', 'z', cur.version + 1)
          seen.push(show(g.get(u.key)))
        }
        return u.version > cur.version
      },
    })
    g.set('k', 1)
    g.delete('k')
    g.set('k', 2)
    assert.deepStrictEqual(seen, ['missing', 1, 'deleted', 'z'])
  })

  it('refuses a max_history below 1', () => {
    assert.throws(() => new History(0), RangeError)
  })

  it("property: liveCount, kept as writes come, is the number of the state's keys that are not membership keys, after sets, deletes, exchanges, collection and restarts", async function () {
    this.timeout(60_000)
    const keys = ['a', 'b', 'c', 'member/x', 'heartbeat/y', 'memo', 'h']
    const op = fc.oneof(
      fc.record({ set: fc.constantFrom(...keys), at: fc.constantFrom('p', 'q') }),
      fc.record({ del: fc.constantFrom(...keys), at: fc.constantFrom('p', 'q') }),
      fc.record({ round: fc.constant(true) }),
      fc.record({ advance: fc.constantFrom(1_000, 40_000) }),
      fc.record({ restart: fc.constantFrom('p', 'q') }),
    )
    const walk = (g: { state: object }): number => Object.keys(g.state).filter((k) => !isMembershipKey(k)).length
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const c = await Cluster.start({ ids: ['p', 'q'], config: () => ({ resolve: base.resolution.lww_vs_current_vers, tombstone_grace: 30_000 }) })
        try {
          let value = 0
          for (const o of ops) {
            if ('set' in o) c.node(o.at).set(o.set, ++value)
            else if ('del' in o) c.node(o.at).delete(o.del)
            else if ('round' in o) await c.round()
            else if ('advance' in o) {
              c.advance(o.advance)
              await c.round()
            } else await c.restart(o.restart, 'clean')
            for (const g of c.nodes.values()) assert.strictEqual(g.history.liveCount, walk(g), `${g.id} after ${JSON.stringify(o)}`)
          }
        } finally {
          for (const g of c.nodes.values()) g.destroy()
          c.restoreClock()
        }
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 60) },
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
})
