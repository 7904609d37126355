/**
 * The browser store (lib/browser/idb-store.ts, IndexedDB), its logic under
 * Node on fake-indexeddb (an in-memory IndexedDB), and for real in headless
 * Chromium: a page keeps its state across reloads, and a second tab is
 * refused.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as http from 'http'
import * as os from 'os'
import * as path from 'path'
import { IDBFactory } from 'fake-indexeddb'
import { Clock, Gossip } from '../../lib'
import { IdbStore, openIdbGossip } from '../../lib/browser'
import type { Update } from '../../lib'
import { lww } from '../net'
import { NO_CHROMIUM, skip } from '../skip'

const ROOT = path.join(__dirname, '..', '..', '..')
const CHROMIUM = '/usr/bin/chromium'

async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

describe('IndexedDB store (fake-indexeddb under Node)', () => {
  const now = Clock.now
  afterEach(() => {
    Clock.now = now
  })

  it('restores every mapping, the clock and signatures after a reopen; flush resolves once committed', async () => {
    const indexedDB = new IDBFactory()
    const security = { sign: (u: Update) => `sig:${u.key}`, verify: () => true }
    const { gossip, store } = await openIdbGossip('a', lww({ security }), 'db', { indexedDB, locks: null })
    assert.strictEqual(store.state, undefined)
    gossip.set('x', 1)
    gossip.set('y', { z: [1, 2] })
    gossip.write({ key: 'x', value: 'b', source_id: 'b', version: gossip.version + 10, signature: 's' })
    assert.strictEqual(store.durable, false)
    await store.flush()
    assert.strictEqual(store.durable, true)
    const version = gossip.version
    await store.close()
    await store.close()
    const again = await openIdbGossip('a', lww({ security }), 'db', { indexedDB, locks: null })
    assert.strictEqual(again.gossip.get('x').value, 'b')
    assert.strictEqual(again.gossip.sources('x').length, 2)
    assert.deepStrictEqual(again.gossip.get('y').value, { z: [1, 2] })
    assert.strictEqual((again.gossip.get('y') as Update).signature, 'sig:y')
    assert.ok(again.gossip.version >= version)
    again.gossip.set('w', 1)
    assert.ok((again.gossip.get('w').version as number) > version)
    await again.store.close()
  })

  it('openIdbGossip<T> types the values of the node it opens, restored or new, as Gossip<T> does', async () => {
    const indexedDB = new IDBFactory()
    type Size = { w: number; h: number }
    const first = await openIdbGossip<Size>('a', lww(), 'db', { indexedDB, locks: null })
    first.gossip.set('box', { w: 2, h: 3 })
    // Checked by the compiler: a value of another type is refused.
    const wrong = (): void => {
      // @ts-expect-error a string is not a Size
      first.gossip.set('box', 'big')
    }
    void wrong
    await first.store.close()
    const again = await openIdbGossip<Size>('a', lww(), 'db', { indexedDB, locks: null })
    const w: number = again.gossip.state.box.value.w
    assert.strictEqual(w, 2)
    await again.store.close()
    const untyped = await openIdbGossip('a', lww(), 'db', { indexedDB, locks: null })
    // Unknown by default, as Gossip's.
    // @ts-expect-error unknown is not a number
    const n: number = untyped.gossip.state.box.value
    assert.deepStrictEqual(n, { w: 2, h: 3 })
    await untyped.store.close()
  })

  it('never reuses a version across a crash, even with the wall clock at 0', async () => {
    Clock.now = () => 0
    const indexedDB = new IDBFactory()
    const a = await openIdbGossip('a', lww(), 'db', { indexedDB, locks: null, reserve: 3 })
    let issued = 0
    for (let i = 0; i < 10; i++) {
      a.gossip.set(`k${i}`, i)
      issued = a.gossip.version
    }
    await a.store.flush()
    a.gossip.set('lost', 1) // a crash before this one is written
    issued = a.gossip.version
    const again = await openIdbGossip('a', lww(), 'db', { indexedDB, locks: null })
    again.gossip.set('after', 1)
    assert.ok((again.gossip.get('after').version as number) > issued, 'a version was reused')
    assert.strictEqual(again.gossip.get('k9').value, 9)
  })

  it('barrier(): own writes leave only once written, in order', async () => {
    const indexedDB = new IDBFactory()
    const { gossip, store } = await openIdbGossip('a', lww(), 'db', { indexedDB, locks: null })
    const out: unknown[] = []
    const b = store.barrier()
    b.on('data', (m: unknown) => out.push(m))
    gossip.set('x', 1)
    b.write(gossip.get('x'))
    b.write({ key: 'r', value: 1, source_id: 'c', version: 5 })
    b.write({ digest: true, source_id: 'a', version: gossip.version })
    assert.deepStrictEqual(out, [], 'nothing passes an own write that is not stored yet')
    await store.flush()
    await turns()
    assert.deepStrictEqual(
      out.map((m) => (m as { key?: string }).key ?? 'digest'),
      ['x', 'r', 'digest'],
    )
    // Now stored: an own write passes at once.
    b.write(gossip.get('x'))
    await turns(1)
    assert.strictEqual(out.length, 4)
    await store.close()
  })

  it('refuses another node, another store on the same lock, records that are not updates, and bad options', async () => {
    const indexedDB = new IDBFactory()
    const s = await IdbStore.open('db', 'a', { indexedDB, locks: null })
    assert.throws(() => s.attach(new Gossip('b', lww())), /cannot hold/)
    const g = new Gossip('a', lww())
    s.attach(g)
    assert.throws(() => s.attach(g), /already attached/)
    await s.close()
    assert.throws(() => s.attach(new Gossip('a', lww())), /closed/)
    await assert.rejects(IdbStore.open('db', 'b', { indexedDB, locks: null }), /holds node "a", not "b"/)
    await assert.rejects(IdbStore.open('', 'a', { indexedDB }), TypeError)
    await assert.rejects(IdbStore.open('db', '', { indexedDB }), TypeError)
    await assert.rejects(IdbStore.open('db', 'a', { indexedDB, reserve: 0 }), TypeError)
    await assert.rejects(IdbStore.open('db', 'a', { indexedDB: undefined, locks: null }), /no IndexedDB/)
    // A lock manager that says the database is taken.
    const taken = { request: (_n: string, _o: unknown, cb: (l: null) => unknown) => Promise.resolve(cb(null)) } as unknown as LockManager
    await assert.rejects(IdbStore.open('db', 'a', { indexedDB, locks: taken }), /in use by another store/)
    // One that grants it, and gets it back at close.
    let released = false
    const free = {
      request: (_n: string, _o: unknown, cb: (l: object) => Promise<void>) => cb({}).then(() => (released = true)),
    } as unknown as LockManager
    const held = await IdbStore.open('db', 'a', { indexedDB, locks: free })
    await held.close()
    await turns()
    assert.ok(released, 'the lock is released at close')
    // A record that is not an update: refused, naming the database.
    const raw = await new Promise<IDBDatabase>((resolve) => {
      const r = indexedDB.open('db', 1)
      r.onsuccess = () => resolve(r.result)
    })
    await new Promise<void>((resolve) => {
      const tx = raw.transaction(['mappings'], 'readwrite')
      tx.objectStore('mappings').put({ key: 'bad', source_id: 'a', version: 'not a number', value: 1 })
      tx.oncomplete = () => resolve()
    })
    raw.close()
    await assert.rejects(IdbStore.open('db', 'a', { indexedDB, locks: null }), /database "db" holds a record that is not an update: \["bad","a"\]/)
  })

  it('a failed transaction fails flush, with the reason, for good', async () => {
    const indexedDB = new IDBFactory()
    const { gossip, store } = await openIdbGossip('a', lww(), 'db', { indexedDB, locks: null })
    const db = (store as unknown as { db: IDBDatabase }).db
    db.close() // transactions on a closed database throw
    gossip.set('x', 1)
    await assert.rejects(store.flush(), /closed|InvalidStateError|connection/i)
    await assert.rejects(store.flush())
  })
})

describe('IndexedDB store in headless Chromium', function () {
  this.timeout(60_000)

  it('a page keeps its state across reloads, and a second tab on the same database is refused', async function () {
    if (!fs.existsSync(CHROMIUM)) skip(this, NO_CHROMIUM(CHROMIUM))
    const esbuild = await import('esbuild')
    const bundle = await esbuild.build({
      absWorkingDir: ROOT,
      stdin: {
        contents: `
          import { base } from './lib'
          import { openIdbGossip } from './lib/browser'
          const config = { resolve: base.resolution.lww_vs_current_vers }
          window.scuttle = {
            async write(n) {
              const { gossip, store } = await openIdbGossip('page', config, 'scuttle-test')
              for (let i = 0; i < n; i++) gossip.set('k' + i, { i, at: gossip.version })
              await store.flush()
              window.open = store
              return { version: gossip.version }
            },
            async read() {
              const { gossip, store } = await openIdbGossip('page', config, 'scuttle-test')
              const out = { keys: Object.keys(gossip.state).length, k7: gossip.get('k7').value, version: gossip.version }
              gossip.set('after', 1)
              out.after = gossip.get('after').version
              await store.close()
              return out
            },
            async second() {
              try { await openIdbGossip('page', config, 'scuttle-test'); return 'opened' } catch (e) { return e.message }
            },
          }`,
        resolveDir: ROOT,
        loader: 'ts',
      },
      bundle: true,
      platform: 'browser',
      format: 'iife',
      write: false,
      logLevel: 'silent',
    })
    const js = bundle.outputFiles[0].text
    const server = http.createServer((req, res) => {
      if (req.url === '/main.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>store</title><script src="/main.js"></script>')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`
    const { chromium } = await import('playwright-core')
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-chromium-idb-'))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 30_000,
    })
    try {
      const page = context.pages()[0] ?? (await context.newPage())
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(e.message))
      await page.goto(url)
      type Api = { scuttle: { write(n: number): Promise<{ version: number }>; read(): Promise<{ keys: number; k7: { i: number }; version: number; after: number }>; second(): Promise<string> } }
      const wrote = await page.evaluate(() => (window as unknown as Api).scuttle.write(50))
      // Another tab of the same origin, while the first holds the store.
      const tab = await context.newPage()
      await tab.goto(url)
      assert.match(await tab.evaluate(() => (window as unknown as Api).scuttle.second()), /in use by another store/)
      await tab.close()
      await page.reload()
      const read = await page.evaluate(() => (window as unknown as Api).scuttle.read())
      assert.strictEqual(read.keys, 50, 'every key came back after the reload')
      assert.strictEqual(read.k7.i, 7)
      assert.ok(read.version >= wrote.version)
      assert.ok(read.after > wrote.version, 'no version reused after the reload')
      assert.deepStrictEqual(errors, [])
    } finally {
      await context.close()
      server.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  })
})
