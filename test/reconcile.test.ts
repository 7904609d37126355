/**
 * Reconciliation cut to bytes (lib/reconcile.ts), config.mtu_bytes: no
 * message exceeds it on the wire, in either format, digests included; a
 * digest that does not fit goes in parts, so every source is still named
 * within a bounded number of exchanges (checked with 10,000 sources); a
 * single update over half of it is refused at set.
 */
import * as assert from 'assert'
import { Gossip, base, parse, serialize } from '../lib'
import type { Format, Message, PeerStream } from '../lib'
import { DIGEST_PART } from '../lib/digest'
import { entryBytes, messageBytes, MIN_MTU_BYTES } from '../lib/reconcile'

const resolve = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))
const BASE = 1_796_127_379_905_062 // a microsecond clock's reading

/** A node that holds one key from each of `n` sources, at clock-like versions. */
function holding(n: number, extra: object = {}): Gossip {
  const updates = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: i, source_id: `node-${i}`, version: BASE + i }))
  return Gossip.restore('a', { resolve, max_history: Infinity, ...extra }, { version: BASE + n + 1, updates })
}

function idBytes(id: string): number {
  return Buffer.byteLength(JSON.stringify(id))
}

describe('mtu_bytes', function () {
  this.timeout(120_000)

  it('is checked: an integer of at least 16 KiB, or Infinity; unset is no bound', () => {
    for (const bad of [0, 1000, MIN_MTU_BYTES - 1, 20000.5, -1, NaN, '65536']) {
      assert.throws(() => new Gossip('a', { resolve, mtu_bytes: bad as number }), /mtu_bytes/)
    }
    assert.strictEqual(new Gossip('a', { resolve }).mtuBytes, Infinity)
    assert.strictEqual(new Gossip('a', { resolve, mtu_bytes: Infinity }).mtuBytes, Infinity)
    assert.strictEqual(new Gossip('a', { resolve, mtu_bytes: 65536, mtu: 7 }).mtuBytes, 65536)
  })

  it('refuses at set, with a clear TypeError, a single update over half of it', () => {
    const g = new Gossip('a', { resolve, mtu_bytes: MIN_MTU_BYTES })
    const room = MIN_MTU_BYTES / 2 - messageBytes({ key: 'k', value: '', source_id: 'a', version: Number.MAX_SAFE_INTEGER })
    assert.throws(() => g.set('k', 'x'.repeat(room + 1)), (err: Error) => err instanceof TypeError && /over half of mtu_bytes \(8192 of 16384\)/.test(err.message))
    assert.strictEqual(g.get('k').version, -Infinity)
    g.set('k', 'x'.repeat(room))
    // Non-ASCII counts in UTF-8 bytes: 3 each.
    assert.throws(() => g.set('k2', 'é€'.repeat(room / 4)), /over half of mtu_bytes/)
  })

  it('refuses from a stream, with an invalid report, the update it would refuse at set (a peer without mtu_bytes found it)', async () => {
    const g = new Gossip('b', { resolve, mtu_bytes: MIN_MTU_BYTES })
    const said: string[] = []
    g.on('invalid', (_o: unknown, reason: string) => said.push(reason))
    g.write({ key: 'big', value: 'x'.repeat(20_000), source_id: 'a', version: BASE })
    g.write({ key: 'small', value: 1, source_id: 'a', version: BASE + 1 })
    await turn()
    assert.strictEqual(g.get('big').version, -Infinity)
    assert.strictEqual(g.get('small').value, 1)
    assert.deepStrictEqual(said.length, 1)
    assert.match(said[0], /over half of mtu_bytes \(8192 of 16384\): it could never be sent/)
  })

  for (const format of ['ndjson', 'binary'] as Format[]) {
    it(`no message on the wire exceeds it (${format}), and the nodes converge`, async () => {
      const M = MIN_MTU_BYTES
      const config = { resolve, mtu: 10_000, mtu_bytes: M, max_history: Infinity }
      const a = new Gossip('a', config)
      const b = new Gossip('b', config)
      for (let i = 0; i < 400; i++) a.set(`key-${i}`, { text: 'é'.repeat(i % 300), n: i })
      for (let i = 0; i < 100; i++) b.set(`b-${i}`, 'v'.repeat(1000))
      const chunks: number[] = []
      const link = (from: Gossip, to: Gossip) => {
        const out = serialize({ format })
        out.on('data', (c: Buffer) => chunks.push(c.length))
        from.pipe(out).pipe(parse({ format })).pipe(to)
      }
      link(a, b)
      link(b, a)
      let rounds = 0
      while ((Object.keys(b.state).length < 500 || Object.keys(a.state).length < 500) && rounds < 200) {
        ;(rounds % 2 === 0 ? b : a).gossip()
        for (let i = 0; i < 6; i++) await turn()
        rounds++
      }
      assert.strictEqual(Object.keys(a.state).length, 500)
      assert.strictEqual(Object.keys(b.state).length, 500)
      // One message per turn here: each chunk the serializer wrote is one message.
      assert.ok(Math.max(...chunks) <= M, `a message of ${Math.max(...chunks)} bytes`)
      // It took more than one message each way: the bound did cut.
      assert.ok(rounds > 4, `${rounds} rounds`)
    })
  }

  it('cuts each source only at its newest end, and fills the rest with other sources', async () => {
    const config = { resolve, mtu: 10_000, mtu_bytes: MIN_MTU_BYTES, max_history: Infinity }
    const a = new Gossip('a', config)
    for (let i = 0; i < 50; i++) a.set(`a${i}`, 'x'.repeat(400))
    a.write({ key: 'c0', value: 1, source_id: 'c', version: a.version + 1 })
    const s = a.createStream()
    s.write({ digest: true, done: true, protocol: 2 })
    await turn()
    const got: Message[] = []
    for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) got.push(m)
    const bytes = got.reduce((n, m) => n + messageBytes(m), 0)
    assert.ok(bytes <= MIN_MTU_BYTES, `${bytes} bytes`)
    const mine = got.filter((m) => 'source_id' in m && !('digest' in m) && m.source_id === 'a') as { version: number }[]
    // a's updates: a prefix of its versions, in order.
    const all = a.history.news('a', -Infinity).map((u) => u.version)
    assert.deepStrictEqual(
      mine.map((u) => u.version),
      all.slice(0, mine.length),
    )
    assert.ok(mine.length > 0 && mine.length < 50)
    assert.ok(got.some((m) => 'source_id' in m && !('digest' in m) && m.source_id === 'c'), "c's small update fills the room")
  })

  it('10,000 sources: every digest fits half of it, the parts tile the ids, every source is named within the bound', () => {
    const n = 10_000
    const M = 64 << 10
    const a = holding(n, { mtu_bytes: M, mtu: 100 })
    const s = a.createStream()
    // The bound: each part names at least k sources, k from the largest entry.
    const longest = `node-${n - 1}`
    const entry = entryBytes(longest, BASE + n)
    const own = entryBytes('a', Number.MAX_SAFE_INTEGER)
    const done = 58 + 9 + idBytes(longest) + 11 + idBytes(longest)
    const k = Math.min(DIGEST_PART - 1, Math.floor((Math.floor(M / 2) - own - done) / entry))
    const bound = Math.ceil(n / k)
    const named = new Set<string>()
    const ranges: [string | undefined, string | undefined][] = []
    let longestDigest = 0
    for (let d = 0; d < bound; d++) {
      s.gossip()
      let bytes = 0
      for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) {
        bytes += messageBytes(m)
        if ('digest' in m && 'source_id' in m) named.add(m.source_id)
        if ('done' in m) ranges.push([m.after, m.through])
      }
      longestDigest = Math.max(longestDigest, bytes)
    }
    assert.strictEqual(named.size, n, `${named.size} of ${n} sources named in ${bound} exchanges (k = ${k})`)
    assert.ok(longestDigest <= M / 2, `a digest of ${longestDigest} bytes`)
    for (let i = 1; i < ranges.length; i++) assert.strictEqual(ranges[i][0], ranges[i - 1][1])
    assert.strictEqual(ranges[0][0], undefined)
    // The figures the README states: 64 KiB, ids like node-1234, µs versions.
    assert.strictEqual(k, 486)
    assert.strictEqual(bound, 21)
  })

  it('10,000 sources converge over the binary wire with every message within 64 KiB', async () => {
    const n = 10_000
    const M = 64 << 10
    const a = holding(n, { mtu_bytes: M, mtu: 5000 })
    const b = new Gossip('b', { resolve, mtu_bytes: M, mtu: 5000, max_history: Infinity })
    const chunks: number[] = []
    const refused: string[] = []
    const link = (from: PeerStream, to: PeerStream) => {
      const out = serialize()
      out.on('data', (c: Buffer) => chunks.push(c.length))
      const input = parse()
      input.on('invalid', (_x: unknown, r: string) => refused.push(r))
      to.on('invalid', (_x: unknown, r: string) => refused.push(r))
      from.pipe(out).pipe(input).pipe(to)
    }
    link(a, b)
    link(b, a)
    let rounds = 0
    while (Object.keys(b.state).length < n && rounds < 300) {
      b.gossip()
      for (let i = 0; i < 6; i++) await turn()
      rounds++
    }
    assert.strictEqual(Object.keys(b.state).length, n)
    assert.deepStrictEqual(refused, [])
    assert.ok(Math.max(...chunks) <= M, `a message of ${Math.max(...chunks)} bytes`)
  })
})
