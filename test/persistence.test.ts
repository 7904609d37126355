/**
 * The persistence contract (lib/persistence.ts), run against both stores
 * that implement it: the SQLite `Store` and the browser's `IdbStore` (on
 * fake-indexeddb). Each store's own file tests what is its alone (damage,
 * crashes, group commit, a real browser).
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { Gossip } from '../lib'
import type { PersistentStore, Update } from '../lib'
import { IdbStore } from '../lib/browser'
import { Store } from '../lib/node/sqlite'
import { lww } from './net'

// A backing (a directory, a database) and how to open a store of it.
type Backing = { open(id: string): Promise<PersistentStore>; dispose(): void }

const kinds: [string, () => Backing][] = [
  [
    'SQLite Store',
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-contract-'))
      return { open: async (id) => Store.open(dir, id), dispose: () => fs.rmSync(dir, { recursive: true, force: true }) }
    },
  ],
  [
    'IdbStore',
    () => {
      const indexedDB = new IDBFactory()
      return { open: (id) => IdbStore.open('db', id, { indexedDB, locks: null }), dispose: () => undefined }
    },
  ],
]

const mappings = (g: Gossip): string[] =>
  g
    .snapshot()
    .updates.map((u: Update) => JSON.stringify([u.key, u.source_id, u.version, u.value, u.deleted === true]))
    .sort()

for (const [name, make] of kinds) {
  describe(`the persistence contract: ${name}`, () => {
    let backing: Backing
    beforeEach(() => {
      backing = make()
    })
    afterEach(() => backing.dispose())

    it('keeps every mapping the history reports and what persisted() returns; a restart continues the node exactly, above every version it used', async () => {
      const store = await backing.open('a')
      assert.strictEqual(store.id, 'a')
      assert.strictEqual(store.state, undefined)
      const g = new Gossip('a', lww())
      store.attach(g)
      g.set('x', 1)
      g.set('y', { z: [1, 2] })
      g.write({ key: 'x', value: 'b', source_id: 'b', version: g.version + 10 })
      g.delete('y')
      await new Promise((resolve) => setImmediate(resolve))
      await store.flush()
      assert.strictEqual(store.durable, true)
      const before = mappings(g)
      const used = g.version
      await store.close()
      await store.close()

      const again = await backing.open('a')
      assert.ok(again.state !== undefined)
      const h = Gossip.restore('a', lww(), again.state)
      again.attach(h)
      assert.deepStrictEqual(mappings(h), before)
      assert.deepStrictEqual(h.state, g.state)
      assert.deepStrictEqual(h.persisted(), g.persisted())
      h.set('w', 2)
      assert.ok(h.get('w').version > used)
      await again.close()
    })

    it('attaches one node of its id, once; another id is refused at open once it holds a node', async () => {
      const store = await backing.open('a')
      assert.throws(() => store.attach(new Gossip('b', lww())), /cannot hold "b"/)
      store.attach(new Gossip('a', lww()))
      assert.throws(() => store.attach(new Gossip('a', lww())), /already attached/)
      await store.close()
      await assert.rejects(backing.open('b'))
    })

    it("barrier() holds the node's own writes until they are durable and passes the rest", async () => {
      const store = await backing.open('a')
      const g = new Gossip('a', lww())
      store.attach(g)
      g.set('x', 1)
      // Each chunk as it passes, and (an own write) whether it was durable then.
      const out: [string, boolean | null][] = []
      const b = store.barrier()
      b.on('data', (c: Update) => out.push([c.source_id, c.source_id === 'a' ? c.version <= store.durableTo : null]))
      b.write(g.get('x'))
      b.write({ key: 'y', value: 1, source_id: 'other', version: 1 })
      g.set('x', 2)
      b.write(g.get('x'))
      await store.flush()
      for (let i = 0; i < 5 && out.length < 3; i++) await new Promise((resolve) => setImmediate(resolve))
      assert.deepStrictEqual(out, [
        ['a', true],
        ['other', null],
        ['a', true],
      ])
      await store.close()
    })
  })
}
