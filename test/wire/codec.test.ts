/**
 * The wire's codec (lib/wire/codec.ts): the choice of format, its options,
 * and how what is written in one turn goes out. (Each format's encoding
 * and its garbage: wire/ndjson.test.ts, wire/binary.test.ts.)
 */
import * as assert from 'assert'
import { parse, serialize } from '../../lib'

const turn = () => new Promise((r) => setImmediate(r))

function chunks(s: NodeJS.ReadableStream): Buffer[] {
  const out: Buffer[] = []
  s.on('data', (c: Buffer | Uint8Array) => out.push(Buffer.from(c)))
  return out
}

describe('wire: codec', () => {
  it('refuses options it does not take, with a TypeError', () => {
    assert.throws(() => serialize(null as never), /^TypeError: serialize options must be an object/)
    assert.throws(() => parse(7 as never), /^TypeError: parse options must be an object/)
    assert.throws(() => serialize({ format: 'xml' as never }), /format must be 'binary' or 'ndjson'/)
    assert.throws(() => parse({ format: 'json' as never }), /format must be 'binary' or 'ndjson'/)
  })

  it('writes binary unless told ndjson; each parse reads its own format back', async () => {
    const m = { key: 'k', value: [1, 'two'], source_id: 'a', version: 3 }
    for (const format of [undefined, 'binary', 'ndjson'] as const) {
      const s = serialize(format === undefined ? {} : { format })
      const bytes = chunks(s)
      s.write(m)
      await turn()
      const all = Buffer.concat(bytes)
      assert.strictEqual(all.toString('utf8') === `${JSON.stringify(m)}\n`, format === 'ndjson', String(format))
      const p = parse(format === undefined ? {} : { format })
      const got: unknown[] = []
      p.on('data', (o: unknown) => got.push(o))
      p.write(all)
      await turn()
      assert.deepStrictEqual(got, [m])
    }
  })

  it('what is written in one turn goes out as one chunk; more than 16 KiB in pieces, each twice the last', async () => {
    const s = serialize({ format: 'ndjson' })
    const out = chunks(s)
    for (let i = 0; i < 10; i++) s.write({ i })
    await turn()
    assert.strictEqual(out.length, 1)
    assert.strictEqual(out[0].toString().split('\n').length, 11)
    out.length = 0
    const big = { v: 'x'.repeat(1000) }
    for (let i = 0; i < 120; i++) s.write(big)
    await turn()
    const sizes = out.map((c) => c.length)
    assert.strictEqual(sizes.reduce((a, b) => a + b, 0), 120 * (JSON.stringify(big).length + 1))
    assert.ok(sizes.length >= 3, String(sizes))
    // Each full piece ends just past its limit: 16 KiB, then 32 KiB, then 64 KiB.
    assert.ok(sizes[0] >= 16 << 10 && sizes[0] < (16 << 10) + 1100, String(sizes))
    assert.ok(sizes[1] >= 32 << 10 && sizes[1] < (32 << 10) + 1100, String(sizes))
  })
})
