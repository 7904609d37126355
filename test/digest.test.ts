/**
 * The digest (lib/digest.ts) of clusters that know many sources. A digest
 * names at most DIGEST_PART sources; a longer one goes in parts that tile
 * the source ids, one part per exchange, so every source is named within
 * ceil(sources / (DIGEST_PART - 1)) exchanges, and a peer still refuses a
 * digest that names more than any honest one would. (Before: a node holding
 * more than 1,024 sources could never sync a peer or a newcomer; its digests
 * were refused.)
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import type { Message, PeerStream } from '../lib'
import { DIGEST_PART } from '../lib/digest'

const resolve = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

/** A node that holds one key from each of `n` sources. */
function holding(n: number, mtu: number, digestPart?: number): Gossip {
  const updates = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: i, source_id: `src-${i}`, version: 1 + i }))
  return Gossip.restore('a', { resolve, mtu, max_history: Infinity, digest_part: digestPart }, { version: n + 1, updates })
}

/** Pipe `a` and `b` through a tap that measures every digest. */
function tapped(a: PeerStream, b: PeerStream): { longest: number; exchanges: number } {
  const seen = { longest: 0, exchanges: 0 }
  let run = 0
  const tap = (from: PeerStream, to: PeerStream) =>
    from.on('data', (m: Message) => {
      if ('digest' in m && !('done' in m)) run++
      else if ('done' in m) {
        if (run > seen.longest) seen.longest = run
        run = 0
        seen.exchanges++
      }
      to.write(m)
    })
  tap(a, b)
  tap(b, a)
  return seen
}

// A node holding n sources and a newcomer, their streams joined and watched.
function newcomer(n: number, mtu: number) {
  const a = holding(n, mtu)
  const b = new Gossip('b', { resolve, mtu, max_history: Infinity })
  const sa = a.createStream()
  const sb = b.createStream()
  const refused: string[] = []
  sa.on('invalid', (_o: unknown, r: string) => refused.push(r))
  sb.on('invalid', (_o: unknown, r: string) => refused.push(r))
  return { a, b, sa, sb, refused, seen: tapped(sa, sb) }
}

async function syncFresh(n: number, mtu: number): Promise<{ exchanges: number; longest: number; refused: string[] }> {
  const { b, sb, refused, seen } = newcomer(n, mtu)
  let rounds = 0
  while (Object.keys(b.state).length < n && rounds < 10 * (n / mtu + n / DIGEST_PART) + 10) {
    sb.gossip()
    for (let i = 0; i < 4; i++) await turn()
    rounds++
  }
  assert.strictEqual(Object.keys(b.state).length, n, `b holds ${Object.keys(b.state).length} of ${n} after ${rounds} rounds`)
  return { exchanges: rounds, longest: seen.longest, refused }
}

describe('many sources', function () {
  this.timeout(120_000)

  it('a node holding 1,100 sources syncs a newcomer; no digest names more than DIGEST_PART sources', async () => {
    const r = await syncFresh(1100, 2000)
    assert.deepStrictEqual(r.refused, [])
    assert.ok(r.longest <= DIGEST_PART, `a digest named ${r.longest} sources`)
  })

  it('10,000 sources converge with bounded digests; a new source is found within the bound', async () => {
    const n = 10_000
    const { a, b, sa, sb, refused, seen } = newcomer(n, 5000)
    for (let r = 0; r < 10 && Object.keys(b.state).length < n; r++) {
      sb.gossip()
      for (let i = 0; i < 4; i++) await turn()
    }
    assert.strictEqual(Object.keys(b.state).length, n)
    // A source a has never heard of reaches b; a asks b in parts.
    b.write({ key: 'late', value: 1, source_id: 'm-new', version: n + 5 })
    const bound = Math.ceil((n + 2) / (DIGEST_PART - 1))
    let asked = 0
    while (a.get('late').version === -Infinity && asked < bound) {
      sa.gossip()
      for (let i = 0; i < 4; i++) await turn()
      asked++
    }
    assert.strictEqual(a.get('late').value, 1, `not found in ${asked} exchanges (bound ${bound})`)
    assert.deepStrictEqual(refused, [])
    assert.ok(seen.longest <= DIGEST_PART, `a digest named ${seen.longest} sources`)
  })

  it('every source is named within ceil(sources / (DIGEST_PART - 1)) digests of one stream', () => {
    const n = 3000
    const a = holding(n, 10)
    const s = a.createStream()
    const named = new Set<string>()
    const bound = Math.ceil(n / (DIGEST_PART - 1))
    const ranges: [string | undefined, string | undefined][] = []
    for (let d = 0; d < bound; d++) {
      s.gossip()
      for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) {
        if ('digest' in m && 'source_id' in m) named.add(m.source_id)
        if ('done' in m) ranges.push([m.after, m.through])
      }
    }
    assert.strictEqual(named.size, n)
    // the parts tile the ids: each starts where the last ended, and they wrap
    for (let i = 1; i < ranges.length; i++) assert.strictEqual(ranges[i][0], ranges[i - 1][1])
    assert.strictEqual(ranges[0][0], undefined)
    assert.strictEqual(ranges[ranges.length - 1][1], undefined)
  })

  it('an answer to a part covers the part only: sources outside it are not sent', async () => {
    const a = holding(10, 100)
    const s = a.createStream()
    s.write({ digest: true, done: true, protocol: 2, after: 'src-3', through: 'src-6' })
    await turn()
    const sent: string[] = []
    for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) if (!('digest' in m)) sent.push(m.source_id)
    assert.deepStrictEqual(sent.sort(), ['src-4', 'src-5', 'src-6'])
  })

  it('config.digest_part is per node: a node in parts of 3 and one whole, side by side', () => {
    const parts = holding(10, 100, 3)
    const whole = holding(10, 100)
    const digest = (g: Gossip) => {
      const s = g.createStream()
      s.gossip()
      const named: string[] = []
      let done: Message | undefined
      for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) {
        if ('digest' in m && 'source_id' in m) named.push(m.source_id)
        else if ('done' in m) done = m
      }
      return { named, done }
    }
    const p = digest(parts)
    const w = digest(whole)
    assert.deepStrictEqual(p.named, ['src-0', 'src-1'])
    assert.deepStrictEqual(p.done, { digest: true, done: true, protocol: 2, through: 'src-1' })
    assert.strictEqual(w.named.length, 10)
    assert.deepStrictEqual(w.done, { digest: true, done: true, protocol: 2 })
    assert.throws(() => new Gossip('c', { resolve, digest_part: 1 }), /config.digest_part must be an integer, 2 or more/)
  })
})
