/**
 * The wire: serialize()/parse() as newline-delimited JSON, the design's
 * wiring line over a real socket, garbage on the wire, and values JSON
 * cannot carry refused at set.
 */
import * as assert from 'assert'
import * as net from 'net'
import fc from 'fast-check'
import { PassThrough } from 'readable-stream'
import { Gossip, jsonProblem, parse, serialize } from '../../lib'
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

  it('refuses at set, with a clear TypeError, values JSON cannot carry', () => {
    const g = new Gossip('a', lww())
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const sparse = [1, , 3] // eslint-disable-line no-sparse-arrays
    const bad: unknown[] = [
      () => 1,
      Symbol('s'),
      BigInt(1),
      NaN,
      Infinity,
      { a: undefined },
      [undefined],
      sparse,
      cyclic,
      new Date(0),
      new Map(),
      { [Symbol('k')]: 1 },
      { deep: { fn: () => 1 } },
    ]
    for (const v of bad) assert.throws(() => g.set('k', v), TypeError, `accepted ${String(v)}`)
    assert.strictEqual(Object.keys(g.state).length, 0)
    const shared = { x: 1 }
    for (const v of [0, -1.5, 'x', true, null, [], {}, { a: [1, { b: null }] }, [shared, shared], Object.create(null)]) {
      g.set('k', v)
    }
    assert.strictEqual(Object.keys(g.state).length, 1)
    let nested: unknown = 1
    for (let i = 0; i < 600; i++) nested = [nested]
    assert.match(String(jsonProblem(nested)), /nested/)
    const hostile = {
      get boom() {
        throw new Error('no')
      },
    }
    assert.match(String(jsonProblem(hostile)), /has a getter/)
    const unreadable = new Proxy({}, { ownKeys: () => { throw new Error('no') } })
    assert.match(String(jsonProblem(unreadable)), /could not be read/)
  })

  it('reports a local write through the stream whose value JSON cannot carry', () => {
    const g = new Gossip('a', lww())
    const bad = invalids(g)
    g.write({ key: 'k', value: () => 1 })
    g.write({ key: 'k', value: 1 })
    assert.strictEqual(bad.length, 1)
    assert.strictEqual(g.get('k').value, 1)
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
