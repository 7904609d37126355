/**
 * A/B of two builds in one process: `set` of N keys on a fresh node, and
 * one in-process sync of N keys into an empty node, alternating A and B
 * round by round (so that both see the same machine), medians compared.
 *
 *   node dist/bench/ab.js OLD_CHECKOUT [NEW_CHECKOUT]
 *
 * Each checkout must be built (its dist/lib loads with require). NEW
 * defaults to this checkout. BENCH_N (100,000) and BENCH_ROUNDS (15).
 */
import * as path from 'path'

type Lib = typeof import('../lib')
const N = Number(process.env.BENCH_N ?? 100_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15)

function load(dir: string): Lib {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.resolve(dir, 'dist', 'lib')) as Lib
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))

function set(lib: Lib): number {
  const g = new lib.Gossip('a', { resolve: lib.base.resolution.lww_vs_current_vers, max_history: Infinity, mtu: N })
  const t0 = now()
  for (let i = 0; i < N; i++) g.set('k' + i, i)
  return now() - t0
}

async function sync(lib: Lib): Promise<number> {
  const config = { resolve: lib.base.resolution.lww_vs_current_vers, max_history: Infinity, mtu: N }
  const a = new lib.Gossip('a', config)
  for (let i = 0; i < N; i++) a.set('k' + i, i)
  const b = new lib.Gossip('b', config)
  const t0 = now()
  a.pipe(b).pipe(a)
  b.gossip()
  while (b.history._resolvedCount < N) await turn()
  const t = now() - t0
  a.unpipe(b)
  b.unpipe(a)
  return t
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y)
  return s[s.length >> 1]
}

async function main(): Promise<void> {
  const [oldDir, newDir = path.join(__dirname, '..', '..')] = process.argv.slice(2)
  if (oldDir === undefined) throw new Error('usage: ab OLD_CHECKOUT [NEW_CHECKOUT]')
  const libs: Record<'old' | 'new', Lib> = { old: load(oldDir), new: load(newDir) }
  const t: Record<string, number[]> = { 'set old': [], 'set new': [], 'sync old': [], 'sync new': [] }
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first, so that neither always runs on a warmer heap.
    const order: ('old' | 'new')[] = r % 2 === 0 ? ['old', 'new'] : ['new', 'old']
    for (const which of order) t[`set ${which}`].push(set(libs[which]))
    for (const which of order) t[`sync ${which}`].push(await sync(libs[which]))
  }
  const out: Record<string, unknown> = { N, rounds: ROUNDS, old: oldDir, new: newDir }
  for (const what of ['set', 'sync']) {
    const o = median(t[`${what} old`])
    const n = median(t[`${what} new`])
    out[what] = { old_ms: +o.toFixed(1), new_ms: +n.toFixed(1), new_over_old: +(n / o).toFixed(3) }
  }
  console.log(JSON.stringify(out, null, 2))
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
