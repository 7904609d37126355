/**
 * `simple-scuttle simulate` (bin/simulate.ts): its options, its output
 * (JSON, tables, SVG), and the sentence that says what the figures show.
 */
import { strict as assert } from 'assert'
import { mkdtempSync, readFileSync, rmSync } from 'fs'
import { tmpdir } from 'os'
import { join } from 'path'
import { capacity, figure, growth, parseArgs, simulate, table, verdict } from '../../bin/simulate'
import { ORDERS, Simulation, plot, simOptions, summarize } from '../../lib/sim'
import type { RoundStats, SimOptions, SimResult } from '../../lib/sim'

const small: Partial<SimOptions> = { nodes: 32, keys: 16, mtu: 10 }

function play(options: Partial<SimOptions>): Simulation {
  const sim = new Simulation(options)
  while (sim.t < sim.options.rounds) sim.round()
  return sim
}

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
