/**
 * Target 3, digest answers: `history.news(id, v)` returning 10 updates costs
 * the same (within 3x) with 1,000 and with 1,000,000 updates held.
 * Two forms: the tail (v = the 11th newest version, no limit: what a peer
 * that is 10 behind asks) and random v with limit 10 (a peer anywhere
 * behind, answered at mtu 10).
 */
import { History } from '../lib'
import { atMost, emit, fail, gc, median, now, ROUNDS } from './common'
import type { Row } from './common'

const SMALL = 1_000
const LARGE = Number(process.env.BENCH_NEWS_LARGE ?? 1_000_000)
const CALLS = 200_000

/** A history holding `n` updates of source 'a' (max_history: Infinity). */
function held(n: number): { h: History; versions: number[] } {
  const h = new History(Infinity)
  const versions = new Array<number>(n)
  const base = Date.now() * 1000
  for (let i = 0; i < n; i++) {
    versions[i] = base + i
    h.write('k' + i, i, 'a', base + i)
  }
  return { h, versions }
}

/** Pseudo-random query versions, the same sequence for every size. */
function queries(versions: number[]): number[] {
  const n = versions.length
  const out = new Array<number>(CALLS)
  let x = 12345
  for (let i = 0; i < CALLS; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = versions[x % (n - 10)] // at least 10 newer
  }
  return out
}

const BLOCK = 10_000

/**
 * Nanoseconds per call of `call` for the small and the large history, in
 * interleaved blocks of BLOCK calls, so that both see the same noise.
 */
function paired(small: (i: number) => number, large: (i: number) => number): { small: number; large: number } {
  let ts = 0
  let tl = 0
  let got = 0
  for (let b = 0; b < CALLS; b += BLOCK) {
    let t0 = now()
    for (let i = b; i < b + BLOCK; i++) got += small(i)
    ts += now() - t0
    t0 = now()
    for (let i = b; i < b + BLOCK; i++) got += large(i)
    tl += now() - t0
  }
  if (got !== 2 * CALLS * 10) fail(`news returned ${got / CALLS / 2} on average, not 10`)
  return { small: (ts * 1e6) / CALLS, large: (tl * 1e6) / CALLS }
}

async function main(): Promise<void> {
  const small = held(SMALL)
  const large = held(LARGE)
  const qSmall = queries(small.versions)
  const qLarge = queries(large.versions)
  const tailS = small.versions[SMALL - 11]
  const tailL = large.versions[LARGE - 11]
  const s = { tailSmall: [] as number[], tailLarge: [] as number[], randomSmall: [] as number[], randomLarge: [] as number[] }
  for (let r = -1; r < ROUNDS; r++) {
    gc()
    const t = paired(
      () => small.h.news('a', tailS).length,
      () => large.h.news('a', tailL).length,
    )
    const q = paired(
      (i) => small.h.news('a', qSmall[i], 10).length,
      (i) => large.h.news('a', qLarge[i], 10).length,
    )
    if (r < 0) continue
    s.tailSmall.push(t.small)
    s.tailLarge.push(t.large)
    s.randomSmall.push(q.small)
    s.randomLarge.push(q.large)
  }
  const tl = median(s.tailLarge)
  const ts = median(s.tailSmall)
  const rl = median(s.randomLarge)
  const rs = median(s.randomSmall)
  const rows: Row[] = [
    {
      target: '3 news tail, 1M vs 1k held',
      what: `news(id, v) with exactly 10 newer, ${LARGE} (ours) vs ${SMALL} (limit column) held, ns/call`,
      unit: 'ns',
      ours: tl,
      limit: ts,
      peer: null,
      ...atMost(tl, ts, 3),
      samples: { ours: s.tailLarge, limit: s.tailSmall },
    },
    {
      target: '3 news random v, 1M vs 1k held',
      what: `news(id, v, 10) at random v, ${LARGE} (ours) vs ${SMALL} (limit column) held, ns/call`,
      unit: 'ns',
      ours: rl,
      limit: rs,
      peer: null,
      ...atMost(rl, rs, 3),
      samples: { ours: s.randomLarge, limit: s.randomSmall },
    },
  ]
  emit(rows)
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1) })
