/**
 * `node dist/bench/inproc.js`: the issue 23 in-process goals, at 100k and 1M
 * keys (INPROC_N, default "100000,1000000"):
 * - sync: A holds N keys written locally, B is empty, one link with mtu N,
 *   one B-side gossip() until B holds all N;
 * - set: N calls of `set` on a fresh node (max_history = Infinity);
 * against
 * - floor: the stream-into-Map floor, N update objects pushed out of one
 *   bare object-mode Transform (readable-stream, the library's base) into
 *   another whose transform puts each in a Map by key (the least a sync
 *   does: the hop, and a keyed store). For `set` the same floor (the issue
 *   names one floor); `map` (N update objects made and put in a Map, no
 *   stream) is reported beside it;
 * - scuttlebutt: its Model doing the same (sync: two Model streams; set:
 *   Model.set);
 * - prev: the previous release's library (INPROC_PREV, default
 *   /work/wt-prev/dist/lib when it exists), same work.
 * and memory: heap bytes per key after N `set(i, i)` (small-integer keys),
 * for ours, prev and a bare Map of N {key, value, source_id, version}.
 *
 * Every measurement runs in a fresh child process (one untimed warm-up of
 * the same work first, GC before the timed one), so that no variant runs
 * on code another has made megamorphic; variants alternate in each of
 * INPROC_ROUNDS rounds (default 5); medians. Wall time (INPROC_CLOCK=cpu:
 * CPU time). Results: bench/inproc-results.json.
 */
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Transform } from 'readable-stream'

const SIZES = (process.env.INPROC_N ?? '100000,1000000').split(',').map(Number)
const ROUNDS = Number(process.env.INPROC_ROUNDS ?? 5)
const DEFAULT_PREV = '/work/wt-prev/dist/lib'
const PREV = process.env.INPROC_PREV ?? (fs.existsSync(DEFAULT_PREV) ? DEFAULT_PREV : '')
const OURS = path.join(__dirname, '..', 'lib')
const OUT = process.env.INPROC_OUT ?? path.join(__dirname, '..', '..', 'bench', 'inproc-results.json')
const ONLY = process.env.INPROC_ONLY?.split(',')

type Kind = 'sync' | 'set' | 'memory'
type Variant = 'ours' | 'prev' | 'floor' | 'map' | 'scuttlebutt'

// INPROC_CLOCK=cpu: CPU time of this process (user + system) instead of
// wall time: steadier on a shared machine, blind to time spent waiting.
const CPU = process.env.INPROC_CLOCK === 'cpu'
const now = (): number => {
  if (!CPU) return Number(process.hrtime.bigint()) / 1e6
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}
const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) {
    g()
    g()
  }
}
const until = (done: () => boolean): Promise<void> =>
  new Promise((resolve) => {
    const check = (): void => (done() ? resolve() : void setImmediate(check))
    check()
  })

interface Lib {
  Gossip: new (id: string, config: object) => GossipLike
  base: { resolution: { lww_vs_current_vers: unknown } }
}
interface GossipLike {
  set(key: string | number, value: unknown): boolean
  pipe<T>(to: T): T
  unpipe(to: unknown): void
  gossip(): void
  history: { _resolvedCount?: number }
  state: unknown
}

// How many keys a node holds, in either release (prev's state is a Map).
function held(g: GossipLike): number {
  const c = g.history._resolvedCount
  return c !== undefined ? c : (g.state as Map<string, unknown>).size
}

function updates(n: number): { key: string; value: number; source_id: string; version: number }[] {
  const out = new Array<{ key: string; value: number; source_id: string; version: number }>(n)
  const base = Date.now() * 1000
  for (let i = 0; i < n; i++) out[i] = { key: 'k' + i, value: i, source_id: 'a', version: base + i }
  return out
}

async function once(variant: Variant, kind: Kind, n: number): Promise<number> {
  if (variant === 'scuttlebutt') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Model = require('scuttlebutt/model') as new (id?: string) => {
      id: string
      store: Record<string, unknown>
      sources: Record<string, number>
      set(k: string, v: unknown): void
      createStream(o: { wrapper: 'raw' }): { pipe<T>(to: T): T }
    }
    if (kind === 'set') {
      const keys = Array.from({ length: n }, (_, i) => 'k' + i)
      const m = new Model('peer-a')
      gc()
      const t = now()
      for (let i = 0; i < n; i++) m.set(keys[i], i)
      const ms = now() - t
      if (Object.keys(m.store).length !== n) throw new Error('scuttlebutt set lost keys')
      return ms
    }
    const a = new Model('peer-a')
    for (let i = 0; i < n; i++) a.set('k' + i, i)
    gc()
    const b = new Model('peer-b')
    const last = a.sources[a.id]
    const t = now()
    const sa = a.createStream({ wrapper: 'raw' })
    const sb = b.createStream({ wrapper: 'raw' })
    sa.pipe(sb).pipe(sa)
    await until(() => b.sources[a.id] === last)
    const ms = now() - t
    if (Object.keys(b.store).length !== n) throw new Error('scuttlebutt synced too few')
    return ms
  }
  if (variant === 'floor' || variant === 'map') {
    const objects = updates(n)
    const map = new Map<string, unknown>()
    gc()
    if (variant === 'map') {
      const base = Date.now() * 1000
      const keys = Array.from({ length: n }, (_, i) => 'k' + i)
      gc()
      const t = now()
      for (let i = 0; i < n; i++) map.set(keys[i], { key: keys[i], value: i, source_id: 'a', version: base + i })
      return now() - t
    }
    const from = new Transform({ objectMode: true, highWaterMark: n, transform: (c: unknown, _e: unknown, cb: (e: null, d: unknown) => void) => cb(null, c) })
    const to = new Transform({
      objectMode: true,
      highWaterMark: n,
      transform: (c: { key: string }, _e: unknown, cb: () => void) => {
        map.set(c.key, c)
        cb()
      },
    })
    const t = now()
    from.pipe(to)
    for (let i = 0; i < n; i++) from.push(objects[i])
    await until(() => map.size === n)
    const ms = now() - t
    from.unpipe(to)
    return ms
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require(variant === 'ours' ? OURS : PREV) as Lib
  const config = (extra: object) => ({ resolve: lib.base.resolution.lww_vs_current_vers, ...extra })
  if (kind === 'set') {
    const keys = Array.from({ length: n }, (_, i) => 'k' + i)
    const g = new lib.Gossip('a', config({ max_history: Infinity }))
    gc()
    const t = now()
    for (let i = 0; i < n; i++) g.set(keys[i], i)
    const ms = now() - t
    if (held(g) !== n) throw new Error('set lost keys')
    return ms
  }
  const a = new lib.Gossip('a', config({ mtu: n, max_history: Infinity }))
  for (let i = 0; i < n; i++) a.set('k' + i, i)
  gc()
  const b = new lib.Gossip('b', config({ mtu: n, max_history: Infinity }))
  const t = now()
  a.pipe(b).pipe(a)
  b.gossip()
  await until(() => held(b) === n)
  const ms = now() - t
  a.unpipe(b)
  b.unpipe(a)
  return ms
}

// Heap bytes per key held, after full GCs. ArrayBuffers' contents (typed
// arrays) live outside heapUsed and are counted too: a layout that moves
// versions into a Float64Array must not look smaller than it is.
const heapBytes = (): number => {
  const u = process.memoryUsage()
  return u.heapUsed + u.arrayBuffers
}

function memory(variant: Variant, n: number): number {
  gc()
  const h0 = heapBytes()
  let keep: unknown
  if (variant === 'map') {
    const m = new Map<string, unknown>()
    const base = Date.now() * 1000
    for (let i = 0; i < n; i++) {
      const key = String(i)
      m.set(key, { key, value: i, source_id: 'a', version: base + i })
    }
    keep = m
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = require(variant === 'ours' ? OURS : PREV) as Lib
    const g = new lib.Gossip('a', { resolve: lib.base.resolution.lww_vs_current_vers, max_history: Infinity })
    // The key as a string (ours takes a number for its string; the
    // previous release refuses one).
    for (let i = 0; i < n; i++) g.set(String(i), i)
    if (held(g) !== n) throw new Error('set lost keys')
    keep = g
  }
  gc()
  const bytes = (heapBytes() - h0) / n
  ;(globalThis as { keep?: unknown }).keep = keep
  return bytes
}

async function child(variant: Variant, kind: Kind, n: number): Promise<void> {
  if (kind === 'memory') {
    process.stdout.write(`${memory(variant, n)}\n`)
    return
  }
  await once(variant, kind, n)
  gc()
  process.stdout.write(`${await once(variant, kind, n)}\n`)
}

function measure(variant: Variant, kind: Kind, n: number): number {
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', __filename, 'child', variant, kind, String(n)], { encoding: 'utf8', maxBuffer: 1 << 20, env: process.env })
  const x = Number(out.trim().split('\n').pop())
  if (!Number.isFinite(x)) throw new Error(`${variant} ${kind} ${n} printed ${out}`)
  return x
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

function main(): void {
  const started = new Date().toISOString()
  const load = os.loadavg()
  const plan: [Kind, Variant[]][] = [
    ['sync', ['ours', 'floor', 'scuttlebutt', ...(PREV === '' ? [] : ['prev' as const])]],
    ['set', ['ours', 'floor', 'map', 'scuttlebutt', ...(PREV === '' ? [] : ['prev' as const])]],
    ['memory', ['ours', 'map', ...(PREV === '' ? [] : ['prev' as const])]],
  ]
  const samples: Record<string, number[]> = {}
  for (const n of SIZES) {
    for (const [kind, variants] of plan) {
      if (ONLY !== undefined && !ONLY.includes(kind)) continue
      if (kind === 'memory' && n !== Math.max(...SIZES)) continue
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? variants : [...variants].reverse()
        for (const v of order) {
          const x = measure(v, kind, n)
          ;(samples[`${kind} ${n} ${v}`] ??= []).push(x)
          process.stderr.write(`${kind} ${n} ${v}: ${x.toFixed(1)}\n`)
        }
      }
    }
  }
  const med: Record<string, number> = {}
  for (const [k, xs] of Object.entries(samples)) med[k] = median(xs)
  const goals: Record<string, { value: number; goal: string; met: boolean }> = {}
  for (const n of SIZES) {
    for (const kind of ['sync', 'set'] as const) {
      const ours = med[`${kind} ${n} ours`]
      if (ours === undefined) continue
      const sb = med[`${kind} ${n} scuttlebutt`] / ours
      const floor = ours / med[`${kind} ${n} floor`]
      goals[`${kind} ${n}: scuttlebutt / ours`] = { value: sb, goal: '>= 3x', met: sb >= 3 }
      goals[`${kind} ${n}: ours / stream-into-Map floor`] = { value: floor, goal: '<= 1.5x', met: floor <= 1.5 }
      if (med[`${kind} ${n} prev`] !== undefined) {
        const p = ours / med[`${kind} ${n} prev`]
        goals[`${kind} ${n}: ours / prev`] = { value: p, goal: '<= 1x (no regression)', met: p <= 1.05 }
      }
      if (kind === 'set') goals[`set ${n}: ours / Map floor (info)`] = { value: ours / med[`set ${n} map`], goal: 'info', met: true }
    }
  }
  const top = Math.max(...SIZES)
  if (med[`memory ${top} ours`] !== undefined) goals[`memory ${top}: heap bytes per key`] = { value: med[`memory ${top} ours`], goal: '<= 100', met: med[`memory ${top} ours`] <= 100 }
  const out = { started, finished: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: { start: load, end: os.loadavg() }, rounds: ROUNDS, clock: CPU ? 'cpu' : 'wall', prev: PREV || null, statistic: 'median over rounds, each a fresh process after a warm-up', medians: med, goals, samples }
  fs.writeFileSync(OUT, `${JSON.stringify(out, null, 2)}\n`)
  const lines = Object.entries(med).map(([k, x]) => `${k.padEnd(28)} ${x.toFixed(x >= 100 ? 0 : 1)}`)
  lines.push('')
  for (const [g, x] of Object.entries(goals)) lines.push(`${g.padEnd(44)} ${x.value.toFixed(2)} (goal ${x.goal}) ${x.met ? 'met' : 'NOT met'}`)
  process.stdout.write(`${lines.join('\n')}\n`)
}

if (process.argv[2] === 'child') {
  child(process.argv[3] as Variant, process.argv[4] as Kind, Number(process.argv[5])).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`)
    process.exit(1)
  })
} else if (require.main === module) main()
