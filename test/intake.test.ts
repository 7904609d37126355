/**
 * A peer's update taken in (lib/intake.ts): taken when newer than the
 * source's mapping of the key here, ignored when not, a write of ours we
 * replaced since left out, versions ahead of the clock refused or noticed.
 * The refusals' codes are in codes.test.ts, the clock's limits in
 * clock.test.ts, signatures in node/security.test.ts, rule 5 in
 * late.test.ts.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import type { Update } from '../lib'
import { Clock } from '../lib/clock'
import { aheadReason } from '../lib/intake'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

/** A node and what its streams report, as [event, ...args]. */
function node(id = 'a'): { g: Gossip; reports: unknown[][] } {
  const g = new Gossip(id, { resolve: lww })
  const reports: unknown[][] = []
  g.on('invalid', (_o: unknown, reason: string, code: string) => reports.push(['invalid', code, reason]))
  g.on('ahead', (source: string, version: number) => reports.push(['ahead', source, version]))
  return { g, reports }
}

/** Offer `updates` to `g`, as a peer would, and let it take them in. */
async function offer(g: Gossip, ...updates: unknown[]): Promise<void> {
  for (const u of updates) g.write(u)
  await turn()
}

describe('intake (lib/intake.ts)', () => {
  it("a source's update is taken when newer than its mapping of the key here, and ignored (not reported) when not", async () => {
    const { g, reports } = node()
    await offer(g, { key: 'k', value: 'two', source_id: 'x', version: 2 }, { key: 'k', value: 'one', source_id: 'x', version: 1 }, { key: 'k', value: 'again', source_id: 'x', version: 2 })
    assert.strictEqual(g.get('k').value, 'two')
    assert.strictEqual(g.history.sources.get('x')?.max, 2)
    await offer(g, { key: 'k', value: 'three', source_id: 'x', version: 3 })
    assert.deepStrictEqual([g.get('k').value, reports], ['three', []])
    g.destroy()
  })

  it('a write of ours from this life that we replaced since does not come back from a stale copy', async () => {
    const { g, reports } = node()
    g.set('k', 'old')
    const old = g.history.mapping('a', 'k') as Update
    g.set('k', 'new')
    await offer(g, { ...old })
    assert.deepStrictEqual([g.get('k').value, reports], ['new', []])
    g.destroy()
  })

  it("a version past Clock.AHEAD is refused as 'ahead' with aheadReason's words, and neither taken nor moves the clock", async () => {
    const { g, reports } = node()
    const version = Clock.now() + 2 * Clock.AHEAD
    g.write({ key: 'k', value: 1, source_id: 'x', version })
    await turn()
    assert.strictEqual(g.history.mapping('x', 'k'), undefined)
    assert.strictEqual(reports.length, 1)
    assert.deepStrictEqual(reports[0].slice(0, 2), ['invalid', 'ahead'])
    assert.match(String(reports[0][2]), new RegExp(`^version ${version} is 2\\.0 h ahead of this node's clock \\(the limit is 1 h\\)`))
    g.set('mine', 1)
    assert.ok((g.history.mapping('a', 'mine') as Update).version < Clock.now() + Clock.NOTICE)
    g.destroy()
  })

  it("a version within Clock.AHEAD but past Clock.NOTICE is taken and noticed ('ahead', once per source above its max); one within NOTICE is not", async () => {
    const { g, reports } = node()
    const near = Clock.now() + Clock.NOTICE / 2
    const far = Clock.now() + Clock.AHEAD / 2
    g.write({ key: 'n', value: 1, source_id: 'x', version: near })
    await turn()
    assert.deepStrictEqual(reports, [])
    g.write({ key: 'f', value: 2, source_id: 'y', version: far })
    await turn()
    assert.strictEqual(g.get('f').value, 2)
    assert.deepStrictEqual(reports, [['ahead', 'y', far]])
    // y's max is now far: a write just above it is no news.
    g.write({ key: 'g', value: 3, source_id: 'y', version: far + 1 })
    await turn()
    assert.deepStrictEqual(reports, [['ahead', 'y', far]])
    g.destroy()
  })

  it('aheadReason says how far ahead a version is, in hours, and the limit', () => {
    const version = Clock.now() + 3 * 3.6e9
    const reason = aheadReason(version)
    assert.match(reason, /^version \d+ is 3\.0 h ahead of this node's clock \(the limit is 1 h\): a clock is wrong, or a peer is hostile$/)
  })
})
