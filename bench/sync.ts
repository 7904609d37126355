/**
 * Target 1, sync: A holds N keys written locally, B is empty, one link with
 * mtu >= N; one B-side gossip() until B holds all N. Against the stream
 * limit (N objects through a bare Transform pair) and scuttlebutt.
 */
import { Gossip } from '../lib'
import { atMost, config, emit, fail, fasterBy, filled, gc, median, now, rounds, streamLimit, until, updates } from './common'
import { peerInChild } from './peer'
import type { Row } from './common'

export const N = Number(process.env.BENCH_N ?? 100_000)

/** One sync of everything `a` holds into a fresh empty node. */
export async function oursSync(a: Gossip, n: number): Promise<number> {
  const b = new Gossip('b', config({ mtu: a.mtu, max_history: Infinity }))
  const t0 = now()
  a.pipe(b).pipe(a)
  b.gossip()
  await until(() => b.history._resolvedCount === n)
  const t = now() - t0
  a.unpipe(b)
  b.unpipe(a)
  if (b.history._resolvedCount !== n) fail(`ours synced ${b.history._resolvedCount} of ${n}`)
  return t
}

async function main(): Promise<void> {
  const objects = updates(N)
  const s = await rounds({
    // A is built untimed, and its garbage collected, before the timed sync.
    ours: async () => {
      const a = filled('a', N)
      gc()
      return oursSync(a, N)
    },
    limit: () => streamLimit(objects),
    // In a child process of its own: see peer.ts.
    peer: () => peerInChild('sync', N),
  })
  const ours = median(s.ours)
  const limit = median(s.limit)
  const peer = median(s.peer)
  const what = `N=${N} keys, A->B one gossip(), mtu=N, max_history=Infinity (so A's history indexes all N); peer in its own process (bench/peer.ts)`
  const rows: Row[] = [
    { target: '1 sync vs limit', what, unit: 'ms', ours, limit, peer, ...atMost(ours, limit, 3), samples: s },
    { target: '1 sync vs peer', what, unit: 'ms', ours, limit, peer, ...fasterBy(ours, peer, 5), samples: s },
  ]
  emit(rows)
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1) })
