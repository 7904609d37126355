/**
 * Routing by shape and refusing the rest (lib/shape.ts), on hostile input:
 * whatever is written to a gossip stream, nothing is thrown out of write, no
 * prototype is polluted, the state holds only well-formed mappings, the
 * stream stays alive, and each refused object is reported once.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, base } from '../lib'
import type { PeerStream, Update } from '../lib'
import { Net, lww } from './net'

const hostileName = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', 'k')
const hostileNumber = fc.constantFrom(NaN, Infinity, -Infinity, -1, 0.5, -0, 2 ** 53, Number.MAX_SAFE_INTEGER, 1, 7)
const anyField = fc.oneof(fc.anything(), hostileName, hostileNumber)

/** Objects shaped almost like the four messages, and anything at all. */
const hostile = fc.oneof(
  fc.anything(),
  fc.record(
    { key: fc.oneof(hostileName, anyField), value: anyField, source_id: fc.oneof(hostileName, anyField), version: fc.oneof(hostileNumber, anyField) },
    { requiredKeys: [] },
  ),
  fc.record({ digest: fc.oneof(fc.constant(true), anyField), source_id: anyField, id: anyField, version: anyField, done: anyField }, { requiredKeys: [] }),
  fc.record({ key: hostileName, value: fc.jsonValue() }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": true}, "key": "k", "value": 1}')),
  fc.constant(JSON.parse('{"key": "__proto__", "value": {"polluted": true}, "source_id": "s", "version": 1}')),
  fc.constant(JSON.parse('{"digest": true, "source_id": "__proto__", "version": 1}')),
)

function wellFormed(u: Update): boolean {
  return (
    typeof u.key === 'string' &&
    u.key.length > 0 &&
    !['__proto__', 'constructor', 'prototype'].includes(u.key) &&
    typeof u.source_id === 'string' &&
    Number.isSafeInteger(u.version) &&
    u.version >= 0 &&
    u.value !== undefined
  )
}

describe('hostile input', function () {
  this.timeout(60_000)

  it('is reported or applied, never thrown, never polluting, never killing the stream', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { maxLength: 40 }), fc.boolean(), async (objects, viaPeerStream) => {
        const net = new Net(['a', 'b'], () => lww({ mtu: 5 }))
        const [a, b] = net.nodes
        const link = net.connect(0, 1)
        const target: PeerStream = viaPeerStream ? a.createStream() : a
        let invalid = 0
        target.on('invalid', (_o: unknown, reason: unknown) => {
          assert.strictEqual(typeof reason, 'string')
          invalid++
        })
        for (const o of objects) target.write(o)
        await new Promise((resolve) => setImmediate(resolve))

        assert.strictEqual(({} as Record<string, unknown>).polluted, undefined)
        assert.strictEqual(Object.getPrototypeOf({}), Object.prototype)
        assert.ok(!target.destroyed && !a.destroyed)
        assert.ok(invalid <= objects.length, 'each object reported at most once')
        for (const u of Object.values(a.state)) assert.ok(wellFormed(u), `malformed mapping ${String(u.key)}`)

        // and the node still replicates
        a.set('after', 'fuzz')
        b.set('other', 'side')
        for (let r = 0; r < 20 && !(b.get('after').value === 'fuzz' && Object.keys(b.state).length === Object.keys(a.state).length); r++) {
          link.sb.gossip()
          await net.settle()
        }
        assert.strictEqual(b.get('after').value, 'fuzz')
        assert.strictEqual(a.get('other').value, 'side')
      }),
      { numRuns: 200 },
    )
  })

  it('reports each refused object exactly once, and only objects it was given', () => {
    fc.assert(
      fc.property(fc.array(hostile, { maxLength: 30 }), (objects) => {
        const g = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
        const reported: unknown[] = []
        g.on('invalid', (o: unknown) => reported.push(o))
        for (const o of objects) g.write(o)
        const count = (xs: unknown[], x: unknown) => xs.filter((y) => Object.is(x, y)).length
        for (const o of reported) assert.ok(count(reported, o) <= count(objects, o), 'reported more often than written')
        // a second node fed the same objects one by one reports the same ones
        const h = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
        const again: unknown[] = []
        h.on('invalid', (o: unknown) => again.push(o))
        for (const o of objects) h.write(o)
        assert.strictEqual(again.length, reported.length)
      }),
      { numRuns: 200 },
    )
  })
})
