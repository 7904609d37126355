/**
 * Defaults and sample policies (lib/base.ts), as the original exported them.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import { defaults } from '../lib/base'

describe('base', () => {
  it('config: a changeable copy of the frozen defaults, with no resolve', () => {
    assert.ok(Object.isFrozen(defaults))
    assert.notStrictEqual(base.config, defaults)
    assert.deepStrictEqual({ ...base.config }, { ...defaults })
    assert.deepStrictEqual([base.config.mtu, base.config.max_history, base.config.order, base.config.resolve], [100, 1000, 'depth', null])
    assert.strictEqual(base.config.sort, base.sort)
    assert.strictEqual(typeof base.resolution.lww_vs_current_vers, 'function')
  })

  it("a change to config reaches the nodes built after it only; the library's own defaults stay", () => {
    const saved = { ...base.config }
    try {
      assert.throws(() => new Gossip('a', base.config), /config\.resolve is required/)
      base.config.resolve = base.resolution.lww_vs_current_vers
      base.config.mtu = 7
      const g = new Gossip('a', base.config)
      base.config.mtu = 9
      assert.strictEqual(g.mtu, 7)
      assert.strictEqual(new Gossip('b', base.config).mtu, 9)
      assert.strictEqual(defaults.mtu, 100)
      // A falsy mtu takes the library's default, not the changed config's.
      assert.strictEqual(new Gossip('c', { resolve: base.resolution.lww_vs_current_vers, mtu: 0 }).mtu, 100)
    } finally {
      Object.assign(base.config, saved)
    }
  })
})
