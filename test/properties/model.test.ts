/**
 * Deletes against a reference model (docs/deletes.md), written with
 * simple-scuttle/testing (checkConvergence and replay; the model is
 * lib/testing/model.ts): random schedules of writes, deletes, counter
 * adds, exchanges (some cut mid-flight), partitions and single links down
 * and up, pauses shorter and longer than the grace and at its edges,
 * restarts of every kind, over 3 to 6 nodes with skewed clocks, mtu 1 to 5,
 * on snapshots, bare store objects, SQLite and IndexedDB. After every step
 * no node refused an update because something threw, no node shows a
 * value a delete it took beats, and the paper's invariant holds; after
 * healing, after the grace has passed again, and after restarting every
 * node, every node agrees on `state` and `sources(key)`, each key holds the
 * winner of every operation issued, counters total the same everywhere and
 * every stream reports 'sync'. Writes a node was told are late are settled
 * as the schedule says (keep or drop), and the model follows.
 *
 * PROPERTY_RUNS sets the runs (CI's default below); `npm run test:long`
 * runs many more. Counterexamples are kept at the end as regressions;
 * MODEL_REPLAY replays one, MODEL_DEBUG=1 traces every step.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { base } from '../../lib'
import type { Config } from '../../lib'
import { openIdbGossip, type IdbStore } from '../../lib/browser'
import { Store, openGossip } from '../../lib/node/sqlite'
import type { Cluster, Persistence } from '../../lib/testing/cluster'
import { checkConvergence, parseSchedule, replay, type ConvergenceOptions, type Schedule } from '../../lib/testing'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300)
/** What the schedules exercised, in all (printed with MODEL_STATS=1): a property that never reaches a path proves nothing of it. */
const seen = { late: 0, refetch: 0, dropped: 0, collectedDeletes: 0, forgot: 0, withdrawals: 0 }
const GRACE = 60_000 // ms of simulated time
const config: Config = { resolve: base.resolution.lww_vs_current_vers, tombstone_grace: GRACE }

// Persistences beyond the entry's own (a snapshot, a store object): SQLite
// (left without closing on a crash) and IndexedDB, each made afresh per run.
const sqlite = (): Persistence => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-'))
  const stores = new Map<string, Store>()
  const p: Persistence = {
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
      return p.open(node.id, config)
    },
    wipe: async (id) => {
      const old = stores.get(id)
      if (old !== undefined) await old.close()
      fs.rmSync(path.join(dir, id), { recursive: true, force: true })
    },
    dispose: async () => fs.rmSync(dir, { recursive: true, force: true }),
  }
  return p
}

const idb = (): Persistence => {
  const idbs = new Map<string, IdbStore>()
  const indexedDB = new IDBFactory()
  let generation = 0
  const names = new Map<string, string>()
  const p: Persistence = {
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
      return p.open(node.id, config)
    },
    wipe: async (id) => {
      await idbs.get(id)?.close()
      names.set(id, `${id}-${generation++}`)
    },
  }
  return p
}

const options: ConvergenceOptions = {
  nodes: { min: 3, max: 6 },
  steps: { min: 1, max: 80 },
  keys: ['k0', 'k1', 'k2', 'k3'],
  counters: ['c0', 'c1'],
  stores: [sqlite, idb],
  grace: GRACE,
  onNode: (g) => {
    g.on('late', () => seen.late++)
    g.on('refetch', (...a: unknown[]) => {
      seen.refetch++
      if (process.env.MODEL_DEBUG !== undefined) console.log('refetch at', g.id, ...a)
    })
    g.on('refetched', (_s: string, dropped: number) => (seen.dropped += dropped))
    g.history.on('forget', (u: { deleted?: true }) => (u.deleted === true ? seen.collectedDeletes++ : seen.forgot++))
    g.history.on('update', (u: { withdrawn?: true; source_id: string }) => {
      if (u.withdrawn === true && u.source_id === g.id) seen.withdrawals++
    })
  },
  // MODEL_DEBUG=1: every step and check, with every node's mappings.
  trace: process.env.MODEL_DEBUG !== undefined ? (line) => console.log(line) : undefined,
  // Exploration: leave out restarts from nothing that the design does not
  // promise to ride out (a node restored older than what peers collected).
  skipRestart: process.env.MODEL_EXPLORE === '1' ? (cluster, id, kind) => kind === 'nothing' && staleCopy(cluster, id) : undefined,
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

describe('deletes against a reference model', function () {
  this.timeout(0)

  // Every counterexample found while building the design (docs/deletes.md),
  // replayed as it was found.
  const kept = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'model-counterexamples.json'), 'utf8')) as { why: string }[]).map(
    (s) => parseSchedule(JSON.stringify(s)) as Schedule & { why: string },
  )
  for (const [i, s] of kept.entries()) {
    it(`counterexample ${i + 1}: ${s.why}`, () => replay(config, s, options))
  }

  if (process.env.MODEL_REPLAY !== undefined) {
    it('replays MODEL_REPLAY', async () => {
      await replay(config, process.env.MODEL_REPLAY as string, options)
    })
  }

  it(`property: ${RUNS} random schedules keep the model's guarantees`, async () => {
    // PROPERTY_SEED and PROPERTY_PATH run again what a failure reported.
    const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED)
    await checkConvergence(config, { ...options, runs: RUNS, seed, path: process.env.PROPERTY_PATH })
    if (process.env.MODEL_STATS === '1') console.log(seen)
  })
})

