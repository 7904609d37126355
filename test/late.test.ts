/**
 * Late values (lib/late.ts; docs/deletes.md, rules 5 and 7): what is
 * refused as late at or below a horizon, and how its writer settles it
 * (keep or drop). Deletes as a whole are in deletes.test.ts.
 */
import * as assert from 'assert'
import type { Update } from '../lib'
import { Cluster } from '../lib/testing/cluster'
import { Clock } from '../lib/clock'
import { agree, config, graceWithExchanges, GRACE, rounds, turn, withCluster } from './deletes-cluster'

describe('late values (lib/late.ts: rules 5 and 7)', function () {
  this.timeout(20_000)

  it('rule 5 and 7: a node away past the grace has its writes older than a collected delete refused as late; keep writes them again, drop withdraws them', async () => {
    for (const choice of ['keep', 'drop'] as const) {
      await withCluster(['a', 'b', 'c'], {}, async (c) => {
        c.node('c').set('shared', 'before')
        await rounds(c)
        c.partition(new Set(['c']))
        // c writes while away; a deletes doomed, which it never saw c write,
        // and, hearing from b, collects the delete.
        c.node('c').set('doomed', 'c wrote')
        c.node('c').set('offline', 'c wrote while away')
        // Later by the wall clock (past Clock.SLACK, so a's version says so).
        c.advance(2000)
        c.node('a').delete('doomed')
        c.node('a').set('after', 1)
        await graceWithExchanges(c)
        const late: Update[][] = []
        c.node('c').on('late', (u: Update[]) => late.push(u))
        c.heal()
        await rounds(c)
        // c learned that its offline write (and its write of doomed, which
        // the collected delete beat) are refused as late; nothing is lost
        // or brought back until it chooses.
        assert.deepStrictEqual(
          late.flat().map((u) => u.key).sort(),
          ['doomed', 'offline'],
        )
        assert.strictEqual(c.node('a').get('offline').version, -Infinity)
        assert.strictEqual(c.node('a').get('doomed').version, -Infinity)
        assert.strictEqual(c.node('c').settleLate(choice), 2)
        await rounds(c)
        agree(c)
        for (const g of c.nodes.values()) {
          if (choice === 'keep') {
            assert.strictEqual(g.get('offline').value, 'c wrote while away')
            assert.strictEqual(g.get('doomed').value, 'c wrote', 'kept: it now wins over the old delete')
          } else {
            assert.strictEqual(g.get('offline').version, -Infinity)
            assert.strictEqual(g.get('doomed').version, -Infinity)
          }
        }
        assert.deepStrictEqual(c.node('c').late, [])
      })
    }
  })

  it("rule 7: 'keep' does not write again a late value a newer write of another node beats there: it withdraws it, and the newer write stands (outside red team: the horizon is not per key)", () =>
    withCluster(['a', 'b', 'c'], {}, async (c) => {
      c.node('a').set('tmp', 1)
      await rounds(c)
      c.partition(new Set(['c']))
      c.node('c').set('x', 'c wrote while away')
      c.advance(1000)
      c.node('a').delete('tmp')
      c.node('a').set('other', 1)
      c.advance(1000)
      c.node('b').set('x', 'b wrote later')
      await graceWithExchanges(c)
      const late: Update[][] = []
      c.node('c').on('late', (u: Update[]) => late.push(u))
      c.heal()
      await rounds(c)
      assert.deepStrictEqual(late.flat().map((u) => u.key), ['x'])
      assert.strictEqual(c.node('c').get('x').value, 'b wrote later')
      assert.strictEqual(c.node('c').settleLate('keep'), 1)
      await rounds(c)
      agree(c)
      for (const g of c.nodes.values()) assert.strictEqual(g.get('x').value, 'b wrote later', g.id)
      assert.deepStrictEqual(c.node('c').late, [])
    }))

  it("rule 5 at a value's place: a write carrying `first` at or below the horizon (a copy issued again, or a handed write, docs/twins.md R6), its version above it, is refused as late; judged at its version, it was taken and a collected delete came back (hand21)", () =>
    withCluster(['a', 'b'], {}, async (c) => {
      const a = c.node('a')
      a.delete('k')
      const t3 = a.history.mapping('a', 'k')?.version ?? NaN
      a.set('other', 1)
      await graceWithExchanges(c)
      assert.ok(a.deletes.horizon >= t3, `a collected the delete of k (horizon ${a.deletes.horizon}, delete at ${t3})`)
      const s = a.createStream()
      const reports: string[] = []
      s.on('invalid', (_o: unknown, _reason: string, code: string) => reports.push(code))
      s.write({ key: 'k', value: 'back', source_id: 'z', version: a.deletes.horizon + 1000, first: t3 - 1 })
      await turn()
      await turn()
      assert.deepStrictEqual(reports, ['late'])
      assert.ok(!('k' in a.state), `the deleted k came back at a: ${JSON.stringify(a.get('k'))}`)
      s.destroy()
    }))

  it('R6 at the source: a value of its past above what its withdrawal names, but older than the value this life withdrew, is withdrawn by name, not reported late', async () => {
    // b's clock runs 10 minutes ahead: s's first life writes above s's next.
    const c = await Cluster.start({ ids: ['a', 'b', 's'], config: config(), skew: (id) => (id === 'b' ? 600_000 : 0) })
    try {
      const both = async (x: string, y: string) => {
        await c.exchange(x, y)
        await c.exchange(y, x)
      }
      c.node('b').set('x', 1)
      await both('s', 'b')
      c.node('s').set('k', 'old')
      const old = (c.node('s').history.mapping('s', 'k') as Update).version
      await both('s', 'b')
      await c.restart('s', 'nothing')
      // The next life writes before its past shows itself: below 'old'.
      c.node('s').set('k', 'new')
      assert.ok((c.node('s').history.mapping('s', 'k') as Update).version < old)
      await both('s', 'a')
      c.advance(2000)
      c.node('a').delete('k')
      const late: Update[][] = []
      c.node('s').on('late', (u: Update[]) => late.push(u))
      // s settles with a alone and withdraws 'new', naming it; b holds 'old'.
      for (let i = 0; i < 3; i++) await both('s', 'a')
      const w0 = c.node('s').history.mapping('s', 'k') as Update
      assert.strictEqual(w0.withdrawn, true)
      assert.ok((w0.value as number) < old)
      await both('a', 'b')
      await rounds(c, 4)
      assert.deepStrictEqual(late, [])
      agree(c)
      for (const g of c.nodes.values()) {
        const w = g.history.mapping('s', 'k') as Update
        assert.strictEqual(w.withdrawn, true, g.id)
        assert.ok((w.value as number) >= old, `${g.id}: the withdrawal names 'old'`)
        assert.strictEqual(g.get('k').version, -Infinity)
      }
      assert.deepStrictEqual(c.unsynced(), [])
    } finally {
      for (const g of c.nodes.values()) g.destroy()
      c.restoreClock()
    }
  })

  it("rule 5: a value of a source at or below a gc of it learned from a notice is refused and reported late: the source's collected delete, forgotten by both its collectors, does not bring the old value back silently (outside model checker seed 3102131)", () =>
    withCluster(['n0', 'n1', 'n2', 'n3', 'n4'], { mtu: 2 }, async (c) => {
      const late: string[] = []
      c.onNode((g) =>
        g.on('late', (us: Update[]) => {
          for (const u of us) late.push(`${u.source_id}:${u.key}@${u.version}`)
        }),
      )
      const away = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          c.advance(GRACE * 0.3)
          await c.round()
        }
      }
      c.node('n1').delete('k1')
      c.node('n3').delete('k0')
      c.partition(new Set(['n2']))
      await away(5)
      c.node('n0').set('k0', 'old')
      const old = c.node('n0').get('k0').version
      await c.round()
      c.node('n0').delete('k0') // replaces n0's value in its own log
      c.heal()
      c.partition(new Set(['n0', 'n3']))
      c.node('n0').set('k1', 'x')
      c.partition(new Set(['n1']))
      await away(6) // n0 and n3 collect n0's delete; n1, n2, n4 keep the old value
      await c.restart('n3', 'nothing')
      await c.exchange('n3', 'n0') // n3 takes n0's fresh copy, and its gc from a notice, not its horizon
      await c.restart('n0', 'nothing') // both collectors have forgotten the delete
      c.heal()
      for (let i = 0; i < 20 && late.length === 0; i++) {
        c.advance(GRACE / 50)
        await c.round()
      }
      assert.deepStrictEqual(late, [`n0:k0@${old}`])
      assert.strictEqual(c.node('n0').settleLate('drop'), 1)
      for (let i = 0; i < 40; i++) {
        c.advance(GRACE / 50)
        await c.round()
      }
      for (const g of c.nodes.values()) assert.strictEqual(g.get('k0').version, -Infinity, g.id)
      assert.deepStrictEqual(c.unsynced(), [])
      agree(c)
    }))
})
