/**
 * The hello (lib/wire/handshake.ts): its line, and the wire format each
 * direction takes.
 */
import * as assert from 'assert'
import { PROTOCOL } from '../../lib/shape'
import { FORMATS } from '../../lib/wire/codec'
import { HELLO, checkCodecs, chooseFormat, codecsOf, helloLine } from '../../lib/wire/handshake'

describe('wire: handshake', () => {
  it('helloLine: one line of JSON, naming the cluster only when given, and the protocol', () => {
    assert.strictEqual(helloLine('a'), `{"hello":"${HELLO}","id":"a","codecs":${JSON.stringify(FORMATS)},"protocol":${PROTOCOL}}\n`)
    assert.deepStrictEqual(JSON.parse(helloLine('a', ['ndjson'], 'blue')), { hello: HELLO, id: 'a', codecs: ['ndjson'], cluster: 'blue', protocol: PROTOCOL })
  })

  it("chooseFormat: the first of the sender's that the receiver lists, or null", () => {
    assert.strictEqual(chooseFormat(['binary', 'ndjson'], ['ndjson', 'binary']), 'binary')
    assert.strictEqual(chooseFormat(['ndjson', 'binary'], ['binary', 'ndjson']), 'ndjson')
    assert.strictEqual(chooseFormat(['binary', 'ndjson'], ['ndjson']), 'ndjson')
    // A format neither speaks is never chosen, even when both list it.
    assert.strictEqual(chooseFormat(['xml', 'ndjson'], ['xml', 'ndjson']), 'ndjson')
    assert.strictEqual(chooseFormat(['binary'], ['ndjson']), null)
  })

  it('codecsOf: a hello without codecs speaks NDJSON only', () => {
    assert.deepStrictEqual(codecsOf({ hello: HELLO, id: 'a' }), ['ndjson'])
    assert.deepStrictEqual(codecsOf({ hello: HELLO, id: 'a', codecs: ['binary'] }), ['binary'])
  })

  it('checkCodecs: a non-empty list of known formats, duplicates dropped, else a TypeError', () => {
    assert.deepStrictEqual(checkCodecs(['ndjson', 'binary', 'ndjson']), ['ndjson', 'binary'])
    for (const bad of [[], ['xml'], 'ndjson', undefined]) assert.throws(() => checkCodecs(bad), /^TypeError: codecs must be a non-empty list of 'binary', 'ndjson'/)
  })
})
