/**
 * Shared pieces of the benchmark targets: timing, rounds, the stream limit,
 * the peer (`scuttlebutt`), and the row format every target reports.
 *
 * Each target runs in its own process (`node dist/bench/<target>.js`), runs
 * a warm-up round and then ROUNDS measured rounds, interleaving ours, the
 * limit and the peer inside each round so that they share the machine's
 * noise; it reports medians, and ratios of medians.
 */
import { Transform } from 'readable-stream'
import { base, Gossip } from '../lib'
import type { Config, Update } from '../lib'

/** Measured rounds per target (at least 5). */
export const ROUNDS = Math.max(5, Number(process.env.BENCH_ROUNDS ?? 9))

/** One line of the results table. */
export interface Row {
  /** Target number and short name, e.g. "1 sync vs limit". */
  target: string
  /** What "ours", "limit" and "peer" are, in words, and the config used. */
  what: string
  unit: string
  ours: number
  /** The baseline ours is held to: the stream limit, or the small case. */
  limit: number | null
  /** `scuttlebutt` doing the same work. */
  peer: number | null
  /** ours / limit, or peer / ours for "faster than" targets. */
  ratio: number
  /** Human-readable goal, e.g. "<= 3x" or ">= 5x faster". */
  goal: string
  met: boolean
  /** Raw per-round samples. */
  samples: { ours: number[]; limit?: number[]; peer?: number[] }
  notes?: string
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Milliseconds, high resolution. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** Full GC between measurements, when the process runs with --expose-gc. */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) {
    g()
    g()
  }
}

/**
 * Resolves once `done()` holds, checking after every turn of the event loop
 * (setImmediate), never sleeping. The first check is synchronous.
 */
export function until(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (done()) resolve()
      else setImmediate(check)
    }
    check()
  })
}

/**
 * Runs `fns` in one warm-up round and ROUNDS measured rounds, each round
 * calling every function once (interleaved, after a GC), and returns the
 * samples per function.
 */
export async function rounds<K extends string>(
  fns: Record<K, () => Promise<number> | number>,
  n = ROUNDS,
): Promise<Record<K, number[]>> {
  const names = Object.keys(fns) as K[]
  const out = {} as Record<K, number[]>
  for (const k of names) out[k] = []
  for (let r = -1; r < n; r++) {
    for (const k of names) {
      gc()
      const t = await fns[k]()
      if (r >= 0) out[k].push(t)
    }
  }
  return out
}

/** The config every benchmark node uses unless it says otherwise. */
export function config(extra: Partial<Config> = {}): Config {
  return { resolve: base.resolution.lww_vs_current_vers, ...extra }
}

/** Node `id` holding `n` keys written locally (`set`), with history for all. */
export function filled(id: string, n: number, extra: Partial<Config> = {}): Gossip {
  const g = new Gossip(id, config({ mtu: Math.max(n, 1), max_history: Infinity, ...extra }))
  for (let i = 0; i < n; i++) g.set('k' + i, i)
  return g
}

/** `n` update objects of one source, the shape ours moves. */
export function updates(n: number, source_id = 'a'): Update[] {
  const out: Update[] = new Array(n)
  const base = Date.now() * 1000
  for (let i = 0; i < n; i++) out[i] = { key: 'k' + i, value: i, source_id, version: base + i }
  return out
}

/**
 * The stream limit: `objects` pushed out of one bare object-mode Transform
 * (readable-stream, the library's own base) piped into another whose
 * transform only counts, until the second has consumed them all. This is
 * the hop every delta of a sync takes (out of A's readable side, through
 * B's writable side into B's `_transform`), with nothing done per object.
 * Both streams get highWaterMark = N, as ours gets mtu = N.
 */
export async function streamLimit(objects: readonly unknown[]): Promise<number> {
  const n = objects.length
  let count = 0
  const from = new Transform({
    objectMode: true,
    highWaterMark: n,
    transform(chunk: unknown, _e: unknown, cb: (err?: Error | null, data?: unknown) => void) {
      cb(null, chunk)
    },
  })
  const to = new Transform({
    objectMode: true,
    highWaterMark: n,
    transform(_chunk: unknown, _e: unknown, cb: () => void) {
      count++
      cb()
    },
  })
  const t0 = now()
  from.pipe(to)
  for (let i = 0; i < n; i++) from.push(objects[i])
  await until(() => count === n)
  const t = now() - t0
  from.unpipe(to)
  return t
}

// ---- the peer: dominictarr's scuttlebutt -------------------------------

/** scuttlebutt's Model (untyped CommonJS). */
export interface Model {
  id: string
  store: Record<string, unknown>
  sources: Record<string, number>
  set(k: string, v: unknown): Model
  createStream(opts: { wrapper: 'raw' }): { pipe<T>(to: T): T }
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ModelCtor = require('scuttlebutt/model') as new (id?: string) => Model

export function model(id: string): Model {
  return new ModelCtor(id)
}

/** A scuttlebutt Model holding `n` keys set locally. */
export function peerFilled(id: string, n: number): Model {
  const m = model(id)
  for (let i = 0; i < n; i++) m.set('k' + i, i)
  return m
}

/**
 * Time for an empty Model to hold everything `a` holds: streams created
 * (which starts scuttlebutt's exchange) and piped both ways, until the
 * receiver's clock for `a` reaches `a`'s latest timestamp (updates of one
 * source arrive in order, so that is "B holds all N", checked in O(1)).
 */
export async function peerSync(a: Model): Promise<{ ms: number; held: number }> {
  const b = model('peer-b')
  const last = a.sources[a.id]
  const t0 = now()
  const sa = a.createStream({ wrapper: 'raw' })
  const sb = b.createStream({ wrapper: 'raw' })
  sa.pipe(sb).pipe(sa)
  await until(() => b.sources[a.id] === last)
  const ms = now() - t0
  return { ms, held: Object.keys(b.store).length }
}

// ---- reporting -----------------------------------------------------------

/** A target process prints its rows as one JSON line, last on stdout. */
export function emit(rows: Row[]): void {
  process.stdout.write('\n' + JSON.stringify(rows) + '\n')
}

export function fail(message: string): never {
  throw new Error(message)
}

/** ours / limit, with its verdict against `max`. */
export function atMost(ours: number, limit: number, max: number): { ratio: number; met: boolean; goal: string } {
  const ratio = ours / limit
  return { ratio, met: ratio <= max, goal: `<= ${max}x` }
}

/** peer / ours, with its verdict against `min`. */
export function fasterBy(ours: number, peer: number, min: number): { ratio: number; met: boolean; goal: string } {
  const ratio = peer / ours
  return { ratio, met: ratio >= min, goal: `>= ${min}x faster` }
}
