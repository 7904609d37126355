/**
 * A node's configuration (lib/config.ts): what `new Gossip(id, config)`
 * refuses, and the settings it takes.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import { checkStreamOptions, settingsOf } from '../lib/config'
import { lww } from './net'

describe('config', () => {
  it('refuses to run without config.resolve, pointing at base.resolution', () => {
    assert.throws(() => new Gossip('a', {} as never), /base\.resolution/)
    assert.throws(() => new Gossip('a', { resolve: null }), /config\.resolve is required/)
  })

  it('refuses bad ids and settings with clear errors', () => {
    assert.throws(() => new Gossip('', lww()), /id must not be empty/)
    assert.throws(() => new Gossip('__proto__', lww()), /reserved/)
    assert.throws(() => new Gossip('a', null as never), /config must be an object/)
    assert.throws(() => new Gossip('a', lww({ mtu: -1 })), /mtu/)
    assert.throws(() => new Gossip('a', lww({ mtu: 1.5 })), /mtu/)
    assert.throws(() => new Gossip('a', lww({ max_history: -5 })), /max_history/)
    assert.throws(() => new Gossip('a', lww({ order: 'widest' as never })), /order/)
    assert.throws(() => new Gossip('a', lww({ sort: 1 as never })), /sort/)
    assert.throws(() => new Gossip('a', lww({ random: 1 as never })), /random/)
  })

  it('settingsOf: falsy mtu and max_history take the defaults; the rest are taken as given or defaulted', () => {
    const resolve = base.resolution.lww_vs_current_vers
    const s = settingsOf('a', { resolve, mtu: 0, max_history: 0 })
    assert.strictEqual(s.mtu, base.config.mtu)
    assert.strictEqual(s.maxHistory, base.config.max_history)
    assert.strictEqual(s.mtuBytes, Infinity)
    assert.strictEqual(s.order, 'depth')
    assert.strictEqual(s.sort, base.sort)
    assert.strictEqual(s.random, Math.random)
    assert.strictEqual(s.grace, 3_600_000)
    assert.strictEqual(s.flow, null)
    assert.strictEqual(s.digestPart, undefined)
    assert.strictEqual(s.localWrites, true)
    const t = settingsOf('a', { resolve, mtu: 7, max_history: Infinity, order: 'breadth', tombstone_grace: 0, digest_part: 3 })
    assert.deepStrictEqual([t.mtu, t.maxHistory, t.order, t.grace, t.digestPart], [7, Infinity, 'breadth', 0, 3])
  })

  it('settingsOf: local writes default to off under security, and the grace and digest part are checked', () => {
    const resolve = base.resolution.lww_vs_current_vers
    const security = { sign: () => 's', verify: () => true }
    assert.strictEqual(settingsOf('a', { resolve, security }).localWrites, false)
    assert.strictEqual(settingsOf('a', { resolve, security, local_writes: true }).localWrites, true)
    assert.throws(() => settingsOf('a', { resolve, security: { sign: () => 's' } as never }), /config.security must be an object/)
    assert.throws(() => settingsOf('a', { resolve, local_writes: 1 as never }), /config.local_writes must be a boolean/)
    for (const grace of [-1, NaN, Infinity, '1' as never]) assert.throws(() => settingsOf('a', { resolve, tombstone_grace: grace }), /config.tombstone_grace must be/)
    for (const part of [1, 2.5, '3' as never]) assert.throws(() => settingsOf('a', { resolve, digest_part: part }), /config.digest_part must be an integer, 2 or more/)
  })

  it('checkStreamOptions refuses what createStream does not take', () => {
    assert.doesNotThrow(() => checkStreamOptions({}))
    assert.doesNotThrow(() => checkStreamOptions({ local_writes: false }))
    assert.throws(() => checkStreamOptions(null as never), /stream options must be an object/)
    assert.throws(() => checkStreamOptions({ local_writes: 'yes' as never }), /local_writes must be a boolean/)
  })
})
