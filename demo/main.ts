/**
 * The demo page: draws a {@link Network} of real Gossip nodes, runs its
 * ticks on a timer, and wires the controls. Bundled by demo/serve.js with
 * esbuild for the browser.
 */
import { LIMITS, Network } from './network'
import type { NodeView, Settings, Topology } from './network'
import type { Order } from '../lib/types'
import { startCluster, type ClusterApi } from './cluster'

const SVG = 'http://www.w3.org/2000/svg'
const CHART_TICKS = 150
const HOT_AGE = 6

interface PageState extends Settings {
  interval: number
  paused: boolean
}

function $(id: string): HTMLElement {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`#${id} missing from the page`)
  return el
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x))
}

function num(params: URLSearchParams, name: string, fallback: number, lo: number, hi: number): number {
  const raw = params.get(name)
  const x = raw === null ? NaN : Number(raw)
  return Number.isFinite(x) ? clamp(x, lo, hi) : fallback
}

function readUrl(): PageState {
  const p = new URLSearchParams(location.search)
  const topology = p.get('topology')
  const order = p.get('order')
  return {
    topology: topology === 'random' || topology === 'mesh' ? topology : 'ring',
    n: Math.round(num(p, 'n', 12, LIMITS.n.min, LIMITS.n.max)),
    mtu: Math.round(num(p, 'mtu', 4, LIMITS.mtu.min, LIMITS.mtu.max)),
    order: order === 'breadth' ? 'breadth' : 'depth',
    drop: num(p, 'drop', 0, LIMITS.drop.min, LIMITS.drop.max),
    seed: Math.round(num(p, 'seed', Math.floor(Math.random() * 1e9), 0, 2 ** 32 - 1)),
    interval: Math.round(num(p, 'interval', 400, 20, 2000)),
    paused: p.get('paused') === '1',
  }
}

function writeUrl(s: PageState): void {
  const p = new URLSearchParams({
    topology: s.topology,
    n: String(s.n),
    mtu: String(s.mtu),
    order: s.order,
    interval: String(s.interval),
    drop: String(s.drop),
    seed: String(s.seed),
  })
  if (s.paused) p.set('paused', '1')
  history.replaceState(null, '', `${location.pathname}?${p}`)
}

/**
 * Fill colour for a node whose oldest missing update is `age` ticks old:
 * green when up to date, then yellow (just written) through to red.
 */
export function colourOf(stale: number, age: number): string {
  if (stale === 0) return 'hsl(130 70% 72%)'
  const hue = 55 - (clamp(age, 0, HOT_AGE) / HOT_AGE) * 55
  return `hsl(${hue.toFixed(0)} 85% 70%)`
}

const state = readUrl()
let net: Network
let timer: ReturnType<typeof setTimeout> | undefined
let focusIndex = 0
let lastWriteTick = -1
let wasStale = false
let nodeEls: SVGGElement[] = []
let edgeEls: SVGLineElement[] = []
let views: NodeView[] = []
let chart: number[] = []
let chartTick = -1

const graph = $('graph') as unknown as SVGSVGElement
const nodesLayer = $('nodes') as unknown as SVGGElement
const edgesLayer = $('edges') as unknown as SVGGElement
const announcer = $('announce')
const status = $('status')

function announce(text: string): void {
  // Clear first so that the same sentence twice is read twice.
  announcer.textContent = ''
  requestAnimationFrame(() => (announcer.textContent = text))
}

function radiusFor(n: number): number {
  return n <= 12 ? 18 : n <= 24 ? 14 : n <= 40 ? 10 : 8
}

function build(): void {
  net = new Network(state)
  chart = []
  chartTick = -1
  lastWriteTick = -1
  wasStale = false
  const n = state.n
  const r = radiusFor(n)
  const R = 200 - r - 12
  const pos = Array.from({ length: n }, (_, i) => {
    const a = (2 * Math.PI * i) / n - Math.PI / 2
    return { x: 200 + R * Math.cos(a), y: 200 + R * Math.sin(a) }
  })
  edgesLayer.replaceChildren()
  graph.classList.toggle('dense', net.links.length > 150)
  nodesLayer.replaceChildren()
  edgeEls = net.links.map((l) => {
    const line = document.createElementNS(SVG, 'line')
    line.setAttribute('x1', pos[l.a].x.toFixed(1))
    line.setAttribute('y1', pos[l.a].y.toFixed(1))
    line.setAttribute('x2', pos[l.b].x.toFixed(1))
    line.setAttribute('y2', pos[l.b].y.toFixed(1))
    line.setAttribute('class', 'edge')
    edgesLayer.append(line)
    return line
  })
  focusIndex = clamp(focusIndex, 0, n - 1)
  nodeEls = net.nodes.map((g, i) => {
    const el = document.createElementNS(SVG, 'g')
    el.setAttribute('class', 'node')
    el.setAttribute('role', 'button')
    el.setAttribute('tabindex', i === focusIndex ? '0' : '-1')
    el.dataset.node = g.id
    el.dataset.index = String(i)
    el.setAttribute('transform', `translate(${pos[i].x.toFixed(1)} ${pos[i].y.toFixed(1)})`)
    const circle = document.createElementNS(SVG, 'circle')
    circle.setAttribute('r', String(r))
    const label = document.createElementNS(SVG, 'text')
    label.setAttribute('class', 'label')
    label.setAttribute('dy', r >= 14 ? '-0.1em' : '0.35em')
    label.setAttribute('font-size', String(Math.max(7, r * 0.75)))
    label.textContent = String(i)
    const badge = document.createElementNS(SVG, 'text')
    badge.setAttribute('class', 'badge')
    badge.setAttribute('dy', '1.05em')
    badge.setAttribute('font-size', String(Math.max(6, r * 0.6)))
    if (r < 14) badge.setAttribute('display', 'none')
    el.append(circle, label, badge)
    nodesLayer.append(el)
    return el
  })
  render()
}

function render(): void {
  views = net.views()
  let staleTotal = 0
  let staleNodes = 0
  views.forEach((v, i) => {
    const el = nodeEls[i]
    staleTotal += v.stale
    if (v.stale > 0) staleNodes++
    el.style.setProperty('--fill', colourOf(v.stale, v.age))
    el.dataset.stale = String(v.stale)
    el.dataset.age = String(v.age)
    const badge = el.lastChild as SVGTextElement
    badge.textContent = v.stale === 0 ? '✓' : `${v.stale}`
    const clicks = net.clicks[i]
    el.setAttribute(
      'aria-label',
      `Node ${i}` +
        (v.stale === 0 ? ', up to date' : `, ${v.stale} stale mapping${v.stale > 1 ? 's' : ''}, oldest ${v.age} tick${v.age === 1 ? '' : 's'}`) +
        `, holds ${v.keys} key${v.keys === 1 ? '' : 's'}` +
        (clicks > 0 ? `, written ${clicks} time${clicks === 1 ? '' : 's'}` : ''),
    )
  })
  const tick = net.tick
  net.links.forEach((l, i) => {
    const cls = l.lost === tick && tick > 0 ? 'edge lost' : l.active === tick && tick > 0 ? 'edge active' : 'edge'
    if (edgeEls[i].getAttribute('class') !== cls) edgeEls[i].setAttribute('class', cls)
  })
  const written = Object.keys(net.truth()).length
  status.textContent =
    `Tick ${tick} · ${state.topology === 'mesh' ? 'full mesh' : state.topology === 'ring' ? 'ring' : 'random graph'} of ${state.n} nodes, ${net.links.length} links · ` +
    (written === 0
      ? 'click a node to write'
      : staleTotal === 0
        ? `all nodes up to date on ${written} key${written === 1 ? '' : 's'}`
        : `${staleTotal} stale mapping${staleTotal === 1 ? '' : 's'} on ${staleNodes} node${staleNodes === 1 ? '' : 's'}`) +
    (state.paused ? ' · paused' : '')
  document.body.dataset.converged = String(written > 0 && staleTotal === 0)
  if (wasStale && staleTotal === 0 && lastWriteTick >= 0) {
    announce(`All ${state.n} nodes up to date, ${tick - lastWriteTick} ticks after the last write.`)
  }
  wasStale = staleTotal > 0
  renderChart(staleTotal)
}

function renderChart(now: number): void {
  const hist = net.history.slice(-CHART_TICKS)
  const line = $('chart-line')
  const desc = $('chart-desc')
  const last = hist[hist.length - 1]
  $('stat-tick').textContent = String(net.tick)
  $('stat-exchanges').textContent = String(last?.exchanges ?? 0)
  $('stat-deltas').textContent = String(last?.deltas ?? 0)
  $('stat-lost').textContent = String(last?.lostAnswers ?? 0)
  // One sample per tick: the stale mappings at its end, raised at once by
  // writes made before the next tick.
  if (chartTick === net.tick && chart.length > 0) chart[chart.length - 1] = now
  else chart.push(now)
  chartTick = net.tick
  if (chart.length > CHART_TICKS + 1) chart.splice(0, chart.length - CHART_TICKS - 1)
  const series = chart
  if (series.length === 1 && now === 0) {
    line.setAttribute('points', '')
    desc.textContent = 'No stale mappings yet: click a node to write.'
    return
  }
  const peak = Math.max(...series)
  // The window grows with the run up to CHART_TICKS, so a short run is not a sliver.
  const dx = 300 / (clamp(series.length, 20, CHART_TICKS + 1) - 1)
  const y = (v: number): string => (88 - (v / Math.max(1, peak)) * 84).toFixed(1)
  line.setAttribute('points', series.map((v, i) => `${(i * dx).toFixed(1)},${y(v)}`).join(' '))
  desc.textContent = `Stale mappings, summed over all nodes, over the last ${series.length - 1} tick${series.length === 2 ? '' : 's'}: now ${now}, peak ${peak}.`
}

function tick(): void {
  net.step()
  render()
}

function schedule(): void {
  if (timer !== undefined) clearTimeout(timer)
  timer = undefined
  if (state.paused) return
  timer = setTimeout(() => {
    timer = undefined
    tick()
    schedule()
  }, state.interval)
}

function write(i: number): void {
  const { key, value } = net.write(i)
  lastWriteTick = net.tick
  const el = nodeEls[i]
  el.classList.remove('pulse')
  void el.getBoundingClientRect()
  el.classList.add('pulse')
  render()
  announce(`Node ${i} wrote ${key} = ${value}.`)
}

function focusNode(i: number): void {
  const n = nodeEls.length
  const next = ((i % n) + n) % n
  nodeEls[focusIndex]?.setAttribute('tabindex', '-1')
  focusIndex = next
  nodeEls[next].setAttribute('tabindex', '0')
  nodeEls[next].focus()
}

function indexOf(target: EventTarget | null): number {
  const el = (target as Element | null)?.closest?.('.node') as SVGGElement | null
  return el === null || el === undefined ? -1 : Number(el.dataset.index)
}

graph.addEventListener('click', (e) => {
  const i = indexOf(e.target)
  if (i < 0) return
  focusIndex = i
  nodeEls.forEach((el, j) => el.setAttribute('tabindex', j === i ? '0' : '-1'))
  write(i)
})

graph.addEventListener('keydown', (e) => {
  const i = indexOf(e.target)
  if (i < 0) return
  switch (e.key) {
    case 'Enter':
    case ' ':
      write(i)
      break
    case 'ArrowRight':
    case 'ArrowDown':
      focusNode(i + 1)
      break
    case 'ArrowLeft':
    case 'ArrowUp':
      focusNode(i - 1)
      break
    case 'Home':
      focusNode(0)
      break
    case 'End':
      focusNode(nodeEls.length - 1)
      break
    default:
      return
  }
  e.preventDefault()
})

// Controls.
const topologyEl = $('topology') as HTMLSelectElement
const countEl = $('count') as HTMLInputElement
const mtuEl = $('mtu') as HTMLInputElement
const intervalEl = $('interval') as HTMLInputElement
const dropEl = $('drop') as HTMLInputElement
const pauseEl = $('pause') as HTMLButtonElement
const orderEls = Array.from(document.querySelectorAll<HTMLInputElement>('input[name="order"]'))

function showOutputs(): void {
  $('count-out').textContent = String(countEl.value)
  $('interval-out').textContent = `${intervalEl.value} ms`
  $('drop-out').textContent = `${Math.round(Number(dropEl.value) * 100)}%`
}

function syncControls(): void {
  topologyEl.value = state.topology
  countEl.value = String(state.n)
  mtuEl.value = String(state.mtu)
  intervalEl.value = String(state.interval)
  dropEl.value = String(state.drop)
  for (const el of orderEls) el.checked = el.value === state.order
  pauseEl.setAttribute('aria-pressed', String(state.paused))
  pauseEl.textContent = state.paused ? 'Resume' : 'Pause'
  showOutputs()
}

function rebuild(): void {
  writeUrl(state)
  const refocus = nodesLayer.contains(document.activeElement)
  build()
  if (refocus) focusNode(focusIndex)
  schedule()
}

topologyEl.addEventListener('change', () => {
  state.topology = topologyEl.value as Topology
  rebuild()
})
countEl.addEventListener('input', showOutputs)
countEl.addEventListener('change', () => {
  state.n = Math.round(clamp(Number(countEl.value), LIMITS.n.min, LIMITS.n.max))
  rebuild()
})
mtuEl.addEventListener('change', () => {
  const v = Math.round(Number(mtuEl.value))
  if (!Number.isFinite(v)) {
    mtuEl.value = String(state.mtu)
    return
  }
  state.mtu = clamp(v, LIMITS.mtu.min, LIMITS.mtu.max)
  mtuEl.value = String(state.mtu)
  rebuild()
})
intervalEl.addEventListener('input', () => {
  state.interval = Number(intervalEl.value)
  showOutputs()
  writeUrl(state)
  schedule()
})
dropEl.addEventListener('input', () => {
  state.drop = Number(dropEl.value)
  net.drop = state.drop
  showOutputs()
  writeUrl(state)
})
for (const el of orderEls) {
  el.addEventListener('change', () => {
    if (!el.checked) return
    state.order = el.value as Order
    rebuild()
  })
}
pauseEl.addEventListener('click', () => {
  state.paused = !state.paused
  syncControls()
  writeUrl(state)
  render()
  schedule()
})
$('step').addEventListener('click', () => tick())
$('random-write').addEventListener('click', () => write(Math.floor(Math.random() * net.nodes.length)))
$('reset').addEventListener('click', () => {
  rebuild()
  announce('Network reset.')
})
$('controls').addEventListener('submit', (e) => e.preventDefault())

syncControls()
writeUrl(state)
build()
schedule()

/** For the browser test and the curious: the live network, from the console. */
const api = {
  ready: true,
  get network(): Network {
    return net
  },
  get tick(): number {
    return net.tick
  },
  get paused(): boolean {
    return state.paused
  },
  /** Every node's value of `key`, as `gossip.get(key).value`. */
  values(key: string): unknown[] {
    return net.valuesOf(key)
  },
  /** Keys written so far and the value each writer holds. */
  truth(): Record<string, unknown> {
    return net.truth()
  },
  /** True when every node holds the newest mapping of every written key. */
  converged(): boolean {
    return net.views().every((v) => v.stale === 0)
  },
}
;(window as unknown as { demo: typeof api & { cluster: ClusterApi | null } }).demo = Object.assign(api, { cluster: null as ClusterApi | null })
// With `npm run demo`, the page also joins the cluster of node processes.
void startCluster().then((cluster) => {
  ;(window as unknown as { demo: { cluster: ClusterApi | null; clusterChecked: boolean } }).demo.cluster = cluster
  ;(window as unknown as { demo: { clusterChecked: boolean } }).demo.clusterChecked = true
})
