/**
 * `npm run bench:store`: the durable stores side by side on our workload,
 * each step in a child process of its own (so that RSS is the step's):
 * - apply: a peer's answers applied (batches of `mtu` updates from another
 *   source, 100-byte values) with an fsync per batch before the next
 *   (what `simple-scuttle node` does before it acknowledges), on an empty
 *   store: updates per second;
 * - fill: N keys written with `set`, flushed every 10000, with the longest
 *   event-loop stall seen (the old store writes its whole state as one JSON
 *   snapshot as it grows) and the peak RSS;
 * - restart: open the directory and restore the node, then read one key:
 *   time and peak RSS of the process; bytes on disk.
 *
 * Backends: `log` (the log-and-snapshot store this replaced, kept in
 * bench/baseline/), `sqlite` (lib/node/store/, restoring into memory),
 * `sqlite-view` (the same database as the node's store object: only the
 * node's own entries are read at start), and `lmdb` (a minimal store on
 * lmdb-js, in bench/baseline/lmdbstore.ts, for comparison only: install it
 * with `npm install --no-save lmdb` to measure it).
 *
 * Environment: STORE_N (keys, default 1000000), STORE_BACKENDS
 * (comma-separated, default all available), STORE_DIR (where the data
 * goes, default the OS temp dir). Prints a table and writes
 * bench/store-results.json (ratios against the log store, from this run).
 */
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { monitorEventLoopDelay } from 'perf_hooks'
import { Gossip, base } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import type { Config, Update } from '../lib'
import { openLogGossip } from './baseline/logstore'

const N = Number(process.env.STORE_N ?? 1_000_000)
const VALUE = 'v'.repeat(100)
const config = (): Config => ({ resolve: base.resolution.lww_vs_current_vers, max_history: Infinity, mtu: 100 })

interface Handle {
  gossip: Gossip
  flush(): Promise<void>
  close(): Promise<void>
}

function lmdbAvailable(): boolean {
  try {
    require.resolve('lmdb')
    return true
  } catch {
    return false
  }
}

function open(backend: string, dir: string): Handle {
  if (backend === 'log') {
    const { gossip, store } = openLogGossip('a', config(), dir, { reserve: 1_000_000 })
    return { gossip, flush: () => store.flush(), close: () => store.close() }
  }
  if (backend === 'lmdb') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { openLmdbGossip } = require('./baseline/lmdbstore') as typeof import('./baseline/lmdbstore')
    const { gossip, store } = openLmdbGossip('a', config(), dir)
    return { gossip, flush: () => store.flush(), close: () => store.close() }
  }
  const { gossip, store } = openGossip('a', config(), dir, { view: backend === 'sqlite-view' })
  return { gossip, flush: () => store.flush(), close: () => store.close() }
}

function du(dir: string): number {
  let total = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    total += e.isDirectory() ? du(p) : fs.statSync(p).size
  }
  return total
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024
}

// ---- steps, each in its own process ---------------------------------------

async function apply(backend: string, dir: string, batch: number, batches: number): Promise<object> {
  const h = open(backend, dir)
  const stream = h.gossip.createStream()
  let version = 1_000_000
  const t0 = performance.now()
  for (let b = 0; b < batches; b++) {
    for (let i = 0; i < batch; i++) {
      version++
      const u: Update = { key: `r${version}`, value: VALUE, source_id: 'b', version }
      stream.write(u)
    }
    await new Promise((resolve) => setImmediate(resolve))
    await h.flush()
  }
  const ms = performance.now() - t0
  const held = h.gossip.history.sources.get('b')?.live ?? 0
  if (held !== batch * batches) throw new Error(`applied ${held} of ${batch * batches}`)
  await h.close()
  return { perSecond: (batch * batches) / (ms / 1000) }
}

async function fill(backend: string, dir: string, n: number): Promise<object> {
  const h = open(backend, dir)
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let longest = 0
  const t0 = performance.now()
  let last = performance.now()
  for (let i = 0; i < n; i++) {
    h.gossip.set(`k${i}`, VALUE)
    if (i % 10_000 === 9_999) {
      await h.flush()
      await new Promise((resolve) => setImmediate(resolve))
      const t = performance.now()
      if (t - last > longest) longest = t - last
      last = t
    }
  }
  await h.flush()
  const ms = performance.now() - t0
  delay.disable()
  await h.close()
  return { ms, longestChunkMs: longest, maxDelayMs: delay.max / 1e6, peakRss: peakRss() }
}

function restart(backend: string, dir: string): object {
  const t0 = performance.now()
  const h = open(backend, dir)
  const got = h.gossip.get('k1').value
  const ms = performance.now() - t0
  if (got !== VALUE) throw new Error(`k1 is ${JSON.stringify(got)}`)
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const rss = process.memoryUsage().rss
  void h.close()
  return { ms, peakRss: peakRss(), rssAfterGc: rss }
}

function child(step: string, ...args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=16384', __filename, 'child', step, ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, number>
}

async function runChild(): Promise<void> {
  const [step, backend, dir, a, b] = process.argv.slice(3)
  let r: object
  if (step === 'apply') r = await apply(backend, dir, Number(a), Number(b))
  else if (step === 'fill') r = await fill(backend, dir, Number(a))
  else r = restart(backend, dir)
  process.stdout.write(`${JSON.stringify(r)}\n`)
  process.exit(0)
}

function main(): void {
  const all = ['log', 'sqlite', 'sqlite-view', ...(lmdbAvailable() ? ['lmdb'] : [])]
  const backends = process.env.STORE_BACKENDS?.split(',') ?? all
  const root = fs.mkdtempSync(path.join(process.env.STORE_DIR ?? os.tmpdir(), 'scuttle-bench-store-'))
  const rows: Record<string, Record<string, number | string>> = {}
  try {
    for (const backend of backends) {
      process.stderr.write(`bench:store ${backend}...\n`)
      const row: Record<string, number | string> = {}
      rows[backend] = row
      for (const batch of [100, 1000]) {
        const dir = path.join(root, `${backend}-apply-${batch}`)
        row[`apply/s, batch ${batch}`] = child('apply', backend, dir, String(batch), String(batch === 100 ? 300 : 60)).perSecond
        fs.rmSync(dir, { recursive: true, force: true })
      }
      const dir = path.join(root, `${backend}-fill`)
      // sqlite-view restarts from the sqlite fill: the same database.
      const source = backend === 'sqlite-view' ? path.join(root, 'sqlite-fill') : dir
      if (backend !== 'sqlite-view' || !fs.existsSync(source)) {
        try {
          const f = child('fill', backend === 'sqlite-view' ? 'sqlite' : backend, source, String(N))
          row['fill s'] = f.ms / 1000
          row['fill: longest stall ms'] = f.longestChunkMs
          row['fill peak RSS MB'] = f.peakRss / 2 ** 20
        } catch (err) {
          row['fill s'] = `failed: ${String((err as Error).message).split('\n').find((l) => /Error/.test(l)) ?? 'see stderr'}`
          continue
        }
      }
      row['disk MB'] = du(source) / 2 ** 20
      let r: Record<string, number>
      try {
        r = child('restart', backend, source)
      } catch (err) {
        row['restart s'] = `failed: ${String((err as Error).message).split('\n')[0].slice(0, 80)}`
        continue
      }
      row['restart s'] = r.ms / 1000
      row['restart peak RSS MB'] = r.peakRss / 2 ** 20
      row['RSS after restart MB'] = r.rssAfterGc / 2 ** 20
      if (backend !== 'sqlite') fs.rmSync(dir, { recursive: true, force: true })
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
  const columns = [...new Set(Object.values(rows).flatMap((r) => Object.keys(r)))]
  const fmt = (v: number | string | undefined): string => (v === undefined ? '-' : typeof v === 'string' ? v : v >= 100 ? v.toFixed(0) : v.toFixed(2))
  const lines = [`| N = ${N} | ${backends.join(' | ')} |`, `|---|${backends.map(() => '---').join('|')}|`]
  for (const c of columns) lines.push(`| ${c} | ${backends.map((b) => fmt(rows[b][c])).join(' | ')} |`)
  const ratios: Record<string, Record<string, number>> = {}
  for (const b of backends) {
    ratios[b] = {}
    for (const c of columns) {
      const v = rows[b][c]
      const l = rows.log?.[c]
      if (typeof v === 'number' && typeof l === 'number') ratios[b][c] = v / l
    }
  }
  const out = { started: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), n: N, rows, ratiosToLog: ratios }
  fs.writeFileSync(path.join(__dirname, '..', '..', 'bench', `store-results-${N}.json`), `${JSON.stringify(out, null, 2)}\n`)
  process.stdout.write(`${lines.join('\n')}\n`)
}

if (process.argv[2] === 'child') void runChild()
else if (require.main === module) main()
