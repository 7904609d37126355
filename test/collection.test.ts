/**
 * Collection (lib/collection.ts, docs/deletes.md rule 4): markers wait a
 * grace of active time, then go when they may; gc(S) and the horizon
 * (rule 5); the view without markers (rule 3). Over a History and a host
 * that only records. (Rule by rule through nodes: deletes.test.ts.)
 */
import * as assert from 'assert'
import { History } from '../lib'
import type { Update } from '../lib'
import { Collection } from '../lib/collection'
import type { DeletesHost } from '../lib/markers'

// Last writer wins by version, then source.
const beats = (a: Update, b: Update): boolean => a.version > b.version || (a.version === b.version && a.source_id > b.source_id)

function setup(graceMs = 1) {
  const history = new History(Infinity)
  const clock = { now: 0 }
  const forgotten: Update[] = []
  let changes = 0
  const host = { history, beats, wall: () => clock.now, forget: (m: Update) => forgotten.push(m) } as Partial<DeletesHost> as DeletesHost
  const c = new Collection(host, graceMs, 0, () => changes++)
  const take = (u: Update): Update => {
    const held = history.record(u)
    c.took(held)
    return held
  }
  return { history, clock, forgotten, c, take, changes: () => changes }
}

const tomb = (key: string, source_id: string, version: number): Update => ({ key, value: null, source_id, version, deleted: true })
const value = (key: string, source_id: string, version: number): Update => ({ key, value: version, source_id, version })

describe('collection', () => {
  it('active time moves only as peers are heard, by at most half the grace per gap', () => {
    const { clock, c } = setup(1) // 1 ms: 1000 µs
    clock.now = 10_000
    c.heard()
    assert.strictEqual(c.activeTime, 500)
    clock.now = 10_200
    c.heard()
    assert.strictEqual(c.activeTime, 700)
    clock.now = 10_100 // a clock that steps back moves nothing
    c.heard()
    assert.strictEqual(c.activeTime, 700)
  })

  it('a marker goes once past the grace, not before; its gc and the horizon rise', () => {
    const { clock, c, take, forgotten, changes } = setup(1)
    const t = take(tomb('x', 's', 1))
    take(value('y', 's', 2)) // t is not s's newest
    c.collect()
    assert.deepStrictEqual(forgotten, [])
    assert.strictEqual(c.pending, 1)
    for (const now of [500, 1000]) {
      clock.now = now
      c.heard()
    }
    c.collect()
    assert.deepStrictEqual(forgotten, [t])
    assert.strictEqual(c.gcOf('s'), 1)
    assert.strictEqual(c.horizon, 1)
    assert.strictEqual(c.gcOf('other'), -Infinity)
    assert.ok(changes() > 0)
  })

  it("a source's newest marker stays, and a tombstone beating a live value stays: both blocked until looked at again", () => {
    const { clock, c, take, forgotten } = setup(1)
    take(tomb('x', 's', 1)) // s's newest
    take(value('z', 'r', 1))
    take(tomb('z', 's', 2))
    take(value('w', 's', 3)) // now x's tombstone is not s's newest; z's still beats r's value
    take(tomb('n', 'q', 1)) // q's newest, and stays so
    for (const now of [500, 1000]) {
      clock.now = now
      c.heard()
    }
    c.collect()
    assert.deepStrictEqual(forgotten.map((u) => u.key), ['x'])
    assert.strictEqual(c.pending, 2)
  })

  it('raiseGc only raises; visible leaves out markers and what a held tombstone beats', () => {
    const { c, take } = setup()
    c.raiseGc('s', 5)
    c.raiseGc('s', 3)
    assert.strictEqual(c.gcOf('s'), 5)
    const old = take(value('k', 'a', 1))
    const t = take(tomb('k', 'b', 2))
    const newer = take(value('k', 'c', 3))
    assert.deepStrictEqual(c.visible('k', [old, t, newer]), [newer])
    assert.deepStrictEqual(c.visible('v', [value('v', 'a', 1)]).length, 1)
  })

  it("lend and takeLent: a peer's horizon becomes ours once we hold what its digest named", () => {
    const { c, take } = setup()
    c.lend(7, new Map([['s', 2]]))
    assert.ok(c.lending)
    c.takeLent()
    assert.strictEqual(c.horizon, -Infinity)
    take(value('k', 's', 2))
    c.takeLent()
    assert.strictEqual(c.horizon, 7)
    assert.ok(!c.lending)
    c.lend(5, new Map())
    assert.ok(!c.lending, 'a horizon below ours is not kept')
  })
})
