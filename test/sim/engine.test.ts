/**
 * The simulator (lib/sim): determinism, staleness bookkeeping checked
 * against a brute-force count, the baselines, and the paper's qualitative
 * claims on small, fast runs over several seeds. Its command line is
 * test/bin/simulate.test.ts.
 */
import { strict as assert } from 'assert'
import { ORDERS, Simulation, prng, rateAt, simOptions, summarize } from '../../lib/sim'
import type { Gossip } from '../../lib'
import type { SimOptions } from '../../lib/sim'

const small: Partial<SimOptions> = { nodes: 32, keys: 16, mtu: 10 }

function play(options: Partial<SimOptions>): Simulation {
  const sim = new Simulation(options)
  while (sim.t < sim.options.rounds) sim.round()
  return sim
}

// Stale remote replicas by brute force over full states: p lacks q's
// current mapping of one of q's keys.
function staleByState(nodes: readonly Gossip[]): number {
  let stale = 0
  for (const q of nodes) {
    for (const u of Object.values(q.state)) {
      if (u.source_id !== q.id) continue
      for (const p of nodes) if (p !== q && p.get(u.key).version < u.version) stale++
    }
  }
  return stale
}

// Least-squares slope of the per-round maximum staleness over the second
// half of a run: rounds of staleness gained per round.
function slope(sim: Simulation): number {
  const ys = sim.series.slice(sim.series.length / 2).map((s) => s.maxStaleness)
  const n = ys.length
  const mx = (n - 1) / 2
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my)
    den += (x - mx) * (x - mx)
  })
  return num / den
}

describe('simulator: mechanics', function () {
  this.timeout(60000)

  it('is deterministic: the same seed gives the same run, another seed another', () => {
    const a = play({ ...small, rounds: 20, rate: [0, 1], seed: 7 }).series
    const b = play({ ...small, rounds: 20, rate: [0, 1], seed: 7 }).series
    const c = play({ ...small, rounds: 20, rate: [0, 1], seed: 8 }).series
    assert.deepEqual(a, b)
    assert.notDeepEqual(a, c)
  })

  it('counts stale replicas exactly as a brute-force comparison of states does, for every order', () => {
    for (const order of ORDERS) {
      for (const flowControl of [false, true]) {
        const sim = new Simulation({ ...small, nodes: 12, rounds: 25, rate: [0.5, 3], order, flowControl, seed: 3 })
        for (let i = 0; i < 25; i++) {
          const s = sim.round()
          assert.equal(s.stale, staleByState(sim.nodes), `${order} ${flowControl} round ${i}`)
          assert.ok(s.maxStaleness >= 0 && s.avgStaleness <= s.maxStaleness)
          if (!flowControl) assert.equal(s.maxTotal, s.maxStaleness)
          else assert.ok(s.maxTotal >= s.maxStaleness)
        }
      }
    }
  })

  it('converges once writes stop, for every order', () => {
    for (const order of ORDERS) {
      const sim = play({ ...small, rounds: 40, rate: (t) => (t < 10 ? 0.5 : 0), order, seed: 2 })
      const last = sim.series[39]
      assert.equal(last.stale, 0, order)
      assert.equal(last.maxStaleness, 0, order)
      assert.equal(staleByState(sim.nodes), 0, order)
    }
  })

  it('validates options and computes ramps', () => {
    assert.throws(() => simOptions({ nodes: 1 }), TypeError)
    assert.throws(() => simOptions({ rate: -1 }), TypeError)
    assert.throws(() => simOptions({ rate: [1, 2, 3] as unknown as [number, number] }), TypeError)
    assert.throws(() => simOptions({ order: 'sideways' as 'depth' }), TypeError)
    const o = simOptions({ rounds: 11, rate: [0, 10] })
    assert.equal(rateAt(o, 0), 0)
    assert.equal(rateAt(o, 5), 5)
    assert.equal(rateAt(o, 10), 10)
    assert.equal(rateAt(simOptions({ rounds: 1, rate: [3, 4] }), 0), 3)
    assert.equal(rateAt(simOptions({ rate: (t, i) => t - i }), 1, 5), 0)
    assert.deepEqual(summarize([]).finalStale, 0)
    const r = prng(1)
    assert.notEqual(r(), r())
  })

  it('runs asynchronously with progress and reports time per round', async () => {
    const sim = new Simulation({ ...small, rounds: 5, rate: 1 })
    let seen = 0
    const result = await sim.run(() => seen++)
    assert.equal(seen, 5)
    assert.equal(result.series.length, 5)
    assert.ok(result.msPerRound >= 0)
    assert.ok(result.cpuMsPerRound === undefined || result.cpuMsPerRound >= 0)
  })
})

describe('simulator: the paper\'s claims, over seeds', function () {
  this.timeout(120000)
  const seeds = [1, 2, 3, 4, 5]
  // 32 nodes x 16 keys, mtu 10: at most 2 x mtu / (nodes - 1) = 0.65 updates
  // per node per round reach every replica; the ramp goes to 2, three times that.
  const overload: Partial<SimOptions> = { ...small, rounds: 80, rate: [0, 2] }

  it('under overload, scuttle-depth\'s maximum staleness is not above scuttle-breadth\'s', () => {
    // The paper's proportions (64 keys per node, mtu 100) with fewer nodes.
    // The network carries at most 2 x mtu / (nodes - 1) = 6.5 updates per
    // node per round (less in practice); the ramp goes to 10. Where a node's
    // keys outnumber the mtu several times over (32 x 16 keys, mtu 10), the
    // maximum is a draw over seeds while the average still favours depth:
    // docs/simulator.md reports both and why.
    const overload: Partial<SimOptions> = { nodes: 32, keys: 64, mtu: 100, rounds: 50, rate: [0, 10] }
    let depthSum = 0
    let breadthSum = 0
    const losses: string[] = []
    const claimSeeds = [1, 2, 3]
    for (const seed of claimSeeds) {
      const d = play({ ...overload, order: 'depth', seed }).series
      const b = play({ ...overload, order: 'breadth', seed }).series
      const dm = summarize(d).maxStaleness
      const bm = summarize(b).maxStaleness
      depthSum += dm
      breadthSum += bm
      if (dm > bm) losses.push(`seed ${seed}: depth ${dm} > breadth ${bm}`)
    }
    assert.ok(depthSum <= breadthSum, `mean over seeds: depth ${depthSum / claimSeeds.length}, breadth ${breadthSum / claimSeeds.length}`)
    assert.deepEqual(losses, [])
  })

  it('without flow control maximum staleness keeps growing under overload; with it, it does not', () => {
    for (const seed of seeds) {
      const off = play({ ...overload, seed })
      const on = play({ ...overload, seed, flowControl: true })
      // Without: staleness grows by most of a round per round (writes wait
      // ever longer). With: flat, up to noise.
      assert.ok(slope(off) > 0.3, `seed ${seed}: without flow control the maximum grows ${slope(off)} per round`)
      assert.ok(Math.abs(slope(on)) < 0.1, `seed ${seed}: with flow control the maximum moves ${slope(on)} per round`)
      // Nothing hidden: the delay moved into the backlog, and it is reported.
      const last = on.series[on.series.length - 1]
      assert.ok(last.backlog > 0 && last.maxBacklogDelay > 0 && last.maxTotal >= last.maxBacklogDelay)
    }
  })
})
