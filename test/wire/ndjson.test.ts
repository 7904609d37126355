/**
 * The wire's NDJSON format (lib/wire/ndjson.ts, through serialize() and
 * parse() of lib/wire/codec.ts): round trips, the design's wiring line over
 * a real socket, and garbage on the wire. (Values JSON cannot carry,
 * refused at set: test/value.test.ts.)
 */
import * as assert from 'assert'
import * as net from 'net'
import fc from 'fast-check'
import { PassThrough } from 'readable-stream'
import { Gossip, parse, serialize } from '../../lib'
import { lww } from '../net'

function collect(stream: NodeJS.ReadableStream | PassThrough): unknown[] {
  const out: unknown[] = []
  stream.on('data', (o: unknown) => out.push(o))
  return out
}

function invalids(stream: { on(e: string, f: (...a: unknown[]) => void): unknown }): string[] {
  const out: string[] = []
  stream.on('invalid', (_o: unknown, reason: unknown) => out.push(String(reason)))
  return out
}

async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('wire', () => {
  it('round-trips any JSON value through serialize and parse, however the bytes are cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue().filter((v) => v !== null), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (values, cuts) => {
          const s = serialize({ format: 'ndjson' })
          const bytes: Buffer[] = []
          s.on('data', (b: Buffer) => bytes.push(Buffer.from(b)))
          for (const v of values) s.write(v)
          s.end()
          const all = Buffer.concat(bytes)
          const p = parse({ format: 'ndjson' })
          const out = collect(p)
          const bad = invalids(p)
          // Feed the bytes in arbitrary pieces, splitting UTF-8 sequences too.
          let off = 0
          for (let i = 0; off < all.length; i++) {
            const n = cuts[i % cuts.length]
            p.write(all.subarray(off, off + n))
            off += n
          }
          p.end()
          assert.deepStrictEqual(bad, [])
          assert.deepStrictEqual(out, JSON.parse(JSON.stringify(values)))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('drops and reports garbage, over-long lines and a partial last line, and carries on', async () => {
    const p = parse({ format: 'ndjson', maxLineLength: 64 })
    const out = collect(p)
    const bad = invalids(p)
    p.write('{"a":1}\nnot json\n\n{"b":2}\r\n')
    p.write(`{"c":"${'x'.repeat(40)}`)
    p.write(`${'y'.repeat(40)}"}\n{"d":4}\n`) // the long line arrives in two pieces
    p.write(`${'z'.repeat(200)}\n`)
    p.write('null\n{"e":5}\n{"torn":')
    p.end()
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepStrictEqual(out, [{ a: 1 }, { b: 2 }, { d: 4 }, { e: 5 }])
    assert.deepStrictEqual(bad, [
      'not JSON',
      'line longer than 64 characters',
      'line longer than 64 characters',
      'null is not a message',
      'partial line at end of input',
    ])
  })

  it('attack (fourth outside attack on issue 21): an integer beyond 2^53 - 1 on the NDJSON wire was rounded and replicated, where stdin, admin and the CLI refuse it; required: refused here too (code value), and versions and big numbers in strings pass', async () => {
    const p = parse({ format: 'ndjson' })
    const out = collect(p)
    const bad: string[] = []
    p.on('invalid', (_o: unknown, _reason: string, code: string) => bad.push(code))
    p.write('{"key":"x","value":12345678901234567890,"source_id":"a","version":1796662852099705}\n')
    p.write('{"key":"y","value":{"n":9007199254740993},"source_id":"a","version":1796662852099706}\n')
    p.write('{"key":"z","value":"12345678901234567890","source_id":"a","version":1796662852099707}\n')
    p.write('{"key":"w","value":9007199254740991,"source_id":"a","version":1796662852099708}\n')
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepStrictEqual(bad, ['value', 'value'])
    assert.deepStrictEqual((out as { key: string }[]).map((u) => u.key), ['z', 'w'])
  })

  it('never buffers more than the line limit while a line without end streams in', () => {
    const p = parse({ format: 'ndjson', maxLineLength: 1000 })
    const bad = invalids(p)
    const out = collect(p)
    const chunk = 'a'.repeat(64 * 1024)
    for (let i = 0; i < 200; i++) p.write(chunk) // 12.5 MiB, no newline
    p.write('\n{"ok":true}\n')
    assert.deepStrictEqual(bad, ['line longer than 1000 characters'])
    assert.deepStrictEqual(out, [{ ok: true }])
  })

  it('rejects a bad line limit', () => {
    assert.throws(() => parse({ format: 'ndjson', maxLineLength: 0 }), TypeError)
    assert.throws(() => parse({ maxFrameLength: 0 }), TypeError)
    assert.throws(() => parse({ format: 'json' as never }), TypeError)
    assert.throws(() => serialize({ format: 'xml' as never }), TypeError)
  })

  it('serialize reports objects JSON cannot encode instead of throwing', () => {
    const s = serialize({ format: 'ndjson' })
    const bad = invalids(s)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const bytes: string[] = []
    s.on('data', (b: Buffer) => bytes.push(String(b)))
    s.write(cyclic)
    s.write({ n: BigInt(1) })
    s.write(() => 1)
    s.write({ ok: 1 })
    s.end()
    assert.strictEqual(bad.length, 3)
    assert.deepStrictEqual(bytes, ['{"ok":1}\n'])
  })

  it('works as written: gossip.pipe(serialize()).pipe(socket).pipe(parse()).pipe(gossip)', async () => {
    const a = new Gossip('a', lww())
    const b = new Gossip('b', lww())
    const server = net.createServer((socket) => {
      b.pipe(serialize()).pipe(socket).pipe(parse()).pipe(b)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as net.AddressInfo
    const socket = net.connect(port, '127.0.0.1')
    try {
      a.pipe(serialize()).pipe(socket).pipe(parse()).pipe(a)
      a.set('from-a', { nested: ['é', 1] })
      b.set('from-b', 'ü')
      a.gossip()
      await until(() => Object.keys(a.state).length === 2 && Object.keys(b.state).length === 2, 5000, 'both sides to hold both keys')
      assert.deepStrictEqual(b.get('from-a').value, { nested: ['é', 1] })
      assert.strictEqual(a.get('from-b').value, 'ü')
    } finally {
      socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
