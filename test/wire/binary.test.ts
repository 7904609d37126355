/**
 * The binary wire format (lib/wire/binary.ts): round trips, never more bytes
 * than NDJSON, and an outsider's attacks on the decoder (garbage, a 4 GB
 * length prefix, a frame cut short, invalid UTF-8, deep nesting, counts the
 * frame cannot hold). parse() must never throw, must report, and must buffer
 * at most a frame.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import { Gossip, MAX_DEPTH, MAX_FRAME_LENGTH, MAX_VALUE_LENGTH, base, parse, serialize } from '../../lib'
import { FrameEncoder } from '../../lib/wire/binary'
import { messageBytes } from '../../lib/reconcile'

const resolve = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

function frame(body: number[] | Uint8Array): Buffer {
  const b = Buffer.alloc(4 + body.length)
  b.writeUInt32BE(body.length, 0)
  Buffer.from(body).copy(b, 4)
  return b
}

function encode(messages: unknown[]): Buffer {
  const e = new FrameEncoder()
  for (const m of messages) e.write(m)
  return Buffer.from(e.take())
}

/** Feed `chunks` to a binary parser; what came out and what was reported. */
function feed(chunks: Uint8Array[], options = {}): { out: unknown[]; bad: string[] } {
  const p = parse(options)
  const out: unknown[] = []
  const bad: string[] = []
  p.on('data', (m: unknown) => out.push(m))
  p.on('invalid', (_x: unknown, r: string) => bad.push(r))
  for (const c of chunks) p.write(c)
  p.end()
  return { out, bad }
}

const protocolMessage = fc.oneof(
  fc.record({ key: fc.string({ minLength: 1 }), value: fc.jsonValue(), source_id: fc.constantFrom('a', 'b', 'ç', 'x'.repeat(40)), version: fc.oneof(fc.nat(), fc.constant(1_796_127_379_905_062)) }),
  fc.record({ key: fc.string({ minLength: 1 }), value: fc.jsonValue(), source_id: fc.constantFrom('a', 'b'), version: fc.nat(), signature: fc.string() }),
  fc.record({ digest: fc.constant(true), source_id: fc.constantFrom('a', 'b', 'c'), version: fc.nat() }),
  fc.record({ digest: fc.constant(true), source_id: fc.constantFrom('a', 'b', 'c'), version: fc.nat(), protocol: fc.constant(2) }),
  fc.record({ digest: fc.constant(true), done: fc.constant(true), reply: fc.constant(true), rate: fc.double({ noNaN: true, noDefaultInfinity: true }), after: fc.string(), through: fc.string() }, { requiredKeys: ['digest', 'done'] }),
  fc.record({ key: fc.string(), value: fc.jsonValue() }),
)
const message = fc.oneof(protocolMessage, fc.jsonValue().filter((v) => v !== null))

describe('binary wire format', function () {
  this.timeout(60_000)

  it('round-trips every message as JSON would, however the bytes are cut', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }), async (messages, cuts) => {
        const s = serialize()
        const bytes: Buffer[] = []
        s.on('data', (b: Buffer) => bytes.push(Buffer.from(b)))
        for (const m of messages) s.write(m)
        s.end()
        await turn()
        const all = Buffer.concat(bytes)
        const pieces: Uint8Array[] = []
        for (let off = 0, i = 0; off < all.length; i++) {
          pieces.push(all.subarray(off, off + cuts[i % cuts.length]))
          off += cuts[i % cuts.length]
        }
        const { out, bad } = feed(pieces)
        assert.deepStrictEqual(bad, [])
        assert.deepStrictEqual(out, JSON.parse(JSON.stringify(messages)))
      }),
      { numRuns: 300 },
    )
  })

  it('never takes more bytes than the NDJSON lines of the same protocol messages', () => {
    fc.assert(
      fc.property(fc.array(protocolMessage, { minLength: 1, maxLength: 30 }), (messages) => {
        const ndjson = messages.reduce((n: number, m) => n + messageBytes(m), 0)
        assert.ok(encode(messages).length <= ndjson, `${encode(messages).length} > ${ndjson}`)
      }),
      { numRuns: 500 },
    )
    // What the format saves: 100 updates of one source, climbing by one.
    const ups = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: i, source_id: 'a', version: 1_796_127_379_905_062 + i }))
    const b = encode(ups).length
    assert.ok(b / 100 < 12, `${b / 100} bytes per update`)
    // A digest's first entry and its end say the protocol in a flag bit: no byte more.
    const entry = { digest: true, source_id: 'a', version: 1_796_127_379_905_062 }
    assert.strictEqual(encode([{ ...entry, protocol: 2 }]).length, encode([entry]).length)
    assert.strictEqual(encode([{ digest: true, done: true, protocol: 2 }]).length, encode([{ digest: true, done: true }]).length)
  })

  it('fuzz: random bytes never throw, and a frame that yields nothing is reported', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), fc.boolean(), (chunks, framed) => {
        if (!framed) {
          // Unframed garbage: whatever it is read as, nothing throws, no null passes.
          const { out } = feed(chunks, { maxFrameLength: 1000 })
          for (const m of out) assert.notStrictEqual(m, null)
          return
        }
        for (const body of chunks) {
          const { out, bad } = feed([frame(body)], { maxFrameLength: 1000 })
          for (const m of out) assert.notStrictEqual(m, null)
          // A non-empty frame decodes to messages, or is reported.
          if (body.length > 0) assert.ok(out.length > 0 || bad.length > 0, `frame ${Buffer.from(body).toString('hex')} vanished`)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('fuzz: a valid stream with a byte flipped never throws, and resumes at the next frame', () => {
    const good = encode([{ key: 'k', value: { a: [1, 'é', null] }, source_id: 'a', version: 5 }, { digest: true, done: true, protocol: 2 }])
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const bad = Buffer.from(good)
        bad[at] ^= x
        const after = encode([{ ok: 1 }])
        const r = feed([bad, after], { maxFrameLength: 64 })
        // A bit flipped in the length makes the rest one (skipped) frame.
        if (at >= 4) assert.deepStrictEqual(r.out[r.out.length - 1], { ok: 1 })
      }),
      { numRuns: 1000 },
    )
  })

  it('a 4 GB length prefix is reported and its bytes skipped as they arrive, never buffered', () => {
    const p = parse()
    const bad: string[] = []
    const out: unknown[] = []
    p.on('invalid', (_x: unknown, r: string) => bad.push(r))
    p.on('data', (m: unknown) => out.push(m))
    p.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
    const mib = Buffer.alloc(1 << 20, 0x41)
    const before = process.memoryUsage().arrayBuffers
    for (let i = 0; i < 64; i++) p.write(mib) // 64 MiB of the claimed 4 GiB
    const grown = process.memoryUsage().arrayBuffers - before
    assert.deepStrictEqual(bad, [`frame of 4294967295 bytes, over the limit of ${MAX_FRAME_LENGTH}`])
    assert.deepStrictEqual(out, [])
    assert.ok(grown < 8 << 20, `parser memory grew by ${grown} bytes`)
    // With a smaller limit: the oversized frame is skipped and the next one read.
    const r = feed([frame(Buffer.alloc(100)), encode([{ after: true }])], { maxFrameLength: 50 })
    assert.deepStrictEqual(r.out, [{ after: true }])
    assert.strictEqual(r.bad.length, 1)
  })

  it('a frame cut in the middle: what came before is kept, the cut is reported at the end', () => {
    const whole = encode([{ key: 'a', value: 1, source_id: 's', version: 1 }])
    const r = feed([encode([{ first: 1 }]), whole.subarray(0, whole.length - 3)])
    assert.deepStrictEqual(r.out, [{ first: 1 }])
    assert.deepStrictEqual(r.bad, ['partial frame at end of input'])
    // A frame whose last message is cut short inside the frame.
    const inner = feed([frame([0x06, 0x9f, 1, 2])])
    assert.deepStrictEqual(inner.out, [])
    assert.match(inner.bad[0], /cut at the end of its frame/)
  })

  it('invalid UTF-8 in a string ends its frame with a report; earlier messages and later frames go through', () => {
    const bad = frame([0x06, 0x81, 0xa1, 0x61, 0x01, 0x06, 0xa2, 0xc3, 0x28]) // {a:1}, then "\xc3("
    const r = feed([bad, encode([{ next: true }])])
    assert.deepStrictEqual(r.out, [{ a: 1 }, { next: true }])
    assert.deepStrictEqual(r.bad, ['string is not valid UTF-8'])
    // Overlong encodings and surrogates in UTF-8 are invalid too.
    for (const seq of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xff]]) {
      const x = feed([frame([0x06, 0xa0 | seq.length, ...seq])])
      assert.strictEqual(x.bad.length, 1, `accepted ${seq}`)
    }
  })

  it('strings JSON must escape (lone surrogates) survive, as in NDJSON', () => {
    const odd = ['\ud800', 'a\udc00b', '\udbff\udfff', '\u0000\u001f', 'é'.repeat(40)]
    const r = feed([encode(odd.map((s) => ({ s })))])
    assert.deepStrictEqual(r.out, odd.map((s) => ({ s })))
    assert.deepStrictEqual(r.bad, [])
  })

  it('deep nesting is refused before it is built; MAX_DEPTH deep passes, and the node refuses deeper values', () => {
    // 10,000 nested arrays of one item: 10 KB of input.
    const deep = feed([frame([0x06, ...new Array(10_000).fill(0x91), 0x01])])
    assert.deepStrictEqual(deep.out, [])
    assert.match(deep.bad[0], new RegExp(`nested more than ${MAX_DEPTH}`))
    let v: unknown = 1
    for (let i = 0; i < MAX_DEPTH; i++) v = [v]
    assert.deepStrictEqual(feed([encode([{ v }])]).out, [{ v }])
    // One level more reaches the node, which refuses it by value.ts's rule.
    const g = new Gossip('n', { resolve })
    const refused: string[] = []
    g.on('invalid', (_x: unknown, r: string) => refused.push(r))
    const p = parse()
    p.pipe(g)
    p.write(encode([{ key: 'k', value: [v], source_id: 'p', version: 1 }]))
    assert.strictEqual(g.get('k').version, -Infinity)
    assert.match(refused[0], /nested more than/)
  })

  it('huge maps and arrays: counts the frame cannot hold, and containers without an end, are refused', () => {
    for (const body of [
      [0x06, 0x9f], // 15 items claimed, none there
      [0x06, 0x8f, 0xa1, 0x61], // 15 members claimed
      [0x06, 0xc9, 0x01, 0x02], // an array without its end
      [0x06, 0xca, 0xa1, 0x61, 0x01], // a map without its end
      [0x06, 0xc7, 0x61, 0x62], // a string without its end
      [0x06, 0xc3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // a varint past 8 bytes
      [0x06, 0xc5, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f], // Infinity as a float64
      [0x06, 0xc6, 0xaa, 0xf0], // a decimal of dots
      [0x06, 0xee], // an unknown tag
      [0x07], // an unknown opcode
      [0x09, 0x61], // the previous source, before any
      [0x01, 0x05, 0x00], // source 5 of none
    ]) {
      const r = feed([frame(body)])
      assert.deepStrictEqual(r.out, [], `decoded ${body}`)
      assert.strictEqual(r.bad.length, 1, `not reported: ${body}`)
    }
    // A real huge array: half a million items (a million characters of JSON, under the value limit) cross.
    const big = encode([new Array(500_000).fill(0)])
    const r = feed([big])
    assert.strictEqual((r.out[0] as unknown[]).length, 500_000)
    // Past the value limit as JSON, it is stopped as it is decoded.
    const over = feed([encode([new Array(600_000).fill(0)])])
    assert.deepStrictEqual(over.out, [])
    assert.match(over.bad[0], /longer than \d+ characters as JSON/)
  })

  it('one parser decodes frame after frame, each afresh: no source, version or count carries over, after a good frame or a bad one', () => {
    const u = (key: string, version: number) => ({ key, value: 1, source_id: 'a', version })
    // The previous source and its next version, then source 0 without its
    // id: each frame names its own sources.
    const r = feed([encode([u('k', 5)]), frame([0x19, 0xa1, 0x6b, 0x01]), encode([u('k2', 6)]), frame([0x01, 0x00, 0x02, 0xa1, 0x6b, 0x01]), encode([u('k3', 7)])])
    assert.deepStrictEqual(r.out, [u('k', 5), u('k2', 6), u('k3', 7)])
    assert.strictEqual(r.bad.length, 2, r.bad.join('; '))
    // Values counted per frame: three frames of half a million items each
    // (together past MAX_FRAME_ITEMS) all cross.
    const big = encode([new Array(500_000).fill(0)])
    const many = feed([big, big, big])
    assert.deepStrictEqual(many.bad, [])
    assert.deepStrictEqual(many.out.map((a) => (a as unknown[]).length), [500_000, 500_000, 500_000])
  })

  it('attack (third outside attack on issue 21): a value of 4 MiB of empty arrays cost ~200 ms to refuse; required: the decoder counts a value\'s JSON exactly (brackets, commas, keys, quotes), refusing it once past the limit and nothing under it', () => {
    // [value, how many items]: the largest that fits, and one more.
    const shapes: [string, (n: number) => unknown, number][] = [
      ['empty arrays', (n) => Array.from({ length: n }, () => []), 3],
      ['empty maps', (n) => Array.from({ length: n }, () => ({})), 3],
      ['maps of one', (n) => Array.from({ length: n }, () => ({ a: null })), 11],
      ['arrays of 0', (n) => Array.from({ length: n }, () => [0]), 4],
      ['strings', (n) => new Array(n).fill('abcdefgh'), 11],
      ['map members', (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${String(i).padStart(6, '0')}`, 0])), 12],
    ]
    for (const [name, make, each] of shapes) {
      const fits = Math.floor((MAX_VALUE_LENGTH - 1) / each)
      const ok = make(fits)
      assert.ok(JSON.stringify(ok).length <= MAX_VALUE_LENGTH)
      const r = feed([encode([{ key: 'k', value: ok, source_id: 's', version: 1 }])])
      assert.deepStrictEqual([r.bad, r.out.length], [[], 1], `${name}: ${fits} fit`)
      const over = make(fits + 1)
      assert.ok(JSON.stringify(over).length > MAX_VALUE_LENGTH)
      const refused = feed([encode([{ key: 'k', value: over, source_id: 's', version: 1 }])])
      assert.strictEqual(refused.out.length, 0, `${name}: ${fits + 1} decoded`)
      assert.match(refused.bad[0], /longer than \d+ characters as JSON/, name)
    }
  })

  it('text where frames were expected is refused; a hello-less NDJSON line is garbage here', () => {
    const r = feed([Buffer.from('{"key":"k","value":1}\n')])
    assert.strictEqual(r.out.length, 0)
    assert.match(r.bad[0], /over the limit/)
  })

  it('the largest value a node accepts crosses in one frame, even at three bytes a character', async () => {
    const a = new Gossip('a', { resolve })
    const b = new Gossip('b', { resolve })
    const value = '€'.repeat(MAX_VALUE_LENGTH - 2)
    a.set('big', value)
    const out = serialize()
    const sizes: number[] = []
    out.on('data', (c: Buffer) => sizes.push(c.length))
    const input = parse()
    const refused: string[] = []
    input.on('invalid', (_x: unknown, r: string) => refused.push(r))
    a.pipe(out).pipe(input).pipe(b)
    b.pipe(a)
    b.gossip()
    for (let i = 0; i < 20 && b.get('big').version === -Infinity; i++) await turn()
    assert.deepStrictEqual(refused, [])
    assert.strictEqual(b.get('big').value, value)
    assert.ok(Math.max(...sizes) <= MAX_FRAME_LENGTH + 4)
  })

  it('serialize drops and reports what JSON could not carry either, and carries on', async () => {
    const s = serialize()
    const bad: string[] = []
    s.on('invalid', (_x: unknown, r: string) => bad.push(r))
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    s.write(cyclic)
    s.write({ n: BigInt(1) })
    s.write(() => 1)
    s.write({ key: 'k', value: 1, source_id: 'a', version: 7 })
    s.write({ key: 'k', value: { x: BigInt(2) }, source_id: 'a', version: 8 }) // fails midway: nothing of it kept
    s.write({ key: 'k', value: 3, source_id: 'a', version: 9 })
    s.end()
    await turn()
    assert.strictEqual(bad.length, 4)
    const r = feed([Buffer.concat(chunks)])
    assert.deepStrictEqual(r.out, [
      { key: 'k', value: 1, source_id: 'a', version: 7 },
      { key: 'k', value: 3, source_id: 'a', version: 9 },
    ])
  })

  it('coalesces: the objects of one turn leave as one chunk', async () => {
    const s = serialize()
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    for (let i = 0; i < 1000; i++) s.write({ key: `k${i}`, value: i, source_id: 'a', version: 100 + i })
    assert.strictEqual(chunks.length, 0)
    await turn()
    assert.strictEqual(chunks.length, 1)
    const n = serialize({ format: 'ndjson' })
    const lines: Buffer[] = []
    n.on('data', (c: Buffer) => lines.push(c))
    for (let i = 0; i < 1000; i++) n.write({ i })
    await turn()
    assert.strictEqual(lines.length, 1)
    assert.strictEqual(String(lines[0]).split('\n').length, 1001)
  })

  it('a long turn leaves in pieces from 16 KiB, each twice the last up to 256 KiB, and the next turn starts small again', async () => {
    const s = serialize()
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    const sent: unknown[] = []
    const burst = (from: number, n: number): void => {
      for (let i = from; i < from + n; i++) {
        const u = { key: `k${i}`, value: i, source_id: 'a', version: 100 + i }
        sent.push(u)
        s.write(u)
      }
    }
    burst(0, 100_000)
    // Pushed as they fill, before the turn ends.
    const sizes = chunks.map((c) => c.length)
    assert.ok(sizes.length >= 7, `${sizes}`)
    const KiB = 1024
    for (let i = 0; i < 5; i++) {
      assert.ok(sizes[i] >= (16 << i) * KiB && sizes[i] < (16 << i) * KiB + 64, `piece ${i}: ${sizes[i]}`)
    }
    for (let i = 5; i < sizes.length; i++) assert.ok(sizes[i] >= 256 * KiB && sizes[i] < 256 * KiB + 64, `piece ${i}: ${sizes[i]}`)
    await turn()
    const before = chunks.length
    burst(100_000, 2_000)
    assert.strictEqual(chunks.length, before + 1, 'the next turn pushes at 16 KiB again')
    assert.ok(chunks[before].length >= 16 * KiB && chunks[before].length < 16 * KiB + 64)
    await turn()
    // Every piece is whole frames: each decodes alone, all of it in order.
    const out: unknown[] = []
    for (const c of chunks) {
      const r = feed([c])
      assert.deepStrictEqual(r.bad, [])
      out.push(...r.out)
    }
    assert.deepStrictEqual(out, sent)
  })
})
