/**
 * Watches (issue 21): what 100,000 key or prefix watches cost each `set`,
 * against a node with none, and stopping them. Run: `npm run bench:watch`
 * (add --expose-gc for a GC between rounds). Prints ratios of one run;
 * each set writes a key no watch names, then a key one watch names.
 */
import { Gossip } from '../lib'
import { config, median, now, rounds } from './common'

const WATCHES = Number(process.env.BENCH_WATCHES ?? 100_000)
const SETS = 20_000

function node(kind: 'none' | 'keys' | 'prefixes'): { g: Gossip; stops: (() => void)[] } {
  const g = new Gossip('a', config())
  const stops: (() => void)[] = []
  for (let i = 0; i < (kind === 'none' ? 0 : WATCHES); i++) stops.push(g.watch(kind === 'keys' ? `w${i}` : { prefix: `w${i}/` }, () => undefined))
  return { g, stops }
}

// µs per set over SETS sets of `key(i)`, on a node already warmed by as many.
function perSet(g: Gossip, key: (i: number) => string): number {
  for (let i = 0; i < SETS; i++) g.set(`warm${i}`, i)
  const t0 = now()
  for (let i = 0; i < SETS; i++) g.set(key(i), i)
  return ((now() - t0) * 1000) / SETS
}

async function main(): Promise<void> {
  const nodes = { none: node('none'), keys: node('keys'), prefixes: node('prefixes') }
  let round = 0
  const s = await rounds({
    none: () => perSet(nodes.none.g, (i) => `k${round}-${i}`),
    keys: () => perSet(nodes.keys.g, (i) => `k${round}-${i}`),
    keysHit: () => perSet(nodes.keys.g, (i) => `w${(i * 7) % WATCHES}`),
    prefixes: () => perSet(nodes.prefixes.g, (i) => `k${round}-${i}`),
    prefixesHit: () => perSet(nodes.prefixes.g, (i) => `w${(i * 7) % WATCHES}/x${round++}`),
  })
  const base = median(s.none)
  const t0 = now()
  for (const stop of nodes.keys.stops) stop()
  const stopMs = now() - t0
  const t1 = now()
  node('keys')
  const watchMs = now() - t1
  const row = (name: string, xs: number[]): string => `${name}: ${median(xs).toFixed(2)} µs/set, ${(median(xs) / base).toFixed(2)}x a node without watches`
  console.log(`${WATCHES} watches, ${SETS} sets per round, median of rounds`)
  console.log(`no watches: ${base.toFixed(2)} µs/set`)
  console.log(row('key watches, unwatched key', s.keys))
  console.log(row('key watches, watched key', s.keysHit))
  console.log(row('prefix watches, unwatched key', s.prefixes))
  console.log(row('prefix watches, watched prefix', s.prefixesHit))
  console.log(`stopping ${WATCHES} watches: ${stopMs.toFixed(0)} ms (${(stopMs / watchMs).toFixed(2)}x making them, ${watchMs.toFixed(0)} ms)`)
}

if (require.main === module) main().catch((e) => {
  console.error(e)
  process.exit(1)
})
