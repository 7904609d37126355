/**
 * Group commit (lib/node/store/commit.ts): what is queued in one turn goes
 * in one commit; flush waits for it; own writes are durable once their
 * commit is; a failure is told once and rejects who waits. Over a journal
 * that records, with sync on (fsyncs of a real file) and off. (The store
 * over it: node/store/store.test.ts, "group commit".)
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { GroupCommit, type Journal } from '../../../lib/node/store/commit'
import type { Op } from '../../../lib/node/store/database'

const op = (key: string): Op => ({ u: { key, value: 1, source_id: 'a', version: 1 }, key, entry: 'a', fix: false })

describe('node/store: GroupCommit', () => {
  let dir = ''
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-commit-'))
    fs.writeFileSync(path.join(dir, 'state.db-wal'), '')
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  function setup(sync: boolean, seq = 0) {
    const commits: [string[], number, boolean][] = []
    const failures: Error[] = []
    let fail: Error | null = null
    const journal: Journal = {
      write: (ops, s, forced) => {
        if (fail !== null) throw fail
        if (ops.length === 0 && !forced) return false
        commits.push([ops.map((o) => o.key), s, forced])
        return true
      },
      changed: () => false,
      checkpoint: () => true,
    }
    const g = new GroupCommit({ dir, wal: path.join(dir, 'state.db-wal'), sync, checkpointBytes: 1 << 20, journal, onFail: (e) => failures.push(e) }, seq)
    return { g, commits, failures, failNext: (e: Error) => (fail = e) }
  }

  for (const sync of [false, true]) {
    it(`what is queued in one turn is one commit; flush resolves once it is durable, and own writes with it (sync ${sync})`, async () => {
      const { g, commits } = setup(sync, 4)
      g.queue(op('x'))
      g.own(17)
      g.queue(op('y'))
      g.schedule()
      assert.strictEqual(g.durable, false)
      await new Promise((r) => setImmediate(r))
      assert.deepStrictEqual(commits, [[['x', 'y'], 5, false]])
      assert.strictEqual(g.seq, 5)
      // Without fsync a commit is durable at once; with it, once flush's fsync is done.
      assert.strictEqual(g.durableTo, sync ? -Infinity : 17)
      await g.flush()
      assert.strictEqual(g.durable, true)
      assert.strictEqual(g.durableTo, 17)
      assert.strictEqual(commits.length, 1, 'no empty commit')
      // A flush with something queued leads its own commit (forced: the number it waits for comes).
      g.queue(op('z'))
      await g.flush()
      assert.deepStrictEqual(commits[1], [['z'], 6, true])
      g.stop()
      g.close()
    })
  }

  it('a failing commit: told once, and every flush rejects with it from then on', async () => {
    const { g, failures, failNext } = setup(false)
    failNext(new Error('disk I/O error'))
    g.queue(op('x'))
    await assert.rejects(g.flush(), /disk I\/O error/)
    await assert.rejects(g.flush(), /disk I\/O error/)
    assert.strictEqual(failures.length, 1)
    assert.strictEqual(g.failed, true)
    g.close()
  })

  it('once stopped, nothing runs on its own; finish commits what is queued', async () => {
    const { g, commits } = setup(true)
    g.stop()
    g.queue(op('x'))
    assert.strictEqual(g.closed, true)
    await g.flush()
    assert.deepStrictEqual(commits, [], 'flush after stop resolves without committing')
    g.finish()
    assert.deepStrictEqual(commits, [[['x'], 1, false]], 'finish commits what is queued')
    g.close()
  })
})
