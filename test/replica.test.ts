/**
 * The replicated state (lib/replica.ts): the parts of the original API that
 * the paper's state model touches, `config.sort` on answers and
 * `sources(key)`. A store object holding the view is in
 * store-object.test.ts.
 */
import * as assert from 'assert'
import { Gossip, base } from '../lib'
import type { Message, Update } from '../lib'

const lww = base.resolution.lww_vs_current_vers
const turn = () => new Promise((resolve) => setImmediate(resolve))

describe('config.sort and sources', () => {
  it('orders each answer by config.sort, keeping each source in increasing versions', async () => {
    // A sort that puts source "z" first, then by version descending: within
    // a source only increasing versions are allowed, so "z" stays ordered.
    const sort = (x: Update, y: Update) =>
      x.source_id !== y.source_id ? (x.source_id === 'z' ? -1 : y.source_id === 'z' ? 1 : 0) : y.version - x.version
    const a = new Gossip('a', { resolve: lww, sort })
    for (let i = 0; i < 3; i++) a.set(`a${i}`, i)
    for (let v = 1; v <= 3; v++) a.write({ key: `z${v}`, value: v, source_id: 'z', version: a.version + v })
    a.write({ digest: true, done: true, protocol: 2 })
    await turn()
    const out: Message[] = []
    for (let m = a.read() as Message | null; m !== null; m = a.read() as Message | null) out.push(m)
    const ups = out.filter((m): m is Update => !('digest' in m))
    assert.deepStrictEqual(ups.slice(0, 3).map((u) => u.source_id), ['z', 'z', 'z'])
    for (const id of ['a', 'z']) {
      const vs = ups.filter((u) => u.source_id === id).map((u) => u.version)
      assert.deepStrictEqual(vs, [...vs].sort((p, q) => p - q), `${id} in increasing versions`)
    }
    assert.deepStrictEqual(a.history.memory.slice(0, 3).map((u) => u.source_id), ['z', 'z', 'z'])
  })

  it("sources(key) is every source's current mapping, whatever resolve kept", () => {
    const g = new Gossip('n', { resolve: lww })
    g.set('k', 'mine')
    g.write({ key: 'k', value: 'old', source_id: 'p', version: 1 })
    g.write({ key: 'k', value: 'newer', source_id: 'p', version: 2 })
    assert.strictEqual(g.get('k').value, 'mine')
    assert.deepStrictEqual(g.sources('k').map((u) => [u.source_id, u.value]), [['p', 'newer'], ['n', 'mine']])
    assert.deepStrictEqual(g.sources('nothing'), [])
  })
})
