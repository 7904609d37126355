/**
 * Target 6, memory: resident bytes per held update with N = 1,000,000,
 * against the bare state (a Map of N small objects holding the same key,
 * value, source id and version). Each measurement runs in a fresh child
 * process (node --expose-gc), which reports its growth after full GCs.
 */
import { execFileSync } from 'child_process'
import { emit, median, ROUNDS } from './common'
import type { Row } from './common'

const N = Number(process.env.BENCH_MEMORY_N ?? 1_000_000)

interface Sample {
  rss: number
  heap: number
  size: number
}

function child(mode: string, n: number): void {
  const gc = (globalThis as { gc?: () => void }).gc as () => void
  gc()
  gc()
  const rss0 = process.memoryUsage().rss
  // ArrayBuffers' contents (typed arrays) live outside heapUsed: counted too.
  const heap0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers
  let held: { size: number }
  if (mode === 'bare') {
    const m = new Map<string, { key: string; value: number; source_id: string; version: number }>()
    const base = Date.now() * 1000
    for (let i = 0; i < n; i++) {
      const key = 'k' + i
      m.set(key, { key, value: i, source_id: 'a', version: base + i })
    }
    held = m
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Gossip, base } = require('../lib') as typeof import('../lib')
    const g = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers, max_history: Infinity })
    for (let i = 0; i < n; i++) g.set('k' + i, i)
    // One answer from the middle of the log, so that its search index (an
    // array of versions, built by the first such search) is counted too.
    const mid = (g.history.news('a', -Infinity, n >> 1).pop() as { version: number }).version
    if (g.history.news('a', mid, 10).length !== 10) throw new Error('news from the middle failed')
    held = { get size() { return g.history._resolvedCount } }
    ;(globalThis as { keep?: unknown }).keep = g
  }
  gc()
  gc()
  const u = process.memoryUsage()
  const out: Sample = { rss: u.rss - rss0, heap: u.heapUsed + u.arrayBuffers - heap0, size: held.size }
  ;(globalThis as { keepBare?: unknown }).keepBare = held
  process.stdout.write(JSON.stringify(out) + '\n')
}

function measure(mode: string): Sample {
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, 'child', mode, String(N)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  return JSON.parse(out.trim().split('\n').pop() as string) as Sample
}

function main(): void {
  const s = { oursRss: [] as number[], bareRss: [] as number[], oursHeap: [] as number[], bareHeap: [] as number[] }
  for (let r = 0; r < ROUNDS; r++) {
    const o = measure('ours')
    const b = measure('bare')
    if (o.size !== N || b.size !== N) throw new Error(`held ${o.size} and ${b.size} of ${N}`)
    s.oursRss.push(o.rss / N)
    s.bareRss.push(b.rss / N)
    s.oursHeap.push(o.heap / N)
    s.bareHeap.push(b.heap / N)
  }
  const or = median(s.oursRss)
  const br = median(s.bareRss)
  const oh = median(s.oursHeap)
  const bh = median(s.bareHeap)
  const rows: Row[] = [
    {
      target: '6 memory (resident), 1M updates',
      what: `RSS growth per held update, N=${N} set() with max_history=Infinity, search index built (ours) vs a Map of N {key, value, source_id, version} (limit column), fresh process each, after full GC`,
      unit: 'B/update',
      ours: or,
      limit: br,
      peer: null,
      ratio: or / br,
      goal: '<= 2x',
      met: or / br <= 2,
      samples: { ours: s.oursRss, limit: s.bareRss },
    },
    {
      target: '6 memory (JS heap), 1M updates',
      what: `heapUsed + arrayBuffers growth per held update, same runs`,
      unit: 'B/update',
      ours: oh,
      limit: bh,
      peer: null,
      ratio: oh / bh,
      goal: '<= 2x',
      met: oh / bh <= 2,
      samples: { ours: s.oursHeap, limit: s.bareHeap },
    },
  ]
  emit(rows)
}

if (process.argv[2] === 'child') child(process.argv[3], Number(process.argv[4]))
else if (require.main === module) main()
