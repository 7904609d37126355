/**
 * A store object (lib/store-object.ts): the third constructor argument,
 * any object used as the node's key-value store (`store[key]`), a Proxy
 * over a database included.
 */
import * as assert from 'assert'
import { Gossip, RECORD_KEY, base } from '../lib'
import { mappingKey } from '../lib/store-object'
import type { Config, Resolve, PeerStream, StateStore, Update } from '../lib'
import { Clock } from '../lib/clock'
import { Cluster, memory, storeObject } from '../lib/testing/cluster'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((resolve) => setImmediate(resolve))

/** A "database": a Map behind a Proxy, with a log of the traps it served. */
function database(table = new Map<string, Update>()): { db: StateStore; table: Map<string, Update>; ops: string[] } {
  const ops: string[] = []
  const db = new Proxy({} as StateStore, {
    get: (_t, key) => {
      if (typeof key !== 'string') return undefined
      ops.push(`get ${key}`)
      return table.get(key)
    },
    set: (_t, key, value) => {
      ops.push(`set ${String(key)}`)
      table.set(String(key), JSON.parse(JSON.stringify(value)))
      return true
    },
    has: (_t, key) => table.has(String(key)),
    deleteProperty: (_t, key) => table.delete(String(key)),
    ownKeys: () => [...table.keys()],
    getOwnPropertyDescriptor: (_t, key) =>
      table.has(String(key)) ? { value: table.get(String(key)), enumerable: true, configurable: true, writable: true } : undefined,
  })
  return { db, table, ops }
}

function pair(a: Gossip | PeerStream, b: Gossip | PeerStream): void {
  a.pipe(b).pipe(a)
}

async function exchange(...streams: PeerStream[]): Promise<void> {
  for (let r = 0; r < 4; r++) {
    for (const s of streams) s.gossip()
    for (let i = 0; i < 8; i++) await turn()
  }
}

describe('a store object as the key-value store', () => {
  it('is read and written as store[key]: state is the store itself', async () => {
    const { db, table, ops } = database()
    const a = new Gossip('a', { resolve: lww }, db)
    assert.throws(() => ((a.state as Record<string, unknown>).x = 1), /read-only/)
    a.set('x', 1)
    assert.strictEqual(a.state.x, table.get('x'), 'state reads the store')
    assert.deepStrictEqual(table.get('x'), { key: 'x', value: 1, source_id: 'a', version: a.version })
    assert.ok(ops.includes('set x'))
    assert.strictEqual(a.get('x').value, 1)
    const b = new Gossip('b', { resolve: lww })
    pair(a, b)
    b.set('y', 2)
    await exchange(a, b)
    assert.strictEqual(table.get('y')?.value, 2, "a peer's update reaches the store")
    assert.strictEqual(b.state.x.value, 1)
  })

  it('state leaves a deleted key out, as over memory, while the store keeps its tombstone (outside red team)', () => {
    for (const kind of ['object', 'database'] as const) {
      const { db, table } = database()
      const plain: StateStore = {}
      const a = new Gossip('a', { resolve: lww }, kind === 'object' ? plain : db)
      a.set('k', 1)
      a.set('j', 2)
      a.delete('k')
      const held = kind === 'object' ? plain.k : table.get('k')
      assert.strictEqual(held?.deleted, true, `${kind}: the store keeps the tombstone`)
      assert.deepStrictEqual(Object.keys(a.state), ['j'], kind)
      assert.strictEqual('k' in a.state, false, kind)
      assert.strictEqual(a.state.k, undefined, kind)
      assert.deepStrictEqual(Object.keys(JSON.parse(JSON.stringify(a.state))), ['j'], kind)
      a.set('k', 3)
      assert.strictEqual(a.get('k').value, 3, `${kind}: a later set brings it back`)
      assert.deepStrictEqual(Object.keys(a.state).sort(), ['j', 'k'], kind)
    }
  })

  it('holds entries at start: they are the state, the clock starts above them, and peers fill in the rest', async () => {
    // A cluster of three; a keeps its state in a database.
    const { db, table } = database()
    const a = new Gossip('a', { resolve: lww }, db)
    const b = new Gossip('b', { resolve: lww })
    const ab = a.createStream()
    const ba = b.createStream()
    pair(ab, ba)
    a.set('mine', 'a1')
    b.set('theirs', 'b1')
    b.set('contested', 'b')
    await exchange(ab, ba)
    // a has seen b's write: its own is later (Lamport) and wins
    a.set('contested', 'a')
    await exchange(ab, ba)
    // The entries at their keys; b's "contested", lost here, and the node's
    // record under keys of its own, which state does not show.
    assert.deepStrictEqual(Object.keys(a.state).sort(), ['contested', 'mine', 'theirs'])
    assert.deepStrictEqual([...table.keys()].filter((k) => k.startsWith('\u0000')).length, 2)
    assert.strictEqual(table.get(mappingKey('b', 'contested'))?.value, 'b')
    // a restarts on the same database, with nothing else.
    ab.unpipe(ba)
    ba.unpipe(ab)
    const a2 = new Gossip('a', { resolve: lww }, db)
    assert.strictEqual(a2.get('mine').value, 'a1')
    assert.strictEqual(a2.get('theirs').value, 'b1')
    assert.ok(a2.version >= (table.get('contested') as Update).version, 'the clock starts above what the store holds')
    assert.deepStrictEqual(a2.sources('contested').map((u) => [u.source_id, u.value]), [['b', 'b'], ['a', 'a']], 'every mapping is back')
    // a's own entries are its history: a newcomer learns them from a alone.
    const c = new Gossip('c', { resolve: lww })
    const a2c = a2.createStream()
    const ca2 = c.createStream()
    pair(a2c, ca2)
    await exchange(a2c, ca2)
    assert.strictEqual(c.get('mine').value, 'a1')
    // a and b agree.
    const a2b = a2.createStream()
    const ba2 = b.createStream()
    pair(a2b, ba2)
    await exchange(a2b, ba2)
    assert.deepStrictEqual(a2.sources('contested').map((u) => [u.source_id, u.value]), [['b', 'b'], ['a', 'a']])
    assert.strictEqual(a2.get('contested').value, 'a')
    const a3 = a2.set('after', 1)
    assert.strictEqual(a3, true)
    assert.ok(a2.get('after').version > (table.get('contested') as Update).version)
  })

  it("a delete is the key's tombstone in the store (get answers missing), collected after the grace period, also after a restart on the store (attack found it)", async () => {
    const grace = 60_000
    const kept = storeObject()
    const cluster = await Cluster.start({
      ids: ['a', 'b'],
      config: () => ({ resolve: base.resolution.lww_vs_current_vers, tombstone_grace: grace }),
      persistence: (id) => (id === 'a' ? kept : memory),
    })
    try {
      const a = cluster.node('a')
      a.set('k', 'v')
      a.delete('k')
      // A later write: a source's newest mapping is never collected.
      a.set('other', 1)
      await cluster.exchange('a', 'b')
      const store = kept.store('a') as StateStore
      assert.strictEqual(store.k.deleted, true)
      assert.strictEqual(a.get('k').version, -Infinity)
      // restart on the same store before the grace period passed
      const again = await cluster.restart('a', 'clean')
      assert.strictEqual(kept.store('a'), store)
      assert.strictEqual(again.get('k').version, -Infinity)
      // The grace passes while the node hears from its peer: collected, at both.
      for (let i = 0; i < 4; i++) {
        cluster.advance(grace / 2)
        await cluster.exchange('a', 'b')
      }
      // The store keeps the node's record of what it collected, under a
      // reserved key no write can use.
      assert.deepStrictEqual(Object.keys(store).sort(), [RECORD_KEY, 'other'])
      const gc = again.deletes.gcOf('a')
      assert.ok(Number.isSafeInteger(gc))
      assert.deepStrictEqual(JSON.parse(store[RECORD_KEY] as unknown as string).collected, { a: gc })
      assert.throws(() => again.set(RECORD_KEY, 1), /reserved/)
      assert.deepStrictEqual(again.history.get('k'), [])
      assert.deepStrictEqual(cluster.node('b').history.get('k'), [])
      // A restart on the store remembers it: a copy of a from before the
      // delete, offered later, is refused (rule 5), not shown.
      const third = await cluster.restart('a', 'clean')
      assert.strictEqual(third.deletes.gcOf('a'), again.deletes.gcOf('a'))
      assert.strictEqual(third.deletes.horizon, again.deletes.horizon)
    } finally {
      cluster.restoreClock()
    }
  })

  it("attack: a store an older release wrote (entries only) drops another source's entry deleted while it was down, also with a late write of its own kept", async () => {
    for (const lateWrite of [true, false]) {
      const real = Clock.now
      let now = 1.7e15
      Clock.now = () => now
      try {
        const cfg = (): Config => ({ resolve: lww, tombstone_grace: 1000 })
        const talk = async (x: Gossip, y: Gossip, n = 1) => {
          const sx = x.createStream()
          const sy = y.createStream()
          sx.pipe(sy).pipe(sx)
          for (let i = 0; i < n; i++) {
            now += 20e3
            for (const s of [sx, sy]) {
              s.gossip()
              for (let t = 0; t < 30; t++) await turn()
            }
          }
          sx.unpipe()
          sy.unpipe()
          sx.destroy()
          sy.destroy()
        }
        const store: StateStore = {}
        let a = new Gossip('a', cfg(), store)
        const b = new Gossip('b', cfg())
        const c = new Gossip('c', cfg())
        a.set('k1', 'a1')
        b.set('k3', 'b-old')
        await talk(a, b, 2)
        await talk(a, c, 2)
        await talk(b, c, 2)
        // b's delete of k1 beats a's value: a withdraws it.
        b.delete('k1')
        await talk(a, b, 2)
        await talk(a, c, 2)
        await talk(b, c, 2)
        if (lateWrite) a.set('k4', 'a4') // sent to nobody
        a.destroy()
        b.delete('k3')
        b.set('bx', 1)
        for (let i = 0; i < 8; i++) {
          now += 300e3
          await talk(b, c)
        }
        // As an older release left it: entries only.
        for (const k of Object.keys(store)) if (k.startsWith('\u0000')) delete store[k]
        a = new Gossip('a', cfg(), store)
        a.on('late', () => a.settleLate('keep'))
        for (let i = 0; i < 6; i++) {
          now += 100e3
          await talk(a, b)
          await talk(a, c)
          await talk(b, c)
        }
        for (const g of [a, b, c]) {
          assert.strictEqual(g.state.k3, undefined, `${g.id}: k3 is deleted`)
          assert.strictEqual(g.get('bx').value, 1)
          if (lateWrite) assert.strictEqual(g.get('k4').value, 'a4', `${g.id}: the late write kept`)
        }
      } finally {
        Clock.now = real
      }
    }
  })

  it('refuses a store that holds something other than updates of their keys', () => {
    assert.throws(() => new Gossip('a', { resolve: lww }, { k: { value: 1 } } as never), /store entry "k"/)
    assert.throws(
      () => new Gossip('a', { resolve: lww }, { k: { key: 'other', value: 1, source_id: 'a', version: 1 } } as never),
      /store entry "k"/,
    )
    assert.throws(() => new Gossip('a', { resolve: lww }, 'no' as never), /store must be an object/)
    // A snapshot is not a store: restore has its own entry point.
    const snap = new Gossip('a', { resolve: lww }).snapshot()
    assert.throws(() => new Gossip('a', { resolve: lww }, snap as never), /Gossip.restore|store entry/)
  })

  it('a store that throws refuses a local write to the caller, and a remote one with a report, losing nothing', async () => {
    let fail = true
    const table = new Map<string, Update>()
    const db = new Proxy({} as StateStore, {
      get: (_t, k) => (typeof k === 'string' ? table.get(k) : undefined),
      set: (_t, k, v) => {
        if (fail) throw new Error('database down')
        table.set(String(k), v)
        return true
      },
      ownKeys: () => [...table.keys()],
      getOwnPropertyDescriptor: (_t, k) => (table.has(String(k)) ? { value: table.get(String(k)), enumerable: true, configurable: true } : undefined),
    })
    const a = new Gossip('a', { resolve: lww }, db)
    assert.throws(() => a.set('x', 1), /database down/)
    const b = new Gossip('b', { resolve: lww })
    b.set('y', 2)
    const reasons: string[] = []
    a.on('invalid', (_o, r: string, code: string) => reasons.push(`${r} [${code}]`))
    pair(a, b)
    await exchange(a)
    assert.ok(reasons.some((r) => /store threw: database down \[node_error\]$/.test(r)), reasons.join('; '))
    assert.strictEqual(a.sources('y').length, 0, 'nothing recorded, nothing claimed')
    fail = false
    await exchange(a)
    assert.strictEqual(a.get('y').value, 2, 'asked for again once the store works')
  })

  it('a store or resolve that fails once in the middle of an answer leaves no gap behind it', async () => {
    for (const where of ['store', 'resolve'] as const) {
      let failOn: string | null = 'k2'
      const table = new Map<string, Update>()
      const db = new Proxy({} as StateStore, {
        get: (_t, k) => (typeof k === 'string' ? table.get(k) : undefined),
        set: (_t, k, v) => {
          if (where === 'store' && k === failOn) {
            failOn = null
            throw new Error('SQLITE_BUSY')
          }
          table.set(String(k), v)
          return true
        },
        deleteProperty: (_t, k) => table.delete(String(k)),
        ownKeys: () => [...table.keys()],
        getOwnPropertyDescriptor: (_t, k) => (table.has(String(k)) ? { value: table.get(String(k)), enumerable: true, configurable: true } : undefined),
      })
      const flaky: Resolve = (g, u) => {
        if (where === 'resolve' && u.key === failOn) {
          failOn = null
          throw new Error('transient')
        }
        return lww(g, u)
      }
      const a = new Gossip('a', { resolve: lww })
      const b = new Gossip('b', { resolve: flaky }, db)
      a.set('k1', 1)
      a.set('k2', 2)
      a.set('k3', 3)
      const reasons: string[] = []
      b.on('invalid', (_o, r: string) => reasons.push(r))
      pair(a, b)
      await exchange(b)
      assert.strictEqual(reasons.length, 1, where)
      assert.deepStrictEqual(Object.keys(b.state).sort(), ['k1', 'k2', 'k3'], `${where}: k2 was lost behind a max that passed it`)
    }
  })
})
