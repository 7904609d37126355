/**
 * The exchange with one peer (lib/exchange.ts): push-pull, case by case;
 * knowing when a stream is in sync and how far behind each side is; and
 * streams that only send or only receive.
 */
import * as assert from 'assert'
import { Gossip, base, resolution } from '../lib'
import type { Message, PeerStream, Update } from '../lib'
import { Net, exchange, lww as config } from './net'
import { settingsOf } from '../lib/config'
import { Exchange, type ExchangeNode, type Outbox } from '../lib/exchange'
import { Replica } from '../lib/replica'
import type { ResolutionContext } from '../lib/types'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

/** Everything a stream has queued for its peer. */
function drain(s: PeerStream): Message[] {
  const out: Message[] = []
  for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) out.push(m)
  return out
}

const updates = (ms: Message[]) => ms.filter((m): m is Update => !('digest' in m))

describe('the exchange', () => {
  it('answers a digest with what the peer lacks, then its own digest (push-pull)', () => {
    const a = new Gossip('a', config())
    a.set('x', 1)
    a.write({ key: 'y', value: 2, source_id: 'c', version: 5 })
    a.write({ digest: true, source_id: 'c', version: 5 })
    a.write({ digest: true, done: true, protocol: 2 })
    const out = drain(a)
    // c is named at 5: nothing of c; a is not named: all of a.
    assert.deepStrictEqual(updates(out).map((u) => u.key), ['x'])
    const digest = out.filter((m) => 'digest' in m)
    // the end says how far behind the peer was: one update (x)
    assert.deepStrictEqual(digest[digest.length - 1], { digest: true, done: true, protocol: 2, reply: true, behind: 1 })
    assert.ok(digest.some((m) => 'source_id' in m && m.source_id === 'c' && m.version === 5))
    assert.ok(digest.some((m) => 'source_id' in m && m.source_id === 'a' && m.version === a.version))
  })

  it("twins: a source a peer names twinned has its mappings offered to peers whose digests passed them, once each, and the peer's claim is passed on for no longer than it said (issue 21)", () => {
    const a = new Gossip('a', config())
    for (let v = 1; v <= 3; v++) a.write({ key: `k${v}`, value: v, source_id: 't', version: v })
    // A peer naming t above all it holds gets none of it, as usual.
    const asked = (done: Record<string, unknown>): Message[] => {
      const s = a.createStream()
      s.write({ digest: true, source_id: 't', version: 10 })
      s.write({ digest: true, done: true, protocol: 2, ...done })
      return drain(s)
    }
    assert.deepStrictEqual(updates(asked({})), [])
    // Told that t is twinned (its versions interleave), each is offered: the peer may lack it.
    const told = asked({ twins: { t: 30_000, u: 10 ** 9 } })
    assert.deepStrictEqual(updates(told).map((u) => u.key), ['k1', 'k2', 'k3'])
    // Passed on for at most as long (whole seconds), and what is past TWIN_OFFER_MS is left out.
    const end = told[told.length - 1] as { twins?: Record<string, number> }
    assert.ok(end.twins !== undefined && Object.keys(end.twins).join() === 't' && end.twins.t <= 30_000 && end.twins.t >= 29_000, JSON.stringify(end))
    // Once per peer: the same stream asking again gets nothing more.
    const s = a.createStream()
    const ask = () => {
      s.write({ digest: true, source_id: 't', version: 10 })
      s.write({ digest: true, done: true, protocol: 2 })
      return updates(drain(s)).map((u) => u.key)
    }
    assert.deepStrictEqual([ask(), ask()], [['k1', 'k2', 'k3'], []])
    // What it takes of t meanwhile is offered too.
    a.write({ key: 'k4', value: 4, source_id: 't', version: 4 })
    assert.deepStrictEqual(ask(), ['k4'])
  })

  it('never answers a reply with a digest, so stray or repeated digests cannot ping-pong', async () => {
    // Two streams joined directly, then a question neither side asked and
    // a repeated one: each is answered once and the link falls quiet.
    const net = new Net(['a', 'b'], () => config())
    const link = net.connect(0, 1)
    net.nodes[0].set('x', 1)
    link.sa.write({ digest: true, done: true, protocol: 2 })
    link.sb.write({ digest: true, done: true, protocol: 2 })
    link.sb.write({ digest: true, done: true, protocol: 2 })
    await net.settle()
    assert.strictEqual(net.nodes[1].get('x').value, 1)
    let moved = 0
    for (const s of [link.sa, link.sb]) while (s.read() !== null) moved++
    assert.strictEqual(moved, 0)
  })

  it("accepts 'id' as an alias of source_id in digests", () => {
    const a = new Gossip('a', config())
    a.write({ key: 'y', value: 2, source_id: 'c', version: 5 })
    a.write({ digest: true, id: 'c', version: 5 })
    a.write({ digest: true, done: true, protocol: 2 })
    assert.deepStrictEqual(updates(drain(a)), [])
  })

  it('treats a version of its own id it never sent as a past incarnation, and writes again above it', () => {
    const a = new Gossip('a', config())
    a.set('x', 1)
    const before = a.get('x').version
    // a peer claims to hold a's versions up to one a never sent anyone
    a.write({ digest: true, source_id: 'a', version: before })
    a.write({ digest: true, done: true, protocol: 2 })
    const sent = updates(drain(a))
    assert.deepStrictEqual(sent.map((u) => [u.key, u.value]), [['x', 1]])
    assert.ok(sent[0].version > before)
  })

  it('one gossip() on either end reconciles both directions', async () => {
    for (const side of ['sa', 'sb'] as const) {
      const net = new Net(['a', 'b'], () => config())
      const link = net.connect(0, 1)
      net.nodes[0].set('from-a', 1)
      net.nodes[1].set('from-b', 2)
      assert.strictEqual(link[side].gossip(), true)
      await net.settle()
      for (const g of net.nodes) {
        assert.strictEqual(g.get('from-a').value, 1)
        assert.strictEqual(g.get('from-b').value, 2)
      }
    }
  })

  it('works piped as in the original: A.pipe(B).pipe(A)', async () => {
    const a = new Gossip('a', config())
    const b = new Gossip('b', config())
    a.pipe(b).pipe(a)
    a.set('x', 'from a')
    b.set('y', 'from b')
    const done = new Promise<void>((resolve) => {
      const check = () => {
        if (Object.keys(a.state).length === 2 && Object.keys(b.state).length === 2) resolve()
      }
      a.history.on('update', check)
      b.history.on('update', check)
    })
    b.gossip()
    await done
    assert.strictEqual(a.get('y').value, 'from b')
    assert.strictEqual(b.get('x').value, 'from a')
  })

  it('sends at most mtu updates per exchange, each source in version order without gaps', async () => {
    for (const order of ['depth', 'breadth'] as const) {
      const a = new Gossip('a', config({ mtu: 5, order }))
      for (let i = 0; i < 7; i++) a.set(`a${i}`, i)
      for (let i = 0; i < 4; i++) a.write({ key: `c${i}`, value: i, source_id: 'c', version: i + 1 })
      a.write({ digest: true, done: true, protocol: 2 })
      const sent = updates(drain(a))
      assert.strictEqual(sent.length, 5)
      for (const src of ['a', 'c']) {
        const mine = sent.filter((u) => u.source_id === src).map((u) => u.version)
        const all = a.history.news(src, -1).map((u) => u.version)
        assert.deepStrictEqual(mine, all.slice(0, mine.length), `${order}: ${src} sent a prefix`)
      }
      if (order === 'depth') {
        // the source with most waiting (a: 7) fills the exchange
        assert.deepStrictEqual(sent.map((u) => u.source_id), ['a', 'a', 'a', 'a', 'a'])
      } else {
        // rank by rank: both sources' first two deltas before anyone's third
        const fromA = sent.filter((u) => u.source_id === 'a').length
        assert.ok(fromA === 2 || fromA === 3, `breadth sent ${fromA} of a`)
      }
    }
  })

  it('breaks depth ties at random, with config.random', () => {
    const firsts = new Set<string>()
    for (const r of [0, 0.99]) {
      const a = new Gossip('a', config({ mtu: 1, random: () => r }))
      a.write({ key: 'x', value: 1, source_id: 'b', version: 1 })
      a.write({ key: 'y', value: 1, source_id: 'c', version: 1 })
      a.write({ digest: true, id: 'a', version: 0 })
      a.write({ digest: true, done: true, protocol: 2 })
      firsts.add(updates(drain(a))[0].source_id)
    }
    assert.deepStrictEqual([...firsts].sort(), ['b', 'c'])
  })

  it('nodes that agree exchange digests and no updates', async () => {
    const net = new Net(['a', 'b'], () => config({ mtu: 3 }))
    const link = net.connect(0, 1)
    for (let i = 0; i < 5; i++) net.nodes[0].set(`k${i}`, i)
    for (let i = 0; i < 3; i++) {
      link.sb.gossip()
      await net.settle()
      link.sa.gossip()
      await net.settle()
    }
    assert.strictEqual(Object.keys(net.nodes[1].state).length, 5)
    const before = net.traffic.updates
    link.sa.gossip()
    link.sb.gossip()
    await net.settle()
    assert.strictEqual(net.traffic.updates, before)
  })

  it('answers from the state what a small history forgot', async () => {
    const net = new Net(['a', 'b'], () => config({ max_history: 2, mtu: 3 }))
    const link = net.connect(0, 1)
    const memories: number[] = []
    net.nodes[0].history.on('compaction', (memory: Update[]) => memories.push(memory.length))
    for (let i = 0; i < 10; i++) net.nodes[0].set(`k${i}`, i)
    assert.ok(memories.length > 0, "'compaction' was emitted")
    assert.ok(net.nodes[0].history.length <= 2)
    for (let i = 0; i < 4; i++) {
      link.sb.gossip()
      await net.settle()
    }
    assert.strictEqual(Object.keys(net.nodes[1].state).length, 10)
  })

  it('does not queue a digest for a peer that has not read the last one', () => {
    const a = new Gossip('a', config({ mtu: 1 }))
    a.set('x', 1)
    assert.strictEqual(a.gossip(), true)
    assert.strictEqual(a.gossip(), false)
    drain(a)
    assert.strictEqual(a.gossip(), true)
  })

  it('ignores a duplicate of the current mapping without consulting resolve', () => {
    let calls = 0
    const g = new Gossip('a', {
      resolve: (gossip, u) => {
        calls++
        return resolution.lww_vs_current_vers(gossip, u)
      },
    })
    const u = { key: 'k', value: 1, source_id: 'b', version: 3 }
    g.write(u)
    g.write(u)
    assert.strictEqual(calls, 1)
  })
})

describe('in sync', () => {
  it("emits 'sync' once both hold the same versions of every source, with how far behind each was", async () => {
    const a = new Gossip('a', { resolve: lww, mtu: 3 })
    const b = new Gossip('b', { resolve: lww, mtu: 3 })
    for (let i = 0; i < 7; i++) a.set(`a${i}`, i)
    for (let i = 0; i < 2; i++) b.set(`b${i}`, i)
    const sa = a.createStream()
    const sb = b.createStream()
    const seen: { them: number; us: number }[] = []
    sa.on('sync', (p) => seen.push(p))
    let synced = 0
    a.on('synced', () => synced++)
    await exchange(sa, sb)
    // a asked: b lacked 7 of a's (a counted), a lacked 2 of b's (b said so
    // on its reply); b knows only what a lacked (a's question says nothing)
    assert.deepStrictEqual(sa.behind, { them: 7, us: 2 })
    assert.strictEqual(sb.behind.them, 2)
    assert.strictEqual(sa.synced, false)
    for (let r = 0; r < 5 && !sa.synced; r++) await exchange(sa, sb)
    assert.strictEqual(sa.synced, true)
    assert.deepStrictEqual(sa.behind, { them: 0, us: 0 })
    assert.deepStrictEqual(seen, [{ them: 0, us: 0 }])
    assert.strictEqual(synced, 1, "the node's 'synced' once its only stream is in sync")
    // a new write: out of sync until the next exchange carries it
    a.set('late', 1)
    await exchange(sa, sb)
    await exchange(sa, sb)
    assert.strictEqual(b.get('late').value, 1)
    assert.strictEqual(sa.synced, true)
  })

  it("the node emits 'synced' only once every stream is in sync", async () => {
    const hub = new Gossip('hub', { resolve: lww })
    const p = new Gossip('p', { resolve: lww })
    const q = new Gossip('q', { resolve: lww })
    const hp = hub.createStream()
    const hq = hub.createStream()
    const ph = p.createStream()
    const qh = q.createStream()
    let synced = 0
    hub.on('synced', () => synced++)
    p.set('x', 1)
    q.set('y', 2)
    for (let r = 0; r < 4; r++) {
      await exchange(hp, ph)
      if (r === 1) assert.strictEqual(synced, 0, 'q has not exchanged yet')
      await exchange(hq, qh)
    }
    // both in sync; p and q each caught up with the other through the hub
    for (let r = 0; r < 3; r++) {
      await exchange(hp, ph)
      await exchange(hq, qh)
    }
    assert.ok(hp.synced && hq.synced)
    assert.ok(synced >= 1)
  })
})

describe('one-way streams', () => {
  it("a replica's writes never reach the primary through a stream that takes none; the replicas converge", async () => {
    const primary = new Gossip('primary', { resolve: lww })
    const replicas = [new Gossip('r1', { resolve: lww }), new Gossip('r2', { resolve: lww })]
    const links = replicas.map((r) => [primary.createStream({ writable: false }), r.createStream()] as const)
    const refused: string[] = []
    for (const [ps] of links) ps.on('invalid', (_o: unknown, why: string) => refused.push(why))
    primary.set('config', { v: 1 })
    replicas[0].set('replica-only', 'r1 wrote it')
    for (let r = 0; r < 3; r++) {
      for (const [ps, rs] of links) {
        await exchange(ps, rs)
        await exchange(rs, ps)
      }
    }
    for (const r of replicas) assert.deepStrictEqual(r.get('config').value, { v: 1 })
    assert.strictEqual(primary.get('replica-only').version, -Infinity, "the replica's write reached the primary")
    assert.deepStrictEqual(refused, [], 'the replica was told, and sent nothing')
    // a peer that ignores the announcement is refused
    links[0][0].write({ key: 'forced', value: 1, source_id: 'r1', version: 1 } as Message)
    await turn()
    assert.strictEqual(primary.get('forced').version, -Infinity)
    assert.match(refused[0], /takes no updates/)
    // nor a local write, which would come back as the primary's own (attack found it)
    links[0][0].write({ key: 'leak', value: 1 } as unknown as Message)
    await turn()
    assert.strictEqual(primary.get('leak').version, -Infinity)
    assert.match(refused[1], /takes no updates/)
  })

  for (const both of [true, false]) {
    it(`a one-way link is in sync once the receiving end holds what the sender does (${both ? 'both ends say so' : 'only the receiving end says readable: false'}; attack found it)`, async () => {
      const a = new Gossip('a', { resolve: lww })
      const b = new Gossip('b', { resolve: lww })
      a.set('a-only', 1)
      b.set('b-data', 2)
      const sa = a.createStream({ readable: false })
      const sb = b.createStream(both ? { writable: false } : {})
      const events: string[] = []
      sa.on('sync', () => events.push('sa sync'))
      sb.on('sync', () => events.push('sb sync'))
      a.on('synced', () => events.push('a synced'))
      b.on('synced', () => events.push('b synced'))
      for (let r = 0; r < 3; r++) {
        await exchange(sa, sb)
        await exchange(sb, sa)
      }
      assert.strictEqual(a.get('b-data').value, 2)
      assert.strictEqual(b.get('a-only').version, -Infinity)
      assert.deepStrictEqual([...events].sort(), ['a synced', 'b synced', 'sa sync', 'sb sync'])
      assert.deepStrictEqual([sa.behind, sb.behind], [{ them: 0, us: 0 }, { them: 0, us: 0 }])
      // A new write on the sending end: out of sync until it crossed.
      b.set('more', 3)
      await exchange(sb, sa)
      assert.ok(!sb.synced, 'b knows a lacks its new write')
      await exchange(sa, sb)
      assert.strictEqual(a.get('more').value, 3)
      await exchange(sb, sa)
      assert.ok(sa.synced && sb.synced)
    })
  }

  it('a stream that sends nothing receives, and sends its digests', async () => {
    const a = new Gossip('a', { resolve: lww })
    const b = new Gossip('b', { resolve: lww })
    const sa = a.createStream({ readable: false })
    const sb = b.createStream()
    a.set('a-only', 1)
    b.set('b-data', 2)
    for (let r = 0; r < 3; r++) {
      await exchange(sa, sb)
      await exchange(sb, sa)
    }
    assert.strictEqual(a.get('b-data').value, 2)
    assert.strictEqual(b.get('a-only').version, -Infinity)
  })
})

// An Exchange on its own, through the interfaces it is built on: a node
// (ExchangeNode) holding a Replica, events recorded, and for each call an
// outbox that collects the messages out. No Gossip, no stream: message in,
// messages out.
describe('an Exchange with no stream: message in, messages out', () => {
  function fake(id: string) {
    const settings = settingsOf(id, { resolve: lww })
    const events: [string, unknown[]][] = []
    let synced = 0
    const context: ResolutionContext = {
      id,
      get version() {
        return replica.clock.time
      },
      sort: settings.sort,
      get state() {
        return replica.state as Readonly<Record<string, Update>>
      },
      get: (key) => replica.get(key),
      sources: (key) => replica.sources(key),
    }
    const replica: Replica = new Replica(id, settings, null, {
      context,
      emit: (event, ...args) => events.push([String(event), args]) > 0,
      rawListeners: () => [],
      peers: () => [ex],
    })
    const node: ExchangeNode = {
      replica,
      flow: null,
      mtu: settings.mtu,
      mtuBytes: settings.mtuBytes,
      order: settings.order,
      random: settings.random,
      sort: settings.sort,
      signed: false,
      localWrites: false,
      pump: () => {},
      exchanges: () => [ex],
      peerSynced: () => void synced++,
      writeLocal: () => assert.fail('no local writes come through this exchange'),
    }
    const ex: Exchange = new Exchange(node, { emit: (event, ...args) => events.push([String(event), args]) > 0, destroyed: false }, {}, undefined)
    return { replica, ex, events, synced: () => synced }
  }

  // An outbox that collects what is pushed; `unread` messages the peer has
  // not read yet (at 1 or more it is full: what is called for is owed).
  function outbox(unread = 0): Outbox & { readonly out: Message[] } {
    const out: Message[] = []
    return { out, push: (m) => out.push(m) > 0, readableLength: unread, readableHighWaterMark: 1 }
  }
  // Message in, messages out.
  function send(ex: Exchange, m: unknown): Message[] {
    const o = outbox()
    ex.take(m, o)
    return o.out
  }

  it('answers a digest with its own, the updates the peer lacks, and an end marked as a reply', () => {
    const { replica, ex, events } = fake('a')
    replica.local('x', 1)
    replica.local('y', 2)
    const own = replica.clock.time
    // The peer holds c up to 5 and nothing of a.
    assert.deepStrictEqual(send(ex, { digest: true, source_id: 'c', version: 5 }), [], 'nothing before the digest ends')
    // Our digest (a at our clock; we hold nothing of c; its first entry
    // says our protocol), what the peer lacks (all of a), and the end: a
    // reply saying it was 2 updates behind.
    assert.deepStrictEqual(
      send(ex, { digest: true, done: true, protocol: 2 }).map((m) => ('digest' in m ? m : [m.key, m.value, m.source_id])),
      [{ digest: true, source_id: 'a', version: own, protocol: 2 }, ['x', 1, 'a'], ['y', 2, 'a'], { digest: true, done: true, protocol: 2, reply: true, behind: 2 }],
    )
    assert.deepStrictEqual(ex.behind, { them: 2, us: 0 })
    assert.deepStrictEqual(events, [])
  })

  it('takes the updates of an answer into the replica, and finds the peer in sync once digests agree', () => {
    const { replica, ex, synced } = fake('a')
    const q = outbox()
    assert.ok(ex.ask(q))
    // A node holding nothing may be one restarted from nothing: it asks
    // for its past (R1) and names itself on the end (rule 5's `past`).
    assert.deepStrictEqual(q.out, [{ digest: true, done: true, protocol: 2, past: 'a' }], 'a question from a node holding nothing: an empty digest asking for its past')
    const out = [
      send(ex, { key: 'k', value: 'v', source_id: 'b', version: 7 }),
      send(ex, { digest: true, source_id: 'b', version: 7 }),
      send(ex, { digest: true, done: true, protocol: 2, reply: true, behind: 0 }),
    ]
    assert.strictEqual(replica.get('k').value, 'v')
    assert.deepStrictEqual(out, [[], [], []], 'a reply is not answered with a digest, and the peer lacks nothing')
    assert.strictEqual(ex.synced, true)
    assert.strictEqual(synced(), 1)
  })

  it('owes what a digest calls for while the outbox is full, asks nothing more, and pays it once there is room', () => {
    const { replica, ex } = fake('a')
    replica.local('x', 1)
    const full = outbox(1)
    ex.take({ digest: true, done: true, protocol: 2 }, full)
    assert.deepStrictEqual(full.out, [], 'nothing pushed onto a full outbox')
    assert.strictEqual(ex.owes, true)
    assert.strictEqual(ex.ask(outbox()), false, 'no question while a reply is owed')
    const room = outbox()
    ex.pay(room)
    assert.deepStrictEqual(
      room.out.map((m) => ('digest' in m ? ('done' in m ? 'end' : 'digest') : m.key)),
      ['digest', 'x', 'end'],
    )
    assert.strictEqual(ex.owes, false)
  })
})
