/**
 * Target 5, steady state: after a sync, an exchange between two nodes that
 * already agree sends no updates and costs O(sources), not O(keys).
 * Measured as the time of one complete exchange (B's digest, A's empty
 * answer and digest, B's empty answer), over many exchanges, with 1,000 and
 * with 100,000 keys of one source; and, for the O(sources) part, 1,000
 * sources x 100 keys.
 */
import { Gossip } from '../lib'
import type { Update } from '../lib'
import { atMost, config, emit, fail, median, now, ROUNDS, gc } from './common'
import type { Row } from './common'

const EXCHANGES = 500
let finished = false

interface Pair {
  a: Gossip
  b: Gossip
  /** Run one exchange started by B; resolves when B has read A's digest end. */
  exchange(): Promise<void>
  /** Updates either side received since the pair was made. */
  updates(): number
}

async function pair(sources: number, keys: number): Promise<Pair> {
  const per = keys / sources
  const list: Update[] = []
  const base = Date.now() * 1000
  for (let j = 0; j < per; j++) {
    for (let s = 0; s < sources; s++) {
      list.push({ key: `s${s}k${j}`, value: j, source_id: 's' + s, version: base + j * sources + s })
    }
  }
  const a = Gossip.restore('a', config({ mtu: keys, max_history: Infinity }), { version: base + keys, updates: list })
  const b = new Gossip('b', config({ mtu: keys, max_history: Infinity }))
  // The sync (as target 1), keeping the pipes for the measured exchanges.
  a.pipe(b).pipe(a)
  b.gossip()
  await new Promise<void>((resolve) => {
    const check = (): void => (b.history._resolvedCount === keys ? resolve() : void setImmediate(check))
    check()
  })
  let received = 0
  let waiting: (() => void) | null = null
  // Hooked at write(), not _write(): a write taken at once (the stream's
  // fast path) never reaches _write, and this bench then waited for ever.
  for (const node of [a, b]) {
    const write = node.write
    node.write = function (this: Gossip, chunk: unknown, ...rest: unknown[]): boolean {
      const c = chunk as { key?: unknown; done?: unknown }
      if (c.key !== undefined) received++
      const ok = (write as (this: Gossip, ...args: unknown[]) => boolean).call(this, chunk, ...rest)
      if (node === b && c.done === true && waiting !== null) {
        const w = waiting
        waiting = null
        w()
      }
      return ok
    }
  }
  const exchange = (): Promise<void> =>
    new Promise<void>((resolve) => {
      waiting = resolve
      if (!b.gossip()) fail('B could not start an exchange')
    })
  // Two exchanges to settle first-contact questions (a node's first digest
  // to a peer may ask for its own past), then count from zero.
  await exchange()
  await exchange()
  received = 0
  return { a, b, exchange, updates: () => received }
}

/** Microseconds per exchange, over EXCHANGES exchanges. */
async function time(p: Pair): Promise<number> {
  const t0 = now()
  for (let i = 0; i < EXCHANGES; i++) await p.exchange()
  return ((now() - t0) * 1e3) / EXCHANGES
}

async function main(): Promise<void> {
  const small = await pair(1, 1_000)
  const large = await pair(1, 100_000)
  const many = await pair(1_000, 100_000)
  const s = { small: [] as number[], large: [] as number[], many: [] as number[] }
  for (let r = -1; r < ROUNDS; r++) {
    gc()
    const ts = await time(small)
    const tl = await time(large)
    const tm = await time(many)
    if (r < 0) continue
    s.small.push(ts)
    s.large.push(tl)
    s.many.push(tm)
  }
  const sent = small.updates() + large.updates() + many.updates()
  const ts = median(s.small)
  const tl = median(s.large)
  const tm = median(s.many)
  const keysRatio = atMost(tl, ts, 2)
  const rows: Row[] = [
    {
      target: '5 steady exchange, 100k vs 1k keys',
      what: `one exchange between equal nodes, 1 source: 100,000 keys (ours) vs 1,000 keys (limit column), us/exchange; updates sent: ${sent}`,
      unit: 'us',
      ours: tl,
      limit: ts,
      peer: null,
      ratio: keysRatio.ratio,
      goal: '<= 2x and 0 updates',
      met: keysRatio.met && sent === 0,
      samples: { ours: s.large, limit: s.small },
      notes: `updates sent in ${3 * (ROUNDS + 1) * EXCHANGES} steady exchanges: ${sent}`,
    },
    {
      target: '5 steady, per source (info)',
      what: `one exchange between equal nodes with 1,000 sources x 100 keys, us per source (ours) vs the whole exchange with 1 source (limit column): linear in sources, as the digest is`,
      unit: 'us',
      ours: tm / 1000,
      limit: ts,
      peer: null,
      ratio: tm / 1000 / ts,
      goal: 'info: O(sources)',
      met: sent === 0,
      samples: { ours: s.many.map((t) => t / 1000), limit: s.small },
    },
  ]
  emit(rows)
}

if (require.main === module) {
  // An exchange that never ends leaves nothing to run: say so, not exit 0 in silence.
  process.on('beforeExit', () => {
    if (!finished) fail('an exchange never ended (the event loop emptied while one waited)')
  })
  main().then(() => (finished = true), (e) => { console.error(e); process.exit(1) })
}
