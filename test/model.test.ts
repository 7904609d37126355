/**
 * Deletes against a reference model (docs/deletes.md): random schedules of
 * writes, deletes, counter adds, exchanges (some cut mid-flight),
 * partitions, pauses shorter and longer than the grace, restarts of every
 * kind, over 3 to 6 nodes with skewed clocks and mtu 1 to 5. After every
 * step no node shows a value a delete it took beats; after healing, after
 * the grace has passed again, and after restarting every node, every node
 * agrees on `state` and `sources(key)`, each key holds the winner of every
 * operation issued, counters total the same everywhere and every stream
 * reports 'sync'. Writes a node was told are late are settled as the
 * schedule says (keep or drop), and the model follows.
 *
 * PROPERTY_RUNS sets the runs (CI's default below); `npm run test:long`
 * runs many more. Counterexamples are kept at the end as regressions.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { Gossip, base, counter } from '../lib'
import { Store, openGossip } from '../lib/node/sqlite'
import { openIdbGossip } from '../lib/browser'
import type { Config } from '../lib'
import type { IdbStore } from '../lib/browser'
import { Cluster, memory, storeObject, type Persistence } from '../lib/testing/cluster'
import { Model } from '../lib/testing/model'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300)
/** What the schedules exercised, in all (printed with MODEL_STATS=1): a property that never reaches a path proves nothing of it. */
const seen = { late: 0, refetch: 0, dropped: 0, collectedDeletes: 0, forgot: 0, withdrawals: 0 }
const GRACE = 60_000 // ms of simulated time
const KEYS = ['k0', 'k1', 'k2', 'k3']
const COUNTERS = ['c0', 'c1']

type Step =
  | { t: 'set'; n: number; k: number; v: number }
  | { t: 'del'; n: number; k: number }
  | { t: 'add'; n: number; c: number }
  | { t: 'x'; a: number; b: number; cut: number }
  | { t: 'part'; mask: number }
  | { t: 'down'; a: number; b: number }
  | { t: 'up'; a: number; b: number }
  | { t: 'heal' }
  | { t: 'wait'; ms: number }
  | { t: 'run'; ms: number }
  | { t: 'split'; mask: number; ops: [number, 'set' | 'del', number, number][]; ms: number }
  | { t: 'restart'; n: number; kind: 'clean' | 'crash' | 'nothing' }

interface Schedule {
  seed: number
  nodes: number
  mtu: number
  persist: number[]
  skew: number[]
  steps: Step[]
  keep: boolean[]
}

// Times at the grace's edges, where collection starts.
const AT_GRACE = fc.constantFrom(GRACE / 4, GRACE / 2, GRACE - 1, GRACE, GRACE + 1, 1.5 * GRACE)

const step = (nodes: number): fc.Arbitrary<Step> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ t: fc.constant('set' as const), n: fc.nat(nodes - 1), k: fc.nat(KEYS.length - 1), v: fc.nat(99) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('del' as const), n: fc.nat(nodes - 1), k: fc.nat(KEYS.length - 1) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('add' as const), n: fc.nat(nodes - 1), c: fc.nat(COUNTERS.length - 1) }) },
    {
      weight: 8,
      arbitrary: fc.record({
        t: fc.constant('x' as const),
        a: fc.nat(nodes - 1),
        b: fc.nat(nodes - 1),
        cut: fc.oneof({ weight: 5, arbitrary: fc.constant(Infinity) }, { weight: 1, arbitrary: fc.nat(12) }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('part' as const), mask: fc.nat((1 << nodes) - 1) }) },
    // One link down or up: chains and triangles with a side missing.
    { weight: 2, arbitrary: fc.record({ t: fc.constant('down' as const), a: fc.nat(nodes - 1), b: fc.nat(nodes - 1) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('up' as const), a: fc.nat(nodes - 1), b: fc.nat(nodes - 1) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('heal' as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.oneof(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: GRACE, max: 3 * GRACE }), AT_GRACE) }),
    },
    {
      // A partition while both sides write and delete and keep gossiping
      // among themselves, shorter or longer than the grace, then healed.
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('split' as const),
        mask: fc.integer({ min: 1, max: (1 << nodes) - 2 }),
        ops: fc.array(fc.tuple(fc.nat(nodes - 1), fc.constantFrom('set' as const, 'del' as const), fc.nat(KEYS.length - 1), fc.nat(99)), { maxLength: 8 }),
        ms: fc.oneof(fc.integer({ min: 1_000, max: GRACE / 2 }), fc.integer({ min: GRACE, max: 3 * GRACE }), AT_GRACE),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant('run' as const), ms: fc.oneof(fc.integer({ min: 1_000, max: GRACE / 2 }), fc.integer({ min: GRACE, max: 3 * GRACE }), AT_GRACE) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant('restart' as const), n: fc.nat(nodes - 1), kind: fc.constantFrom('clean' as const, 'crash' as const, 'nothing' as const) }),
    },
  )

const schedule: fc.Arbitrary<Schedule> = fc.integer({ min: 3, max: 6 }).chain((nodes) =>
  fc.record({
    seed: fc.integer({ min: 1, max: 2_147_483_646 }),
    nodes: fc.constant(nodes),
    mtu: fc.integer({ min: 1, max: 5 }),
    persist: fc.array(fc.nat(3), { minLength: nodes, maxLength: nodes }),
    skew: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -600_000, max: 600_000 })), { minLength: nodes, maxLength: nodes }),
    steps: fc.array(step(nodes), { minLength: 1, maxLength: 80 }),
    keep: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  }),
)

// Persistences the schedule picks from: in memory (snapshot), a bare store
// object, SQLite, IndexedDB.
function persistences(dir: string): Persistence[] {
  const stores = new Map<string, Store>()
  const sqlite: Persistence = {
    name: 'sqlite',
    keeps: 'everything',
    open: async (id, config) => {
      const { gossip, store } = openGossip(id, config, path.join(dir, id), { fsync: false, log: () => undefined })
      stores.set(id, store)
      return gossip
    },
    reopen: async (node, config, clean) => {
      const old = stores.get(node.id) as Store
      await old.flush()
      if (clean) await old.close()
      else old._abandon()
      return sqlite.open(node.id, config)
    },
    wipe: async (id) => {
      const old = stores.get(id)
      if (old !== undefined) await old.close()
      fs.rmSync(path.join(dir, id), { recursive: true, force: true })
    },
  }
  const idbs = new Map<string, IdbStore>()
  const indexedDB = new IDBFactory()
  let generation = 0
  const names = new Map<string, string>()
  const idb: Persistence = {
    name: 'idb',
    keeps: 'everything',
    open: async (id, config) => {
      if (!names.has(id)) names.set(id, `${id}-${generation++}`)
      const { gossip, store } = await openIdbGossip(id, config, names.get(id) as string, { indexedDB, locks: null })
      idbs.set(id, store)
      return gossip
    },
    reopen: async (node, config) => {
      await (idbs.get(node.id) as IdbStore).close()
      return idb.open(node.id, config)
    },
    wipe: async (id) => {
      await idbs.get(id)?.close()
      names.set(id, `${id}-${generation++}`)
    },
  }
  return [memory, storeObject(), sqlite, idb]
}

async function run(s: Schedule): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-'))
  const ids = Array.from({ length: s.nodes }, (_, i) => `n${i}`)
  const kinds = persistences(dir)
  // Each node's tie-breaking randomness, seeded: a schedule replays exactly.
  const randoms = new Map(ids.map((id, i) => [id, lehmer(s.seed + i)]))
  const config = (id: string): Config => ({
    resolve: base.resolution.lww_vs_current_vers,
    mtu: s.mtu,
    tombstone_grace: GRACE,
    random: randoms.get(id),
  })
  const cluster = await Cluster.start({
    ids,
    config,
    skew: (id) => s.skew[ids.indexOf(id)],
    persistence: (id) => kinds[s.persist[ids.indexOf(id)]],
  })
  const model = new Model(cluster)
  let choices = 0
  const late = new Set<string>()
  cluster.onNode((g) => {
    g.on('late', () => {
      late.add(g.id)
      seen.late++
    })
    g.on('refetch', (...a: unknown[]) => {
      seen.refetch++
      if (process.env.MODEL_DEBUG !== undefined) console.log('refetch at', g.id, ...a)
    })
    g.on('refetched', (_s: string, dropped: number) => (seen.dropped += dropped))
    g.history.on('forget', (u: { deleted?: true }) => (u.deleted === true ? seen.collectedDeletes++ : seen.forgot++))
    g.history.on('update', (u: { withdrawn?: true; source_id: string }) => {
      if (u.withdrawn === true && u.source_id === g.id) seen.withdrawals++
    })
  })
  // The operator's choice, as the schedule says, for every node told of late writes.
  const settle = (): void => {
    for (const id of late) {
      const choice = s.keep[choices++ % s.keep.length] ? 'keep' : 'drop'
      model.dropping = choice === 'drop'
      try {
        cluster.node(id).settleLate(choice)
      } finally {
        model.dropping = false
      }
    }
    late.clear()
  }
  const fail = (what: string, bad: string[]): void => {
    if (bad.length > 0) throw new Error(`${what}:\n  ${bad.slice(0, 8).join('\n  ')}`)
  }
  // Time passes while the links that are up keep exchanging.
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += GRACE / 4) {
      cluster.advance(Math.min(GRACE / 4, ms - t))
      await cluster.round()
      if (process.env.MODEL_DEBUG === '2') dump(cluster, `${t} ms of ${ms}`)
      settle()
      fail(`after ${t} ms of ${ms}: a deleted value is back`, model.resurrections())
      fail(`after ${t} ms of ${ms}: a write withdrawn that no delete beat`, model.withdrawals())
    }
  }
  try {
    for (const st of s.steps) {
      const id = (n: number): string => ids[n % s.nodes]
      switch (st.t) {
        case 'set':
          cluster.node(id(st.n)).set(KEYS[st.k], st.v)
          break
        case 'del':
          cluster.node(id(st.n)).delete(KEYS[st.k])
          break
        case 'add':
          counter.add(cluster.node(id(st.n)), COUNTERS[st.c])
          break
        case 'x':
          if (st.a !== st.b) await cluster.exchange(id(st.a), id(st.b), st.cut)
          break
        case 'part':
          cluster.partition(new Set(ids.filter((_, i) => (st.mask >> i) & 1)))
          break
        case 'heal':
          cluster.heal()
          break
        case 'down':
          if (st.a !== st.b) cluster.down(cluster.link(id(st.a), id(st.b)))
          break
        case 'up':
          if (st.a !== st.b) cluster.up(cluster.link(id(st.a), id(st.b)))
          break
        case 'wait':
          cluster.advance(st.ms)
          break
        case 'run':
          await run(st.ms)
          break
        case 'split':
          cluster.partition(new Set(ids.filter((_, i) => (st.mask >> i) & 1)))
          for (const [n, kind, k, v] of st.ops) {
            if (kind === 'set') cluster.node(id(n)).set(KEYS[k], v)
            else cluster.node(id(n)).delete(KEYS[k])
          }
          await run(st.ms)
          cluster.heal()
          break
        case 'restart': {
          const n = id(st.n)
          if (st.kind === 'nothing' && process.env.MODEL_EXPLORE === '1' && staleCopy(cluster, n)) break
          const p = cluster.persistenceOf(n)
          model.restarting(n, st.kind === 'nothing' ? 'none' : p.keeps === 'view' ? 'view' : 'everything')
          await cluster.restart(n, st.kind)
          break
        }
      }
      settle()
      if (process.env.MODEL_DEBUG === '2') dump(cluster, `after ${JSON.stringify(st)}`)
      fail(`after ${JSON.stringify(st)}: a deleted value is back`, model.resurrections())
      fail(`after ${JSON.stringify(st)}: a write withdrawn that no delete beat`, model.withdrawals())
    }
    const check = async (when: string): Promise<void> => {
      cluster.heal()
      await quiet(cluster, settle)
      if (process.env.MODEL_DEBUG === '1') {
        dump(cluster, when)
        for (const o of model.ops.values()) console.log('op', o.node, o.kind, o.key, o.version % 100000, o.lost ? 'LOST' : '')
        console.log(cluster.invalid.splice(0).slice(0, 20))
      }
      fail(`${when}: a deleted value is back`, model.resurrections())
      fail(`${when}: a write withdrawn that no delete beat`, model.withdrawals())
      fail(`${when}: nodes disagree or differ from the model`, model.disagreements())
      for (const c of COUNTERS) {
        const totals = [...cluster.nodes.values()].map((g) => counter.total(g, c))
        assert.ok(totals.every((t) => t === totals[0]), `${when}: counter ${c} totals ${totals.join(', ')}`)
      }
      fail(`${when}: streams not in sync`, cluster.unsynced())
    }
    await check('healed')
    // The grace passes again, with exchanges: everything collectable goes.
    for (let i = 0; i < 4; i++) {
      cluster.advance(GRACE / 2)
      await cluster.round()
      settle()
    }
    await check('after the grace')
    for (let i = 0; i < ids.length; i++) {
      const n = ids[i]
      const kind = (['clean', 'crash', 'nothing'] as const)[(s.persist[i] + i) % 3]
      model.restarting(n, kind === 'nothing' ? 'none' : cluster.persistenceOf(n).keeps === 'view' ? 'view' : 'everything')
      await cluster.restart(n, kind)
    }
    await check('after restarting every node')
  } finally {
    for (const id of ids) {
      const g = cluster.nodes.get(id)
      g?.destroy()
    }
    for (const p of kinds) for (const id of ids) await p.wipe(id).catch(() => undefined)
    cluster.restoreClock()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function dump(cluster: Cluster, when: string): void {
  console.log(`--- ${when}`)
  for (const [id, g] of cluster.nodes) {
    const maxes = [...g.history.sources.values()].map((l) => `${l.id}:${l.max % 100000}`).join(' ')
    const maps = [...g.history._mappings()].map((u) => `${u.key}@${u.source_id}:${u.version % 100000}${u.deleted ? 'D' : u.withdrawn ? 'W' : ''}`).sort().join(' ')
    console.log(id, '| max', maxes, '|', maps)
  }
}

// Whether some node holds a copy of `id` older than what another collected of it.
function staleCopy(cluster: Cluster, id: string): boolean {
  let gc = -Infinity
  for (const g of cluster.nodes.values()) gc = Math.max(gc, g.deletes.gcOf(id))
  for (const g of cluster.nodes.values()) {
    const log = g.history.sources.get(id)
    if (log !== undefined && log.live > 0 && log.max < gc) return true
  }
  return false
}

/** A seeded generator in [0, 1) (Park and Miller's). */
function lehmer(seed: number): () => number {
  let x = seed % 2147483647 || 1
  return () => {
    x = (x * 16807) % 2147483647
    return (x - 1) / 2147483646
  }
}

// Rounds until two in a row move nothing but digests; late writes settled
// between rounds.
async function quiet(cluster: Cluster, settle: () => void): Promise<void> {
  let calm = 0
  for (let i = 0; i < 400 && calm < 2; i++) {
    // A refetch no peer can serve ends after a grace (docs/deletes.md,
    // rule 6): time passes faster while one waits, as it would.
    const waiting = [...cluster.nodes.values()].some((g) => g.deletes.refetching)
    cluster.advance(waiting ? GRACE / 4 : 10)
    const before = cluster.updatesMoved
    await cluster.round()
    if (process.env.MODEL_DEBUG === '2') dump(cluster, `round ${i}`)
    settle()
    calm = cluster.updatesMoved === before && !waiting ? calm + 1 : 0
  }
}

describe('deletes against a reference model', function () {
  this.timeout(0)

  // Every counterexample found while building the design (docs/deletes.md),
  // replayed as it was found.
  const kept = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'model-counterexamples.json'), 'utf8'), (_k, v) =>
    v === 'Infinity' ? Infinity : v,
  ) as (Schedule & { why: string })[]
  for (const [i, s] of kept.entries()) {
    it(`counterexample ${i + 1}: ${s.why}`, () => run({ ...s, seed: s.seed ?? 1 }))
  }

  if (process.env.MODEL_REPLAY !== undefined) {
    it('replays MODEL_REPLAY', async () => {
      await run(JSON.parse(process.env.MODEL_REPLAY as string, (_k, v) => (v === 'Infinity' ? Infinity : v)) as Schedule)
    })
  }

  it(`property: ${RUNS} random schedules keep the model's guarantees`, async () => {
    await fc.assert(fc.asyncProperty(schedule, run), { numRuns: RUNS, verbose: 1 })
    if (process.env.MODEL_STATS === '1') console.log(seen)
  })
})

void Gossip
