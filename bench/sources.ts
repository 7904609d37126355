/**
 * Target 4, many sources: 1,000 sources x 100 keys synced to an empty node,
 * per-update cost within 1.5x of one source x 100,000 keys. Both nodes A
 * are built the same way (from a snapshot), so the source count is the
 * only difference.
 */
import { Gossip } from '../lib'
import type { Update } from '../lib'
import { atMost, config, emit, gc, median, rounds } from './common'
import type { Row } from './common'
import { oursSync } from './sync'

const TOTAL = Number(process.env.BENCH_N ?? 100_000)
const SOURCES = 1_000

/**
 * A node holding `sources` x (TOTAL / sources) updates, from a snapshot.
 * Versions interleave across sources, as if all wrote at once. `layout`
 * is the order the update objects are allocated in: 'source' puts each
 * source's updates next to each other in memory, as a receiver that
 * deserialises them from the wire would have them, since answers go source
 * by source; 'time' scatters them (in-process, B then reads A's objects
 * with a cache miss each: a property of this benchmark, not of the code).
 */
function holder(sources: number, layout: 'source' | 'time' = 'source'): Gossip {
  const per = TOTAL / sources
  const updates: Update[] = []
  const base = Date.now() * 1000
  const at = (s: number, j: number): Update => ({
    key: `s${s}k${j}`,
    value: j,
    source_id: 's' + s,
    version: base + j * sources + s,
  })
  if (layout === 'source') {
    for (let s = 0; s < sources; s++) for (let j = 0; j < per; j++) updates.push(at(s, j))
  } else {
    for (let j = 0; j < per; j++) for (let s = 0; s < sources; s++) updates.push(at(s, j))
  }
  const version = base + TOTAL
  return Gossip.restore('a', config({ mtu: TOTAL, max_history: Infinity }), { version, updates })
}

// A is built untimed, and its garbage collected, before the timed sync.
function untimedThen(a: Gossip): Promise<number> {
  gc()
  return oursSync(a, TOTAL)
}

async function main(): Promise<void> {
  const s = await rounds({
    many: () => untimedThen(holder(SOURCES)),
    one: () => untimedThen(holder(1)),
    scattered: () => untimedThen(holder(SOURCES, 'time')),
  })
  const per = (ms: number): number => (ms * 1e6) / TOTAL
  const many = per(median(s.many))
  const one = per(median(s.one))
  const scattered = per(median(s.scattered))
  const cfg = `sync to an empty node, mtu=${TOTAL}, max_history=Infinity, ns/update`
  const rows: Row[] = [
    {
      target: '4 many sources, per update',
      what: `${SOURCES} sources x ${TOTAL / SOURCES} keys (ours) vs 1 source x ${TOTAL} keys (limit column), ${cfg}`,
      unit: 'ns',
      ours: many,
      limit: one,
      peer: null,
      ...atMost(many, one, 1.5),
      samples: { ours: s.many.map(per), limit: s.one.map(per) },
    },
    {
      target: '4 many sources, scattered (info)',
      what: `as above, A's update objects allocated in time order (each read by B is a cache miss)`,
      unit: 'ns',
      ours: scattered,
      limit: one,
      peer: null,
      ratio: scattered / one,
      goal: 'info',
      met: true,
      samples: { ours: s.scattered.map(per), limit: s.one.map(per) },
      notes: 'in-process, B reads the very objects A holds; over a wire it reads fresh ones, in arrival order',
    },
  ]
  emit(rows)
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1) })
