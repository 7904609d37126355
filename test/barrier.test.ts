/**
 * The barrier (lib/barrier.ts) a durable store puts between a node's stream
 * and the wire: the node's own writes wait until durable, the rest pass.
 * (Through a real store: node/store/store.test.ts, browser/idb-store.test.ts.)
 */
import * as assert from 'assert'
import { barrier, type Durable } from '../lib/barrier'

const turn = () => new Promise((r) => setImmediate(r))

// A store durable to `durableTo`; flush() resolves when the test says.
function store(durableTo: number) {
  const flushes: { resolve: () => void; reject: (e: Error) => void }[] = []
  const s: Durable & { durableTo: number; refused: Set<unknown> } = {
    id: 'a',
    durableTo,
    refused: new Set(),
    flush: () => new Promise<void>((resolve, reject) => flushes.push({ resolve, reject })),
    sends: (chunk) => !s.refused.has(chunk.key),
  }
  return { s, flushes }
}

function passed(t: ReturnType<typeof barrier>): unknown[] {
  const out: unknown[] = []
  t.on('data', (c) => out.push(c))
  return out
}

describe('barrier', () => {
  it("passes others' updates, digests and own writes already durable at once; holds a later own write until a flush", async () => {
    const { s, flushes } = store(5)
    const t = barrier(s)
    const out = passed(t)
    const theirs = { key: 'k', source_id: 'b', version: 9 }
    const digest = { digest: true, source_id: 'a', version: 9 }
    const old = { key: 'k', source_id: 'a', version: 5 }
    const fresh = { key: 'x', source_id: 'a', version: 6 }
    for (const c of [theirs, digest, old, fresh]) t.write(c)
    await turn()
    assert.deepStrictEqual(out, [theirs, digest, old])
    assert.strictEqual(flushes.length, 1)
    // Nothing passes the waiting write: order is kept.
    t.write(theirs)
    await turn()
    assert.strictEqual(out.length, 3)
    flushes[0].resolve()
    await turn()
    assert.deepStrictEqual(out, [theirs, digest, old, fresh, theirs])
  })

  it('drops an own write the store no longer sends, and errors when the flush fails', async () => {
    const { s, flushes } = store(0)
    s.refused.add('gone')
    const t = barrier(s)
    const out = passed(t)
    t.write({ key: 'gone', source_id: 'a', version: 1 })
    await turn()
    flushes[0].resolve()
    await turn()
    assert.deepStrictEqual(out, [])
    const failed = new Promise<Error>((resolve) => t.on('error', resolve))
    t.write({ key: 'y', source_id: 'a', version: 2 })
    await turn()
    flushes[1].reject(new Error('disk full'))
    assert.match((await failed).message, /disk full/)
  })
})
