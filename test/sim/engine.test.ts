/**
 * The simulator: determinism, staleness bookkeeping checked against a
 * brute-force count, the baselines, the command line, and the paper's
 * qualitative claims on small, fast runs over several seeds.
 */
import { strict as assert } from 'assert'
import { mkdtempSync, readFileSync, rmSync } from 'fs'
import { tmpdir } from 'os'
import { join } from 'path'
import { capacity, figure, growth, parseArgs, simulate, table, verdict } from '../../bin/simulate'
import { ORDERS, Simulation, Staleness, plot, prng, rateAt, simOptions, summarize } from '../../lib/sim'
import type { Gossip } from '../../lib'
import type { RoundStats, SimOptions, SimResult } from '../../lib/sim'

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

  it('measures staleness in rounds from the oldest missing write', () => {
    const s = new Staleness(1, 2)
    s.write(0, 0, 10)
    assert.equal(s.stale, 2)
    assert.equal(s.maximum(1), 1)
    s.write(0, 3, 20)
    assert.equal(s.maximum(4), 4, 'the oldest missing write counts')
    s.receive(0, -Infinity, 10)
    assert.equal(s.maximum(4), 4)
    assert.equal(s.averageStale(4), 2.5)
    s.receive(0, -Infinity, 20)
    s.receive(0, 10, 20)
    assert.equal(s.stale, 0)
    assert.equal(s.maximum(9), 0)
    assert.equal(s.timeOf(0, 20), 3)
    assert.equal(s.timeOf(0, 15), undefined)
    const w = new Staleness(1, 1)
    w.write(0, 0)
    assert.equal(w.admit(0, 5), 0)
    const x = new Staleness(1, 1)
    x.write(0, 0)
    assert.throws(() => x.write(0, 1, 5), /ahead of a waiting one/)
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

describe('simulate command', function () {
  this.timeout(60000)

  it('parses the documented options', () => {
    const o = parseArgs(['--nodes', '10', '--keys=4', '--mtu', '5', '--rounds', '3', '--rate', '0.5:2', '--order', 'all', '--flow-control', '--seed', '9', '--json', '--svg', 'x.svg'])
    assert.deepEqual(o.sim, { nodes: 10, keys: 4, mtu: 5, rounds: 3, rate: [0.5, 2], flowControl: true, seed: 9 })
    assert.deepEqual(o.orders, [...ORDERS])
    assert.equal(o.json, true)
    assert.equal(o.svg, 'x.svg')
    assert.deepEqual(parseArgs(['--rate', '3']).sim.rate, 3)
    assert.deepEqual(parseArgs(['--order', 'breadth']).orders, ['breadth'])
    assert.equal(parseArgs(['--help']).help, true)
    for (const bad of [['--nodes', 'x'], ['--rate', 'a:b'], ['--rate', '1:2:3'], ['--order', 'up'], ['--svg'], ['--bogus'], ['--nodes', '1']]) {
      assert.throws(() => parseArgs(bad), Error, bad.join(' '))
    }
  })

  it('prints one JSON object with options, series and summary, and writes an SVG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-'))
    try {
      let text = ''
      const svg = join(dir, 'plot.svg')
      const code = await simulate(['--nodes', '8', '--keys', '4', '--rounds', '6', '--rate', '0:2', '--json', '--svg', svg], (s) => (text += s))
      assert.equal(code, 0)
      const json = JSON.parse(text)
      assert.equal(json.options.nodes, 8)
      assert.equal(json.series.length, 6)
      for (const k of ['avgStaleness', 'maxStaleness', 'finalStale', 'avgBacklogDelay', 'maxTotal']) assert.equal(typeof json.summary[k], 'number', k)
      assert.match(readFileSync(svg, 'utf8'), /^<svg[\s\S]*<\/svg>\n$/)
      text = ''
      assert.equal(await simulate(['--nodes', '6', '--keys', '2', '--rounds', '4', '--order', 'all', '--flow-control'], (s) => (text += s)), 0)
      for (const order of ORDERS) assert.match(text, new RegExp(`^${order} `, 'm'))
      assert.match(text, /max total/)
      text = ''
      assert.equal(await simulate(['--help'], (s) => (text += s)), 0)
      assert.match(text, /--flow-control/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('draws every order and, with flow control, the backlog and admitted rate', () => {
    const runs = ['depth', 'breadth'].map((order) => ({
      options: simOptions({ ...small, order: order as 'depth', flowControl: true, rounds: 4 }),
      series: play({ ...small, order: order as 'depth', flowControl: true, rounds: 4 }).series,
      summary: summarize([]),
      msPerRound: 1,
    }))
    const svg = figure(runs)
    assert.match(svg, /depth admitted/)
    assert.match(svg, /breadth backlog/)
    assert.match(svg, /breadth total/)
    assert.match(svg, /admitted/)
    assert.match(table(runs), /admitted\/offered/)
    const empty = plot({ title: 'a<b', xlabel: 'x', panels: [{ ylabel: 'y', lines: [{ name: 'n', values: [NaN, 0, 1500, NaN, 2], color: 'red' }] }] })
    assert.match(empty, /a&lt;b/)
    assert.match(empty, /1\.5k|2k/)
  })
})

describe('simulate: what the figures show, in a sentence', function () {
  this.timeout(60000)

  // A run of `rounds` whose worst copy lags maxAt(t) rounds, at offered rate rateAt(t).
  function run(order: 'depth' | 'breadth', options: Partial<SimOptions>, maxAt: (t: number) => number, rateAt: (t: number) => number, avg: number): SimResult {
    const o = simOptions({ ...small, rounds: 40, ...options, order })
    const series = Array.from({ length: o.rounds }, (_, t) => ({ round: t, rate: rateAt(t), maxStaleness: maxAt(t), avgStaleness: avg, stale: 10 }) as RoundStats)
    return { options: o, series, summary: { ...summarize(series), avgStaleness: avg }, msPerRound: 1 }
  }

  it('measures capacity and growth', () => {
    assert.equal(capacity(simOptions({ nodes: 128, mtu: 100 })).toFixed(2), '1.57')
    assert.equal(growth(run('depth', {}, (t) => 3 * t, () => 1, 1).series), 3)
    assert.equal(growth(run('depth', {}, () => 7, () => 1, 1).series), 0)
  })

  it('says a carried load keeps up, or that it did not as the paper predicts', () => {
    assert.match(verdict([run('depth', { rate: 0.5 }, () => 4, () => 0.5, 0.1)]), /0\.5 updates per node per round\) stayed under the 0\.65 .*As the paper finds, anti-entropy keeps up/)
    assert.match(verdict([run('depth', { rate: 0.5 }, (t) => t, () => 0.5, 0.1)]), /not what the paper finds below capacity/)
  })

  it('says whether staleness grew without bound past capacity, and whether flow control bounded it', () => {
    const ramp = { rate: [0, 2] as const }
    assert.match(verdict([run('depth', ramp, (t) => t, (t) => t / 20, 2)]), /grows without bound, reproduced/)
    assert.match(verdict([run('depth', ramp, () => 5, (t) => t / 20, 2)]), /not reproduced at these settings/)
    assert.match(verdict([run('depth', { ...ramp, flowControl: true }, () => 5, (t) => t / 20, 2)]), /flow-control finding, reproduced/)
    assert.match(verdict([run('depth', { ...ramp, flowControl: true }, (t) => t, (t) => t / 20, 2)]), /flow-control finding, not reproduced/)
  })

  it("compares depth with breadth under overload: the paper's main finding reproduced, in part, or not", () => {
    const ramp = { rate: [0, 2] as const }
    const pair = (dMax: number, dAvg: number, bMax: number, bAvg: number): string =>
      verdict([run('depth', ramp, (t) => (t * dMax) / 39, (t) => t / 20, dAvg), run('breadth', ramp, (t) => (t * bMax) / 39, (t) => t / 20, bAvg)])
    assert.match(pair(80, 2, 100, 3), /scuttle-depth kept copies fresher than scuttle-breadth \(average 2 against 3 rounds, worst 80 against 100\): the paper's main finding, reproduced\./)
    assert.match(pair(110, 2, 100, 3), /reproduced in part/)
    assert.match(pair(110, 4, 100, 3), /not reproduced in this run/)
    assert.match(verdict([run('depth', { rate: 0.5 }, () => 4, () => 0.5, 0.1), run('breadth', { rate: 0.5 }, () => 4, () => 0.5, 0.1)]), /differ little here/)
  })

  it('ends the default run (a carried load) and --overload (depth and breadth on the ramp) with that sentence', async () => {
    assert.deepEqual(parseArgs([]).sim.rate, 1)
    const o = parseArgs(['--overload'])
    assert.deepEqual([o.sim.rate, o.orders], [simOptions({}).rate, ['depth', 'breadth']])
    assert.deepEqual(parseArgs(['--overload', '--order', 'all', '--rate', '3']).orders.length, ORDERS.length)
    let text = ''
    assert.equal(await simulate(['--nodes', '16', '--keys', '8', '--mtu', '10', '--rounds', '30', '--rate', '0.5'], (s) => (text += s)), 0)
    assert.match(text, /\n\nThe offered load \(0\.5 updates per node per round\) stayed under the 1\.33 gossip can carry here/)
    text = ''
    assert.equal(await simulate(['--nodes', '16', '--keys', '8', '--mtu', '10', '--rounds', '60', '--overload'], (s) => (text += s)), 0)
    assert.match(text, /^depth /m)
    assert.match(text, /^breadth /m)
    assert.match(text, /grows without bound, reproduced\.\n(scuttle-depth kept|scuttle-depth against)/)
  })
})
