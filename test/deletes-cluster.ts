/**
 * Clusters for the tests of deletes (docs/deletes.md) and of the modules
 * that carry its rules (late.ts, stale-copies.ts): one config, rounds, the
 * grace passing while nodes hear from each other, and SQLite and IndexedDB
 * persistences.
 */
import * as assert from 'assert'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { base, Gossip } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import { openIdbGossip } from '../lib/browser'
import type { Config } from '../lib'
import { Cluster, viewOf, type Persistence } from '../lib/testing/cluster'
export const lww = base.resolution.lww_vs_current_vers
export const GRACE = 60_000
export const turn = () => new Promise((r) => setImmediate(r))
export const config = (extra: Partial<Config> = {}) => (): Config => ({ resolve: lww, tombstone_grace: GRACE, ...extra })

/** Every pair exchanges both ways, `n` times. */
export async function rounds(c: Cluster, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await c.round()
}

/** The grace passes while the nodes keep hearing from each other. */
export async function graceWithExchanges(c: Cluster): Promise<void> {
  for (let i = 0; i < 4; i++) {
    c.advance(GRACE / 2)
    await c.round()
  }
}

export async function withCluster(ids: string[], extra: Partial<Config>, body: (c: Cluster) => Promise<void>, persistence?: (id: string) => Persistence): Promise<void> {
  const c = await Cluster.start({ ids, config: config(extra), persistence })
  try {
    await body(c)
  } finally {
    for (const g of c.nodes.values()) g.destroy()
    c.restoreClock()
  }
}

export function agree(c: Cluster): void {
  const views = [...c.nodes.values()].map((g) => JSON.stringify(viewOf(g)))
  assert.ok(views.every((v) => v === views[0]), views.join('\n'))
}

/** A Persistence for Cluster over a store that opens a node and closes. */
function persistence(name: string, openStore: (id: string, cfg: Config) => Promise<{ gossip: Gossip; store: { close(): Promise<void> } }>): () => Persistence {
  return () => {
    const stores = new Map<string, { close(): Promise<void> }>()
    const p: Persistence = {
      name,
      keeps: 'everything',
      open: async (id, cfg) => {
        const { gossip, store } = await openStore(id, cfg)
        stores.set(id, store)
        return gossip
      },
      reopen: async (node, cfg) => {
        await stores.get(node.id)?.close()
        return p.open(node.id, cfg)
      },
      wipe: async () => undefined,
    }
    return p
  }
}

/** SQLite and IndexedDB persistences for Cluster, their stores in `dir` and a fresh fake IndexedDB. */
export function persistences(dir: string): { sqlite: () => Persistence; idb: () => Persistence } {
  const indexedDB = new IDBFactory()
  return {
    sqlite: persistence('sqlite', async (id, cfg) => openGossip(id, cfg, path.join(dir, id), { fsync: false, log: () => undefined })),
    idb: persistence('idb', (id, cfg) => openIdbGossip(id, cfg, `deletes-${id}`, { indexedDB, locks: null })),
  }
}

/**
 * A node 'b' (its config `extra` besides resolve) given a's 'boom' and 'k'
 * in one answer, its resolve throwing on 'boom' once: 'k' is taken above
 * a's max, which stays held back.
 */
export async function heldBack(a: Gossip, extra: Partial<Config> = {}): Promise<Gossip> {
  let thrown = false
  const resolve: Config['resolve'] = (g, u) => {
    if (u.key === 'boom' && !thrown) {
      thrown = true
      throw new Error('once')
    }
    return lww(g, u)
  }
  const b = new Gossip('b', { ...extra, resolve })
  b.on('invalid', () => {})
  const feed = b.createStream()
  feed.on('invalid', () => {})
  feed.write(a.history.mapping('a', 'boom'))
  feed.write(a.history.mapping('a', 'k'))
  feed.write({ digest: true, done: true, protocol: 2, reply: true })
  await turn()
  assert.strictEqual(b.get('k').value, a.get('k').value)
  assert.strictEqual(b.history.sources.get('a')?.max, -Infinity, 'held back')
  return b
}
