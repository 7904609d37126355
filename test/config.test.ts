/**
 * A node's configuration (lib/config.ts): what `new Gossip(id, config)`
 * refuses, and the settings it takes.
 */
import * as assert from 'assert'
import { Gossip } from '../lib'
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
})
