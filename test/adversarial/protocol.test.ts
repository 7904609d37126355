/**
 * Mixed releases (issue 18, outside attacker BROKE 2): a relay of an older
 * release drops `first` from a copy issued again (R2) and passes it on;
 * nodes then held the same (source, version) with and without `first`,
 * ranked it apart, and their digests agreed, so they stayed split for good.
 * Required: this release refuses a peer of an older protocol on every
 * path: at the hello (code `old_protocol`), and on a bare stream once its
 * digest end shows it (its updates reported `'invalid'`, code `old_peer`,
 * never taken in). docs/wire.md, "Protocol".
 */
import * as assert from 'assert'
import { Transform } from 'stream'
import { Duplex } from 'readable-stream'
import { Gossip, REFUSAL_CODES, base } from '../../lib'
import type { PeerStream, Update } from '../../lib'
import { randomNonce } from '../../lib/node/security'
import { Session, type SessionError } from '../../lib/wire/session'

const cfg = { resolve: base.resolution.lww_vs_current_vers }
const tick = () => new Promise((r) => setTimeout(r, 5))

// What a node of an older release sends: no `first` on a copy, no `protocol` on a digest end.
function older(): Transform {
  return new Transform({
    objectMode: true,
    transform(m: Record<string, unknown>, _e, cb) {
      if (m !== null && typeof m === 'object' && (m.first !== undefined || m.protocol !== undefined)) {
        const { first, protocol, ...rest } = m
        void first
        void protocol
        cb(null, rest)
      } else cb(null, m)
    },
  })
}

// x and y piped; what y sends passes through `old` (y of an older release) when given.
function link(x: Gossip, y: Gossip, old = false): PeerStream[] {
  const sx = x.createStream()
  const sy = y.createStream()
  sx.pipe(sy)
  if (old) sy.pipe(older()).pipe(sx)
  else sy.pipe(sx)
  return [sx, sy]
}

async function rounds(streams: PeerStream[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (const s of streams) s.gossip()
    await tick()
  }
}

const show = (g: Gossip): string => {
  const e = g.state.k as Update | undefined
  return e === undefined ? 'absent' : `${e.source_id}=${String(e.value)}`
}

describe('adversarial: a peer of an older release (issue 18, BROKE 2)', function () {
  this.timeout(30_000)

  it("a hello without a protocol, or an older one, is refused with code old_protocol, the peer told; nothing of its gossip is taken", async () => {
    for (const extra of [{}, { protocol: 1 }, { protocol: '2' }]) {
      // The session's transport: what it writes are lines to us; what we push, the peer's.
      const lines: Record<string, unknown>[] = []
      const mine = new Duplex({
        read() {},
        write(c: Buffer, _e, cb) {
          for (const l of String(c).split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
          cb()
        },
      })
      const g = new Gossip('a', cfg)
      const s = new Session(g, mine, { cluster: 'c', codecs: ['ndjson'], nonce: randomNonce })
      const refused = new Promise<SessionError>((done) => s.once('refused', (err: SessionError) => done(err)))
      mine.push(`${JSON.stringify({ hello: 'simple-scuttle', id: 'old', codecs: ['ndjson'], cluster: 'c', nonce: 'AAAAAAAAAAAAAAAAAAAAAA==', ...extra })}\n`)
      mine.push(`${JSON.stringify({ key: 'k', value: 1, source_id: 'old', version: 1 })}\n`)
      const err = await refused
      assert.strictEqual(err.code, 'old_protocol', JSON.stringify(extra))
      assert.match(err.message, /older than this release's 2/)
      assert.ok(lines.some((l) => l.refused === 'old_protocol'), `the peer is told: ${JSON.stringify(lines)}`)
      assert.strictEqual(lines[0].protocol, 2, 'this release says its protocol in its hello')
      await tick()
      assert.strictEqual(g.state.k, undefined)
    }
    assert.ok(REFUSAL_CODES.includes('old_protocol'), 'a metric label, as every refusal')
  })

  it("a reply's deltas are judged as they come, by its digest's first entry: none of an older release's is taken, a marked one's all are, with no end yet", () => {
    const now = Date.now() * 1000
    for (const protocol of [undefined, 1, 2]) {
      const g = new Gossip('a', cfg)
      const s = g.createStream()
      const codes: string[] = []
      s.on('invalid', (_m: unknown, _why: string, code: string) => codes.push(code))
      const entry = protocol === undefined ? { digest: true, source_id: 'x', version: now } : { digest: true, source_id: 'x', version: now, protocol }
      s.write(entry)
      s.write({ digest: true, source_id: 'y', version: now })
      for (let i = 0; i < 3; i++) s.write({ key: `k${i}`, value: i, source_id: 'x', version: now + i })
      const taken = [0, 1, 2].filter((i) => g.get(`k${i}`).version !== -Infinity).length
      if (protocol === 2) {
        assert.strictEqual(taken, 3, 'a peer of this release: its deltas are taken before its end')
        assert.deepStrictEqual(codes, [])
      } else {
        assert.strictEqual(taken, 0, `protocol ${String(protocol)}: nothing taken`)
        assert.deepStrictEqual(codes, ['old_peer', 'old_peer', 'old_peer'])
      }
    }
    // Updates written straight into a stream, before any digest, are taken.
    const g = new Gossip('a', cfg)
    g.createStream().write({ key: 'k', value: 1, source_id: 'x', version: now })
    assert.strictEqual(g.get('k').value, 1)
  })

  it('a relay of an older release strips first: its updates are refused (old_peer) once its digest end shows it, and every node of this release agrees', async () => {
    const a = new Gossip('a', cfg)
    const b = new Gossip('b', cfg)
    const c = new Gossip('c', cfg)
    const d = new Gossip('d', cfg)
    const r = new Gossip('r', cfg)
    b.set('k', 'b1')
    await tick()
    c.set('k', 'c2')
    await tick()
    // b's past shows itself above (as after a restart from nothing): b
    // issues k again, with `first`, and it keeps its place below c's write.
    b.write({ key: 'past', value: 'p', source_id: 'b', version: Date.now() * 1000 + 2e6 })
    await tick()
    assert.ok(b.history.get('k').some((m) => m.source_id === 'b' && m.first !== undefined), 'the scenario needs a copy issued again')
    const toR = [...link(b, r), ...link(c, r)]
    const rToD = link(d, r, true)
    const refused: [string, string][] = []
    rToD[0].on('invalid', (_m: unknown, _why: string, code: string) => refused.push([code, _why]))
    const rest = [...link(b, a), ...link(c, a), ...link(a, d)]
    // r reaches d first.
    await rounds([...toR, ...rToD], 6)
    await rounds([...toR, ...rToD, ...rest], 10)
    const nodes = [a, b, c, d]
    assert.deepStrictEqual(nodes.map(show), nodes.map(() => show(c)), 'every node of this release holds the same k')
    assert.ok(
      d.history.get('k').every((m) => m.source_id !== 'b' || m.first !== undefined),
      "d holds b's copy with its first",
    )
    assert.ok(refused.length > 0 && refused.every(([code]) => code === 'old_peer'), JSON.stringify(refused.slice(0, 3)))
  })
})
