/**
 * Target 2, local writes: N calls of `set` on a fresh node, against the
 * stream limit of target 1 and scuttlebutt's Model.set.
 */
import { Gossip } from '../lib'
import { atMost, config, emit, fasterBy, median, now, rounds, streamLimit, updates } from './common'
import { peerInChild } from './peer'
import type { Row } from './common'

const N = Number(process.env.BENCH_N ?? 100_000)

function oursSet(max_history: number | undefined): number {
  const keys = new Array<string>(N)
  for (let i = 0; i < N; i++) keys[i] = 'k' + i
  const g = new Gossip('a', config(max_history === undefined ? {} : { max_history }))
  const t0 = now()
  for (let i = 0; i < N; i++) g.set(keys[i], i)
  const t = now() - t0
  if (g.history._resolvedCount !== N) throw new Error('set lost keys')
  return t
}

async function main(): Promise<void> {
  const objects = updates(N)
  const s = await rounds({
    ours: () => oursSet(Infinity),
    oursDefault: () => oursSet(undefined),
    limit: () => streamLimit(objects),
    // In a child process of its own: see peer.ts.
    peer: () => peerInChild('set', N),
  })
  const ours = median(s.ours)
  const oursDefault = median(s.oursDefault)
  const limit = median(s.limit)
  const peer = median(s.peer)
  const what = `N=${N} set() calls on a fresh node, max_history=Infinity; peer: Model.set in its own process (bench/peer.ts)`
  const whatD = `N=${N} set() calls, default config (max_history=1000: compaction every ~250 writes)`
  const a = { ours: s.ours, limit: s.limit, peer: s.peer }
  const d = { ours: s.oursDefault, limit: s.limit, peer: s.peer }
  const rows: Row[] = [
    { target: '2 set vs limit', what, unit: 'ms', ours, limit, peer, ...atMost(ours, limit, 3), samples: a },
    { target: '2 set vs peer', what, unit: 'ms', ours, limit, peer, ...fasterBy(ours, peer, 5), samples: a },
    { target: '2 set (default cfg) vs limit', what: whatD, unit: 'ms', ours: oursDefault, limit, peer, ...atMost(oursDefault, limit, 3), samples: d },
    { target: '2 set (default cfg) vs peer', what: whatD, unit: 'ms', ours: oursDefault, limit, peer, ...fasterBy(oursDefault, peer, 5), samples: d },
  ]
  emit(rows)
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1) })
