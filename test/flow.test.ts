/**
 * Flow control (paper section 4): the unit behaviour of the backlog and of
 * AIMD, interoperation with nodes that do not speak it, and the paper's
 * claims as properties over seeds of small simulated runs: admitted rate
 * converges to a stable level that uses the network without overloading it,
 * shares are fair, a node that needs less leaves the rest to others, and the
 * backlog drains once load drops.
 */
import { strict as assert } from 'assert'
import { Gossip, base } from '../lib'
import type { PeerStream } from '../lib'
import { FlowControl, flowDefaults, flowOptions, overflowed } from '../lib/flow'
import { classify, Kind } from '../lib/shape'
import { History } from '../lib/history'
import { Simulation } from '../lib/sim'
import type { FlowControlOptions, Message } from '../lib/types'

const resolve = base.resolution.lww_vs_current_vers

function node(id: string, flow?: boolean | FlowControlOptions, mtu = 10): Gossip {
  return new Gossip(id, { resolve, mtu, flow_control: flow })
}

// Move objects both ways until quiet; returns what a->b carried.
function exchange(a: PeerStream, b: PeerStream): Message[] {
  const seen: Message[] = []
  a.gossip()
  for (;;) {
    let moved = 0
    for (let m = a.read() as Message | null; m !== null; m = a.read() as Message | null) {
      seen.push(m)
      b.write(m)
      moved++
    }
    for (let m = b.read() as Message | null; m !== null; m = b.read() as Message | null) {
      a.write(m)
      moved++
    }
    if (moved === 0) return seen
  }
}

/** Jain's fairness index of non-negative shares: 1 is perfectly fair. */
function jain(xs: readonly number[]): number {
  const s = xs.reduce((a, b) => a + b, 0)
  const q = xs.reduce((a, b) => a + b * b, 0)
  return q === 0 ? 1 : (s * s) / (xs.length * q)
}

describe('flow control: configuration', () => {
  it('is off unless asked for, and on with the documented defaults for true', () => {
    assert.equal(flowOptions(undefined), null)
    assert.equal(flowOptions(false), null)
    const o = flowOptions(true)
    assert.ok(o !== null)
    assert.deepEqual({ ...o, now: undefined }, { ...flowDefaults, now: undefined })
    assert.equal(typeof o.now, 'function')
    assert.equal(node('a').flow, null)
    assert.ok(node('b', true).flow instanceof FlowControl)
    assert.equal(node('c', { initial: 5 }).flow?.allowed, 5)
  })

  it('refuses bad settings with TypeErrors that name the field', () => {
    const bad: [unknown, RegExp][] = [
      ['yes', /flow_control must be/],
      [[], /flow_control must be/],
      [null, /flow_control must be/],
      [{ decrease: 1 }, /decrease/],
      [{ decrease: 0 }, /decrease/],
      [{ increase: -1 }, /increase/],
      [{ initial: NaN }, /initial/],
      [{ initial: Infinity }, /initial/],
      [{ min: 2, max: 1 }, /min/],
      [{ initial: 0.001 }, /initial/],
      [{ burst: 0 }, /burst/],
      [{ now: 3 }, /now/],
      [{ max: '9' }, /max/],
    ]
    for (const [option, message] of bad) {
      assert.throws(() => node('x', option as FlowControlOptions), (e: unknown) => e instanceof TypeError && message.test((e as Error).message))
    }
  })
})

describe('flow control: backlog and AIMD', () => {
  let time = 0
  const now = (): number => time
  beforeEach(() => {
    time = 0
  })

  it('admits at the allowed rate, keeps the rest FIFO, never drops, and set reports the wait', () => {
    const g = node('a', { initial: 2, burst: 1, now })
    const results = [1, 2, 3, 4, 5].map((v) => g.set('k' + v, v))
    assert.deepEqual(results, [true, true, false, false, false])
    assert.equal(g.flow?.backlog, 3)
    assert.equal(g.get('k3').value, null)
    time = 1
    g.flow?.pump()
    assert.equal(g.flow?.backlog, 1)
    assert.equal(g.get('k4').value, 4)
    time = 10 // credit is capped at burst x rate: no avalanche after idling
    g.flow?.pump()
    assert.equal(g.flow?.backlog, 0)
    assert.equal(g.flow?.admitted, 5)
    const versions = [1, 2, 3, 4, 5].map((v) => g.get('k' + v).version)
    assert.deepEqual([...versions].sort((x, y) => x - y), versions, 'admitted in FIFO order')
  })

  it('admits local writes that arrive through the stream the same way', () => {
    const g = node('a', { initial: 1, now })
    g.write({ key: 'x', value: 1 })
    g.write({ key: 'y', value: 2 })
    assert.equal(g.get('x').value, 1)
    assert.equal(g.get('y').value, null)
    assert.equal(g.flow?.backlog, 1)
  })

  it('shrinks multiplicatively on overflow, grows additively only while limited, and averages with the peer', () => {
    const f = new FlowControl({ ...flowDefaults, initial: 4, decrease: 0.5, increase: 1, now }, () => undefined, () => undefined)
    f.exchanged(false, undefined)
    assert.equal(f.allowed, 4, 'an idle node does not inflate its rate')
    f.exchanged(true, undefined)
    assert.equal(f.allowed, 2)
    f.write('a', 1)
    f.write('b', 1)
    f.write('c', 1) // credit 4 from the start, less what was spent: still some left
    for (let i = 0; i < 5; i++) f.write('k' + i, i)
    assert.ok(f.backlog > 0)
    f.exchanged(false, undefined)
    assert.equal(f.allowed, 3)
    f.exchanged(false, 7) // average first: (3 + 7) / 2, then + 1
    assert.equal(f.allowed, 6)
    f.exchanged(true, 'fast') // garbage rates are ignored
    assert.equal(f.allowed, 3)
    f.exchanged(true, 1e300) // clamped to max (Infinity here) then averaged
    assert.ok(Number.isFinite(f.allowed) || f.allowed === Infinity)
    const g = new FlowControl({ ...flowDefaults, max: 10, min: 1, now }, () => undefined, () => undefined)
    g.exchanged(false, 1e9)
    assert.ok(g.allowed <= 10)
    for (let i = 0; i < 100; i++) g.exchanged(true, 0)
    assert.equal(g.allowed, 1)
    assert.equal(g.overflows, 100)
    assert.equal(g.exchanges, 101)
  })

  it('reports a resolve that throws during admission as invalid, and keeps going', () => {
    let calls = 0
    const g = new Gossip('a', {
      resolve: (ctx, u) => {
        if (calls++ === 1) throw new Error('boom')
        return resolve(ctx, u)
      },
      flow_control: { initial: 1, now },
    })
    const invalid: unknown[] = []
    g.on('invalid', (o: unknown, reason: string) => invalid.push([o, reason]))
    g.set('a', 1)
    g.set('b', 2)
    g.set('c', 3)
    time = 2
    g.flow?.pump()
    time = 3
    g.flow?.pump()
    assert.equal(invalid.length, 1)
    assert.match(String((invalid[0] as unknown[])[1]), /boom/)
    assert.equal(g.get('c').value, 3)
  })

  it('detects overflow exactly: more deltas waited than the mtu carried', () => {
    const h = new History()
    for (let i = 0; i < 5; i++) h.write('k' + i, i, 's', i + 1)
    const none = new Map<string, number>()
    assert.equal(overflowed(h, none, 5, 5), false)
    assert.equal(overflowed(h, none, 4, 4), true)
    assert.equal(overflowed(h, none, 4, 3), false, 'a short answer was complete')
    assert.equal(overflowed(h, new Map([['s', 2]]), 3, 3), false)
    // Replaced entries inflate the cheap bound; the exact count says no.
    for (let i = 0; i < 5; i++) h.write('k0', 'again', 's', 10 + i)
    assert.equal(overflowed(h, new Map([['s', 4]]), 2, 2), false)
    // The rate is read once from the end marker, and only a number counts.
    const rateOf = (o: object) => {
      const r = classify({ digest: true, done: true, protocol: 2, ...o })
      return r.kind === Kind.Done ? r.rate : undefined
    }
    assert.equal(rateOf({ rate: 2 }), 2)
    assert.equal(rateOf({ rate: NaN }), undefined)
    assert.equal(classify({ digest: true, done: true, protocol: 2, get rate(): number { throw new Error('x') } }).kind, Kind.Invalid)
  })
})

describe('flow control: on the wire', () => {
  it('carries the rate on the end-of-digest marker, and only when on', () => {
    const a = node('a', { initial: 3 })
    const b = node('b')
    const sa = a.createStream()
    const sb = b.createStream()
    const out = exchange(sa, sb)
    // (A fresh node asks for its past: `past` names it, deletes.md rule 5.)
    assert.deepEqual(out.filter((m) => 'done' in m), [{ digest: true, done: true, protocol: 2, rate: 3, past: 'a' }])
    const back: Message[] = []
    sb.gossip()
    for (let m = sb.read() as Message | null; m !== null; m = sb.read() as Message | null) back.push(m)
    assert.deepEqual(back.filter((m) => 'done' in m), [{ digest: true, done: true, protocol: 2, past: 'b' }])
  })

  it('interoperates with a node that does not speak flow control', () => {
    let time = 0
    const a = node('a', { initial: 2, now: () => time }, 4)
    const b = node('b', undefined, 4)
    const sa = a.createStream()
    const sb = b.createStream()
    for (let i = 0; i < 10; i++) a.set('a' + i, i)
    for (let i = 0; i < 10; i++) b.set('b' + i, i)
    for (let round = 1; round <= 20; round++) {
      time = round
      exchange(round % 2 ? sa : sb, round % 2 ? sb : sa)
    }
    assert.equal(a.flow?.backlog, 0)
    for (let i = 0; i < 10; i++) {
      assert.equal(b.get('a' + i).value, i)
      assert.equal(a.get('b' + i).value, i)
    }
    assert.ok((a.flow?.exchanges ?? 0) >= 20)
  })
})

describe('flow control: the paper\'s claims, over seeds', function () {
  this.timeout(60000)
  // 32 nodes x 16 keys, mtu 10: at most 2 x mtu / (nodes - 1) = 0.65 updates
  // per node per round can reach every replica; flow control settles near
  // 0.42 (docs/simulator.md explains why AIMD stays below capacity).
  const base = { nodes: 32, keys: 16, mtu: 10 }
  const seeds = [1, 2, 3, 4]

  it('admitted rate settles at a stable level that keeps using the network, with shares fair (Jain >= 0.9)', () => {
    for (const seed of seeds) {
      const sim = new Simulation({ ...base, rounds: 80, rate: 2, flowControl: true, order: 'depth', seed })
      for (let i = 0; i < 40; i++) sim.round()
      const mid = sim.nodes.map((g) => g.flow?.admitted ?? 0)
      for (let i = 40; i < 80; i++) sim.round()
      const shares = sim.nodes.map((g, i) => (g.flow?.admitted ?? 0) - mid[i])
      const perRound = (a: number, b: number): number => sim.series.slice(a, b).reduce((t, s) => t + s.admitted, 0) / (b - a) / base.nodes
      const third = perRound(40, 60)
      const fourth = perRound(60, 80)
      // Offered 2 per node per round, three times what the network carries.
      assert.ok(fourth > 0.25 && fourth < 0.65, `seed ${seed}: admitted ${fourth} per node per round`)
      assert.ok(Math.abs(third - fourth) / fourth < 0.2, `seed ${seed}: admitted rate still moving ${third} -> ${fourth}`)
      assert.ok(jain(shares) >= 0.9, `seed ${seed}: Jain's index ${jain(shares)}`)
      const util = sim.series.slice(40).reduce((t, s) => t + s.deltas, 0) / 40 / (2 * base.nodes * base.mtu)
      assert.ok(util > 0.5, `seed ${seed}: the network is used (${util} of the mtu)`)
    }
  })

  it('a node that needs less gets all it asks, and leaves the rest to others', () => {
    for (const seed of seeds) {
      // Even nodes want 2 per round (overload), odd nodes 0.05 (well under a fair share).
      const sim = new Simulation({ ...base, rounds: 80, rate: (_t, i) => (i % 2 === 0 ? 2 : 0.05), flowControl: true, seed })
      for (let i = 0; i < 80; i++) sim.round()
      const light = sim.nodes.filter((_g, i) => i % 2 === 1)
      const heavy = sim.nodes.filter((_g, i) => i % 2 === 0)
      const lightBacklog = light.reduce((t, g) => t + (g.flow?.backlog ?? 0), 0)
      assert.ok(lightBacklog <= 2, `seed ${seed}: light nodes wait (${lightBacklog})`)
      const heavyShares = heavy.map((g) => g.flow?.admitted ?? 0)
      assert.ok(jain(heavyShares) >= 0.9, `seed ${seed}: Jain's index among heavy nodes ${jain(heavyShares)}`)
      const lightMean = light.reduce((t, g) => t + (g.flow?.admitted ?? 0), 0) / light.length
      const heavyMean = heavyShares.reduce((t, x) => t + x, 0) / heavy.length
      assert.ok(heavyMean > 3 * lightMean, `seed ${seed}: heavy nodes took the rest (${heavyMean} vs ${lightMean})`)
    }
  })

  it('the backlog drains once load drops, and every replica catches up', () => {
    for (const seed of seeds) {
      // Twice what the network carries for 20 rounds, then nothing new.
      const sim = new Simulation({ ...base, rounds: 100, rate: (t) => (t < 20 ? 1 : 0), flowControl: true, seed })
      for (let i = 0; i < 20; i++) sim.round()
      assert.ok(sim.series[19].backlog > 100, `seed ${seed}: overload built a backlog`)
      for (let i = 20; i < 100; i++) sim.round()
      const backlogs = sim.series.slice(20).map((s) => s.backlog)
      assert.equal(backlogs[backlogs.length - 1], 0, `seed ${seed}: backlog ${backlogs[backlogs.length - 1]}`)
      for (let i = 1; i < backlogs.length; i++) assert.ok(backlogs[i] <= backlogs[i - 1], `seed ${seed}: the backlog only shrinks`)
      assert.equal(sim.series[99].stale, 0, `seed ${seed}: every replica caught up`)
    }
  })
})
