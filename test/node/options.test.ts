/**
 * A TCP node's options, checked before it opens anything (lib/node/options.ts).
 */
import * as assert from 'assert'
import { base } from '../../lib'
import { checkOptions, DEFAULT_CLUSTER } from '../../lib/node/options'
import { MAX_FRAME_LENGTH } from '../../lib/wire/binary'

const resolve = base.resolution.lww_vs_current_vers

describe('node options', () => {
  it('fills the defaults, stallTimeout from the interval', () => {
    const o = checkOptions({ id: 'a', resolve })
    assert.deepStrictEqual(
      [o.interval, o.cluster, o.membership, o.maxLineLength, o.maxFrameLength, o.maxInvalid, o.stallTimeout, o.maxConnections, o.random],
      [1000, DEFAULT_CLUSTER, null, 1 << 20, MAX_FRAME_LENGTH, 0, 10_000, 64, Math.random],
    )
    assert.strictEqual(checkOptions({ id: 'a', resolve, interval: 5000 }).stallTimeout, 50_000)
    assert.deepStrictEqual(checkOptions({ id: 'a', resolve, membership: true }).membership, {})
  })

  it('lays resolve, mtu and security given apart over config', () => {
    const other = () => true
    const o = checkOptions({ id: 'a', config: { resolve: other, mtu: 5, max_history: 7 }, resolve, mtu: 9 })
    assert.strictEqual(o.config.resolve, resolve)
    assert.deepStrictEqual([o.config.mtu, o.config.max_history], [9, 7])
    assert.strictEqual(checkOptions({ id: 'a', config: { resolve: other } }).config.resolve, other)
  })

  it('refuses a bad interval, codec list, cluster name or membership with a TypeError saying which', () => {
    const refused = (extra: object, why: RegExp) => assert.throws(() => checkOptions({ id: 'a', resolve, ...extra }), (e: Error) => e instanceof TypeError && why.test(e.message))
    refused({ interval: 0 }, /^interval must be a positive number/)
    refused({ interval: NaN }, /^interval must be a positive number/)
    refused({ cluster: '' }, /^cluster name refused: it is empty/)
    refused({ membership: 'yes' }, /^membership must be a boolean or options/)
    refused({ codecs: ['xml'] }, /^codecs must be a non-empty list of 'binary', 'ndjson'/)
  })
})
