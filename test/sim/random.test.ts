/**
 * The simulator's seeded randomness (lib/sim/random.ts): the same seed
 * gives the same run.
 */
import { strict as assert } from 'assert'
import { derive, prng, shuffle } from '../../lib/sim/random'

describe('simulator: random', () => {
  it('prng: the same seed gives the same numbers in [0, 1), another seed others', () => {
    const a = prng(42)
    const b = prng(42)
    const xs = Array.from({ length: 1000 }, () => a())
    assert.deepEqual(Array.from({ length: 1000 }, () => b()), xs)
    assert.ok(xs.every((x) => x >= 0 && x < 1))
    assert.ok(new Set(xs).size > 990)
    assert.notDeepEqual(Array.from({ length: 10 }, prng(43)), xs.slice(0, 10))
    // Roughly uniform: each tenth holds about a tenth.
    const tenths = new Array<number>(10).fill(0)
    for (const x of xs) tenths[Math.floor(x * 10)]++
    assert.ok(tenths.every((n) => n > 60 && n < 140), String(tenths))
  })

  it('derive: a seed per stream, stable and distinct', () => {
    assert.equal(derive(7, 3), derive(7, 3))
    const seeds = new Set(Array.from({ length: 100 }, (_, i) => derive(7, i)))
    assert.equal(seeds.size, 100)
    assert.notEqual(derive(7, 0), derive(8, 0))
    for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32)
  })

  it('shuffle: a permutation in place, the same for the same seed', () => {
    const items = Array.from({ length: 20 }, (_, i) => i)
    const once = shuffle([...items], prng(1))
    assert.deepEqual([...once].sort((x, y) => x - y), items)
    assert.notDeepEqual(once, items)
    assert.deepEqual(shuffle([...items], prng(1)), once)
    const mine = [1, 2, 3]
    assert.equal(shuffle(mine, prng(2)), mine)
  })
})
