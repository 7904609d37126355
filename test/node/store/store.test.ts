/**
 * Durable state on SQLite (lib/node/store/). A restart restores state, history and clock; a
 * crash at any point (what each fsync made durable, then any prefix of what
 * was written since, a file whose name was never fsynced possibly gone)
 * loses no acknowledged write and never reuses a version, even when the
 * wall clock gives no help (it is stubbed to 0). Damage (truncation,
 * deletion, zero-fill, flipped bytes, in any file) is refused with an error
 * naming the file, or repaired with a logged account, never silently lost
 * (a property here; each kind of damage and its repair: salvage.test.ts).
 * Then group commit (issue 23). (Row checksums: store/checksum.test.ts.)
 */
import * as assert from 'assert'
import { spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { Clock, Gossip, MAX_KEY_LENGTH, MAX_VALUE_LENGTH } from '../../../lib'
import { Store, StoreDamagedError, openGossip } from '../../../lib/node/sqlite'
import type { Update } from '../../../lib'
import { rowCrc } from '../../../lib/node/store/checksum'
import { rowUpdate, signatureColumn, valueColumn } from '../../../lib/node/store/schema'
import { Disk } from '../../disk'
import { lww } from '../../net'
import { exchange, freshDirs, settleStreams } from './stores'

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'simple-scuttle.js')
const RUNS = Number(process.env.PROPERTY_RUNS ?? 40)

type Op = { set: number; value: number } | { remote: number; value: number } | { ack: true } | { checkpoint: true }

const ops = fc.array(
  fc.oneof(
    fc.record({ set: fc.nat({ max: 6 }), value: fc.integer() }),
    fc.record({ remote: fc.nat({ max: 6 }), value: fc.integer() }),
    fc.constant({ ack: true as const }),
    fc.constant({ checkpoint: true as const }),
  ),
  { maxLength: 40 },
)

/** Writes `ops` to a node on a store in `dir`; returns what was acknowledged and the highest version issued. */
async function drive(
  dir: string,
  list: Op[],
  options: { reserve: number; checkpointBytes: number },
  disk: Disk,
): Promise<{ gossip: Gossip; store: Store; acked: Map<string, number>; issued: number }> {
  const { gossip, store } = openGossip('a', lww(), dir, { ...options, log: () => undefined })
  disk.settled() // a new database is checkpointed (synced) before open returns
  const peer = new Gossip('b', lww())
  const acked = new Map<string, number>()
  let issued = -Infinity
  const since: { key: string; version: number }[] = []
  for (const op of list) {
    if ('set' in op) {
      gossip.set(`k${op.set}`, op.value)
      issued = gossip.version
      since.push({ key: `k${op.set}`, version: gossip.version })
    } else if ('remote' in op) {
      peer.set(`k${op.remote}`, op.value)
      const u = peer.get(`k${op.remote}`) as Update
      gossip.write({ key: u.key, value: u.value, source_id: u.source_id, version: u.version })
      await settleStreams()
    } else if ('ack' in op) {
      await store.flush()
      for (const w of since) acked.set(w.key, Math.max(acked.get(w.key) ?? -Infinity, w.version))
      since.length = 0
    } else {
      store.checkpoint()
    }
  }
  return { gossip, store, acked, issued }
}

describe('store (SQLite)', () => {
  const fresh = freshDirs()

  it('restores state, history and clock after a clean restart', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    assert.strictEqual(store.state, undefined)
    gossip.set('x', 1)
    gossip.set('y', { z: [1, 2] })
    gossip.set('x', 2)
    const peer = new Gossip('b', lww())
    peer.set('from-b', 'hello')
    peer.set('x', 'b wrote x')
    exchange(gossip, peer)
    await settleStreams()
    await store.flush()
    const before = gossip.version
    await store.close()
    await store.close() // twice is harmless

    const again = openGossip('a', lww(), dir)
    assert.deepStrictEqual(
      [...Object.values(again.gossip.state)].map((u) => [u.key, u.value, u.source_id]).sort(),
      [
        ['from-b', 'hello', 'b'],
        ['x', 'b wrote x', 'b'],
        ['y', { z: [1, 2] }, 'a'],
      ],
    )
    assert.strictEqual(again.gossip.sources('x').length, 2, 'every source\'s mapping (mu) came back, not only the resolved one')
    assert.ok(again.gossip.version >= before)
    assert.deepStrictEqual(
      again.gossip.history.news('a', -Infinity).map((u) => u.key),
      ['y', 'x'],
    )
    // The resolved view in the database is the node's.
    assert.strictEqual(again.store.get('x')?.source_id, 'b')
    assert.strictEqual(again.store.get('missing'), undefined)
    again.gossip.set('w', true)
    assert.ok((again.gossip.get('w').version as number) > before)
    assert.deepStrictEqual(again.store.check(), [])
    await again.store.close()
  })

  it("keeps a copy's first version (docs/deletes.md R2) through a restart, and a signature that starts as its mark does", async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    const v = Clock.now()
    gossip.write({ key: 'k', value: 'copy', source_id: 'p', version: v + 10, first: v - 10 })
    await settleStreams()
    await store.flush()
    await store.close()
    const again = openGossip('a', lww(), dir)
    assert.strictEqual(again.gossip.history.mapping('p', 'k')?.first, v - 10)
    assert.deepStrictEqual(again.store.check(), [])
    await again.store.close()
    // The column it shares with signatures reads back both, a signature that starts with the mark too.
    for (const u of [
      { key: 'j', value: 1, source_id: 'q', version: v, signature: '^odd' },
      { key: 'j', value: 1, source_id: 'q', version: v, signature: 'sig', first: v - 1 },
      { key: 'j', value: null, source_id: 'q', version: v, deleted: true as const, first: v - 1 },
    ]) {
      const value = valueColumn(u)
      const signature = signatureColumn(u)
      assert.deepStrictEqual(rowUpdate([u.key, u.source_id, u.version, value, signature, rowCrc(u.key, u.source_id, u.version, value, signature)]), u)
    }
  })

  it('openGossip<T> types the values of the node it opens, restored or new, as Gossip<T> does', async () => {
    const dir = fresh()
    type Size = { w: number; h: number }
    const first = openGossip<Size>('a', lww(), dir)
    first.gossip.set('box', { w: 2, h: 3 })
    // Checked by the compiler: a value of another type is refused.
    const wrong = (): void => {
      // @ts-expect-error a string is not a Size
      first.gossip.set('box', 'big')
    }
    void wrong
    await first.store.close()
    const again = openGossip<Size>('a', lww(), dir)
    const w: number = again.gossip.state.box.value.w
    assert.strictEqual(w, 2)
    await again.store.close()
    const untyped = openGossip('a', lww(), dir)
    // Unknown by default, as Gossip's.
    // @ts-expect-error unknown is not a number
    const n: number = untyped.gossip.state.box.value
    assert.deepStrictEqual(n, { w: 2, h: 3 })
    await untyped.store.close()
  })

  it('checkpoints the log into the database as it grows, and restores from it', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww({ max_history: 8 }), dir, { checkpointBytes: 8192, reserve: 7 })
    for (let i = 0; i < 300; i++) {
      gossip.set(`k${i % 13}`, `${i} ${'x'.repeat(200)}`)
      if (i % 17 === 0) await store.flush()
    }
    await store.flush()
    await settleStreams()
    const wal = fs.statSync(path.join(dir, 'state.db-wal')).size
    assert.ok(wal < 8192 + 64 * 1024, `the log was checkpointed (${wal} bytes)`)
    const expected = [...Object.values(gossip.state)].map((u) => [u.key, u.value, u.version])
    const version = gossip.version
    await store.close()
    assert.ok(!fs.existsSync(path.join(dir, 'state.db-wal')), 'a clean close leaves everything in the database file')
    const again = openGossip('a', lww({ max_history: 8 }), dir)
    assert.deepStrictEqual(
      [...Object.values(again.gossip.state)].map((u) => [u.key, u.value, u.version]).sort(),
      expected.sort(),
    )
    assert.ok(again.gossip.version >= version)
    await again.store.close()
  })

  it('property: a crash anywhere after the last fsync loses no acknowledged write and reuses no version', async () => {
    await fc.assert(
      fc.asyncProperty(
        ops,
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(1024, 1 << 20),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.boolean(),
        fc.boolean(),
        async (list, reserve, checkpointBytes, cut, restartEarlier, dropName) => {
          Clock.now = () => 0
          const dir = fresh()
          const disk = new Disk(dir)
          try {
            const { store, acked, issued } = await drive(dir, list, { reserve, checkpointBytes }, disk)
            disk.crash(store, cut, dropName)
            if (restartEarlier) Clock.now = () => 0
            const again = openGossip('a', lww(), dir, { log: () => undefined })
            for (const [key, version] of acked) {
              assert.ok(again.gossip.get(key).version >= version, `${key}@${version} was acknowledged but lost`)
            }
            assert.ok(again.gossip.version >= issued, `clock ${again.gossip.version} is below issued ${issued}`)
            again.gossip.set('after', 1)
            assert.ok((again.gossip.get('after').version as number) > issued, 'a version was reused')
            await again.store.close()
          } finally {
            disk.restore()
          }
        },
      ),
      // Kept: a crash that tore the log's header, when the log was written
      // over in place, left a store that would not open.
      { numRuns: RUNS, examples: [[[{ remote: 0, value: 0 }], 1, 1 << 20, 7.62939453125e-7, false, false]] },
    )
  })

  it('property: damage after a crash is refused naming the file, or repaired with an account; no acknowledged write is silently lost', async () => {
    const damage = fc.record({
      file: fc.constantFrom('state.db', 'state.db-wal', 'acked', 'lock.db'),
      kind: fc.constantFrom('truncate', 'delete', 'zero', 'flip'),
      at: fc.double({ min: 0, max: 1, noNaN: true }),
      length: fc.integer({ min: 1, max: 5000 }),
      seed: fc.nat(),
    })
    await fc.assert(
      fc.asyncProperty(ops, fc.integer({ min: 1, max: 8 }), fc.double({ min: 0, max: 1, noNaN: true }), damage, async (list, reserve, cut, d) => {
        Clock.now = () => 0
        const dir = fresh()
        const disk = new Disk(dir)
        try {
          const { store, acked, issued } = await drive(dir, [...list, { ack: true }], { reserve, checkpointBytes: 4096 }, disk)
          disk.crash(store, cut, false)
          const file = path.join(dir, d.file)
          if (fs.existsSync(file)) harm(file, d)
          const lines: string[] = []
          let again: { gossip: Gossip; store: Store }
          try {
            again = openGossip('a', lww(), dir, { log: (l) => lines.push(l) })
          } catch (err) {
            assert.ok(err instanceof StoreDamagedError, `refused with a StoreDamagedError: ${(err as Error).stack}`)
            assert.ok((err as StoreDamagedError).file.startsWith(dir), `the error names a file of the directory: ${(err as Error).message}`)
            again = openGossip('a', lww(), dir, { repair: true, log: (l) => lines.push(l) })
            const aside = fs.readdirSync(dir).filter((n) => n.startsWith('damaged-'))
            assert.ok(aside.length > 0 && fs.readdirSync(path.join(dir, aside[0])).length > 0, 'the damaged files were copied aside')
          }
          for (const [key, version] of acked) {
            if (again.gossip.get(key).version >= version) continue
            const accounted = lines.some((l) => l.includes(JSON.stringify(key)) || /transactions? .*(lost|acknowledged)|commit|everything it held is lost|mappings they held are lost/.test(l))
            assert.ok(accounted, `${key}@${version} was acknowledged, then lost without a word after ${d.kind} of ${d.file}:\n${lines.join('\n')}`)
          }
          again.gossip.set('after', 1)
          const reissued = (again.gossip.get('after').version as number) <= issued
          assert.ok(!reissued || lines.some((l) => /reservation/.test(l)), 'a version was reused without a word')
          assert.deepStrictEqual(again.store.check(), [])
          await again.store.close()
        } finally {
          disk.restore()
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('a crashed store does nothing more: its queued transaction cannot land after the crash', async () => {
    Clock.now = () => 0
    const dir = fresh()
    const a = openGossip('a', lww(), dir, { reserve: 100 })
    a.gossip.set('w', 0) // reserves: committed and fsynced at once
    a.gossip.set('x', 1) // queued for the next turn of the event loop
    void a.store.flush() // and an fsync in flight: it never returns, as in a dead process
    a.store._abandon()
    await settleStreams()
    await new Promise((resolve) => setTimeout(resolve, 20)) // the fsync's thread finishes
    const again = openGossip('a', lww(), dir, { log: () => undefined })
    assert.strictEqual(again.gossip.get('w').value, 0)
    await again.store.close()
  })

  it('fsyncs the names of the log and the witness into the directory before acknowledging anything in them', async () => {
    Clock.now = () => 0
    const dir = fresh()
    const disk = new Disk(dir)
    try {
      const { gossip, store } = openGossip('a', lww(), dir, { reserve: 1 })
      disk.settled() // a new database is checkpointed (synced) before open returns
      assert.ok(disk.named('state.db') && disk.named('lock.db'), 'the database and the lock')
      gossip.set('x', 1)
      await store.flush()
      assert.ok(disk.named('state.db-wal'), 'the log could vanish in a power cut, acknowledged writes with it')
      assert.ok(disk.named('acked'))
      assert.ok(disk.safe('state.db-wal').length > 0)
      disk.crash(store, 0, true)
      const again = openGossip('a', lww(), dir)
      assert.strictEqual(again.gossip.get('x').value, 1)
      await again.store.close()
    } finally {
      disk.restore()
    }
  })

  it('survives kill -9 of a real node process at random points: acknowledged writes kept, versions never reused', async function () {
    this.timeout(60_000)
    const dir = fresh()
    const seen: { key: string; version: number }[] = []
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [BIN, 'node', '--id', 'k', '--listen', '127.0.0.1:0', '--data', dir], { stdio: ['pipe', 'pipe', 'pipe'] })
      let buffered = ''
      let acks = 0
      // Writes in flight when the node is killed fail with EPIPE.
      child.stdin.on('error', () => undefined)
      child.stdout.on('data', (b: Buffer) => {
        buffered += String(b)
        for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
          const answer = JSON.parse(buffered.slice(0, nl))
          buffered = buffered.slice(nl + 1)
          if (answer.ok) {
            seen.push({ key: answer.key, version: answer.version })
            acks++
          }
        }
      })
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      try {
        let sent = 0
        const target = 50 + Math.floor(Math.random() * 400)
        const deadline = Date.now() + 15000
        while (acks < target && Date.now() < deadline) {
          let text = ''
          for (let i = 0; i < 20; i++, sent++) text += `set key${sent % 37} ${JSON.stringify({ n: sent, round, pad: 'p'.repeat(sent % 300) })}\n`
          child.stdin.write(text)
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
        assert.ok(acks >= target, `the node acknowledged writes (${acks})`)
      } finally {
        child.kill('SIGKILL')
        await exited
      }
    }
    const maxVersion = Math.max(...seen.map((a) => a.version))
    Clock.now = () => 0
    const again = openGossip('k', lww(), dir)
    const last = new Map<string, number>()
    for (const a of seen) last.set(a.key, a.version)
    for (const [key, version] of last) assert.ok(again.gossip.get(key).version >= version, `acknowledged ${key}@${version} lost`)
    again.gossip.set('after', 1)
    assert.ok((again.gossip.get('after').version as number) > maxVersion)
    assert.deepStrictEqual(again.store.check(), [])
    await again.store.close()
  })

  it('gets back from a peer a write that escaped before the crash but never reached the disk', async () => {
    Clock.now = () => 0
    const dir = fresh()
    const disk = new Disk(dir)
    try {
      const { gossip, store } = openGossip('a', lww(), dir, { reserve: 100 })
      disk.settled()
      const peer = new Gossip('b', lww())
      gossip.set('kept', 1)
      await store.flush()
      gossip.set('escaped', 2) // within the reservation: no fsync of its own
      exchange(gossip, peer)
      await settleStreams()
      assert.strictEqual(peer.get('escaped').value, 2)
      disk.crash(store, 0, false) // the disk lost it
      const again = openGossip('a', lww(), dir, { log: () => undefined })
      assert.strictEqual(again.gossip.get('escaped').version, -Infinity)
      again.gossip.set('new', 3)
      assert.ok((again.gossip.get('new').version as number) > (peer.get('escaped').version as number))
      exchange(again.gossip, peer)
      await settleStreams()
      assert.strictEqual(again.gossip.get('escaped').value, 2, 'a got its lost write back from b')
      assert.strictEqual(peer.get('new').value, 3, 'b took the new write')
      await again.store.close()
    } finally {
      disk.restore()
    }
  })

  it('barrier(): nothing leaves for a peer before it is on disk', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    const peer = new Gossip('b', lww())
    const sa = gossip.createStream()
    const sb = peer.createStream()
    const seen: string[] = []
    const barrier = store.barrier()
    const reader = new Database(path.join(dir, 'state.db'), { readonly: true })
    const committed = reader.prepare('SELECT count(*) FROM mappings WHERE key = ?').pluck(true)
    barrier.on('data', (m: { key?: string }) => {
      if (m.key !== undefined) {
        seen.push(m.key)
        assert.strictEqual(committed.get(m.key), 1, `${m.key} left before it was written`)
        assert.ok(store.durable || m.key === 'w', `${m.key} left before it was fsynced`)
      }
      sb.write(m)
    })
    sa.pipe(barrier)
    sb.pipe(sa)
    gossip.set('w', 0) // the first write reserves versions: fsynced at once
    gossip.set('x', 1) // this one waits for the next flush
    assert.strictEqual(store.durable, false)
    sb.gossip()
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('x never arrived')), 5000)
      const check = (): void => {
        if (peer.get('x').value === 1) {
          clearTimeout(t)
          resolve()
        } else setImmediate(check)
      }
      check()
    })
    reader.close()
    assert.deepStrictEqual(seen, ['w', 'x'])
    // What other sources wrote passes at once, durable or not.
    const relayed = { key: 'r', value: 1, source_id: 'c', version: 5 }
    gossip.write(relayed)
    await settleStreams()
    const out: unknown[] = []
    const b2 = store.barrier()
    b2.on('data', (m: unknown) => out.push(m))
    b2.write(relayed)
    assert.deepStrictEqual(out, [relayed])
    await store.close()
  })

  it('keeps signatures through a restart', async () => {
    const dir = fresh()
    const security = { sign: (u: Update) => `sig:${u.key}:${u.version}`, verify: () => true }
    const { gossip, store } = openGossip('a', lww({ security }), dir)
    gossip.set('x', 1)
    await store.close()
    const again = openGossip('a', lww({ security }), dir)
    assert.strictEqual((again.gossip.get('x') as Update).signature, `sig:x:${again.gossip.get('x').version}`)
    await again.store.close()
  })

  it('refuses a directory of another node, one in use in this process or by another, and bad options', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    gossip.set('x', 1)
    assert.throws(() => openGossip('a', lww(), dir), /already open in this process/)
    assert.throws(() => Store.open(path.join(dir, '.', ''), 'a'), /already open in this process/, 'the same directory by another path')
    // Another process: SQLite's lock on lock.db, held while the store is open.
    const other = spawnSync(
      process.execPath,
      ['-e', `try { require(${JSON.stringify(path.join(__dirname, '..', '..', '..', 'lib', 'node', 'sqlite'))}).Store.open(${JSON.stringify(dir)}, 'a'); console.log('opened') } catch (e) { console.log(e.message) }`],
      { encoding: 'utf8' },
    )
    assert.match(other.stdout, /in use by another store/)
    await store.close()
    // Once closed, the directory is free again, in this process and others.
    const ok = spawnSync(process.execPath, ['-e', `const s = require(${JSON.stringify(path.join(__dirname, '..', '..', '..', 'lib', 'node', 'sqlite'))}).Store.open(${JSON.stringify(dir)}, 'a'); s.close().then(() => console.log('opened'))`], {
      encoding: 'utf8',
    })
    assert.match(ok.stdout, /opened/)

    assert.throws(() => Store.open(dir, 'b'), /holds node "a", not "b"/)
    assert.throws(() => openGossip('a', { resolve: null }, dir), TypeError)
    const s = Store.open(dir, 'a')
    assert.throws(() => s.attach(new Gossip('b', lww())), /cannot hold/)
    await s.close()
    assert.throws(() => Store.open('', 'a'), TypeError)
    assert.throws(() => Store.open(fresh(), ''), TypeError)
    assert.throws(() => Store.open(fresh(), 'a', { reserve: 0 }), TypeError)
    assert.throws(() => Store.open(fresh(), 'a', { checkpointBytes: -1 }), TypeError)
    assert.throws(() => Store.open(fresh(), 'a', { check: 'some' as never }), TypeError)
    // A directory of another node, whose lock.db is gone: its database says whose it is.
    fs.rmSync(path.join(dir, 'lock.db'))
    assert.throws(() => Store.open(dir, 'b'), /holds node "a", not "b"/)
  })

  it('refuses a file that is not a store, and a store of another format', async () => {
    const dir = fresh()
    fs.writeFileSync(path.join(dir, 'state.db'), 'not a database at all, just text that is long enough to look like a header '.repeat(60))
    assert.throws(() => Store.open(dir, 'a'), (e: Error) => e instanceof StoreDamagedError && e.message.includes('state.db'))
    const other = fresh()
    const db = new Database(path.join(other, 'state.db'))
    db.exec('CREATE TABLE t (x)')
    db.close()
    assert.throws(() => Store.open(other, 'a'), /not a simple-scuttle store/)
    const newer = fresh()
    const s = Store.open(newer, 'a')
    await s.close()
    const d2 = new Database(path.join(newer, 'state.db'))
    d2.pragma('user_version = 99')
    d2.close()
    assert.throws(() => Store.open(newer, 'a'), /format 99/)
  })

  it('refuses to acknowledge once the disk fails, and says why', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    gossip.set('w', 0) // reserves versions, fsynced synchronously
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const real = require('fs') as { fdatasync: unknown }
    const fdatasync = real.fdatasync
    real.fdatasync = (_fd: number, cb: (err: Error) => void) => setImmediate(() => cb(new Error('EIO: the disk is gone')))
    try {
      gossip.set('x', 1)
      await assert.rejects(store.flush(), /EIO/)
      await assert.rejects(store.flush(), /EIO/, 'a failed store stays failed')
    } finally {
      real.fdatasync = fdatasync
    }
    await store.close()
  })

  it('acknowledges without fsync when told to (process crashes only)', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir, { fsync: false, checkpointBytes: 4096 })
    for (let i = 0; i < 50; i++) gossip.set(`x${i}`, 'v'.repeat(200))
    await store.flush()
    assert.ok(store.durable)
    await settleStreams()
    assert.ok(fs.statSync(path.join(dir, 'state.db-wal')).size < 4096 + 40000, 'checkpoints without fsyncs too')
    assert.throws(() => store.attach(gossip), /already attached/)
    await store.close()
    const again = openGossip('a', lww(), dir)
    assert.strictEqual(again.gossip.get('x49').value, 'v'.repeat(200))
    await again.store.close()
  })

  it('holds the largest values and keys, and values of every JSON shape', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    // the limits every path shares (see README, "Hostile peers and limits")
    const big = 'b'.repeat(MAX_VALUE_LENGTH - 2)
    const key = 'k'.repeat(MAX_KEY_LENGTH)
    gossip.set('big', big)
    gossip.set(key, { nested: [1, 'two', null, true, { three: 3.5 }] })
    gossip.set('unicode', 'ünïcødé \u2028 😀')
    gossip.set('0', 0)
    await store.close()
    const again = openGossip('a', lww(), dir)
    assert.strictEqual((again.gossip.get('big').value as string).length, big.length)
    assert.deepStrictEqual(again.gossip.get(key).value, { nested: [1, 'two', null, true, { three: 3.5 }] })
    assert.strictEqual(again.gossip.get('unicode').value, 'ünïcødé \u2028 😀')
    assert.strictEqual(again.gossip.get(0).value, 0)
    await again.store.close()
  })

  describe('the original API: a store object over the database (view)', () => {
    it('keeps the resolved view in the database, answers get from it, and restarts from it', async () => {
      const dir = fresh()
      const store = Store.open(dir, 'a')
      const gossip = new Gossip('a', lww(), store.view)
      store.attach(gossip)
      gossip.set('x', 1)
      gossip.set('y', 2)
      assert.deepStrictEqual(gossip.state.x, store.view.x, 'state reads the database')
      const peer = new Gossip('b', lww())
      peer.set('x', 'from b')
      exchange(gossip, peer)
      await settleStreams()
      assert.strictEqual(gossip.get('x').value, 'from b', 'read through the view before the commit')
      await store.flush()
      assert.deepStrictEqual(Object.keys(gossip.state).sort(), ['x', 'y'])
      assert.strictEqual(JSON.parse(JSON.stringify(gossip.state)).y.value, 2)
      assert.strictEqual('y' in gossip.state, true)
      assert.strictEqual(store.get('x')?.value, 'from b')
      const version = gossip.version
      await store.close()

      // A restart the original's way: the view's entries are the node's state.
      const again = openGossip('a', lww(), dir, { view: true, reserve: 10 })
      assert.strictEqual(again.gossip.get('x').value, 'from b')
      assert.strictEqual(again.gossip.get('y').value, 2)
      again.gossip.set('z', 3)
      assert.ok((again.gossip.get('z').version as number) > version)
      assert.throws(() => ((again.gossip.state as Record<string, unknown>).bad = { nope: 1 }), TypeError)
      assert.throws(() => delete (again.gossip.state as Record<string, unknown>).y, /read-only/)
      // The database itself is the user's to change.
      delete (again.store.view as Record<string, unknown>).y
      assert.strictEqual(again.gossip.state.y, undefined)
      assert.ok(!Object.keys(again.gossip.state).includes('y'))
      await again.store.flush()
      assert.strictEqual(again.store.get('y'), undefined, 'the delete reached the database')
      await again.store.close()
    })

    it('restarts above the reservation even when the wall clock went back', async () => {
      Clock.now = () => 0
      const dir = fresh()
      const a = openGossip('a', lww(), dir, { view: true, reserve: 1000 })
      a.gossip.set('x', 1)
      const issued = a.gossip.version
      a.gossip.set('y', 2) // within the reservation, never flushed
      const escaped = a.gossip.version
      a.store._abandon()
      const again = openGossip('a', lww(), dir, { view: true })
      again.gossip.set('z', 3)
      assert.ok((again.gossip.get('z').version as number) > Math.max(issued, escaped))
      await again.store.close()
    })
  })

})

// Damage `file`: cut it, delete it, zero a range, or flip bytes.
function harm(file: string, d: { kind: string; at: number; length: number; seed: number }): void {
  const size = fs.statSync(file).size
  const at = Math.floor(d.at * size)
  if (d.kind === 'delete') fs.rmSync(file)
  else if (d.kind === 'truncate') fs.truncateSync(file, at)
  else if (size > 0) {
    const data = fs.readFileSync(file)
    let s = d.seed
    for (let i = 0; i < Math.min(d.length, size - at); i++) {
      if (d.kind === 'zero') data[at + i] = 0
      else {
        s = (s * 1103515245 + 12345) % 2147483648
        if (s % 8 === 0) data[at + i] ^= 1 << s % 7
      }
    }
    fs.writeFileSync(file, data)
  }
}

// Group commit (issue 23): writes that wait for their flush at the same
// time share one transaction and one fsync of the log, and nothing is
// acknowledged before it is durable: a crash (the fsync model of
// test/disk.ts, and kill -9 of a real process) after any interleaving of
// concurrent writes keeps every write whose flush resolved.
// The module object itself: `import * as` gives read-only bindings.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('fs') as { fdatasync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void }

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('store: group commit', () => {
  const fresh = freshDirs('scuttle-group-')

  it('concurrent flushes share one transaction and one fsync of the log; a lone flush takes one of each', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    gossip.set('warm', 0) // the reservation, fsynced at once
    await store.flush()
    const seq = (): number => (store as unknown as { seq: number }).seq
    const wal = fs.openSync(path.join(dir, 'state.db-wal'), 'r')
    const walIno = fs.fstatSync(wal).ino
    fs.closeSync(wal)
    let walSyncs = 0
    const fdatasync = realFs.fdatasync
    realFs.fdatasync = (fd, cb) => {
      if (fs.fstatSync(fd).ino === walIno) walSyncs++
      fdatasync(fd, cb)
    }
    try {
      const before = seq()
      gossip.set('lone', 1)
      await store.flush()
      assert.strictEqual(seq() - before, 1, 'a lone flush: one transaction')
      assert.strictEqual(walSyncs, 1, 'a lone flush: one fsync of the log')
      walSyncs = 0
      const from = seq()
      const acks: Promise<void>[] = []
      for (let i = 0; i < 200; i++) {
        gossip.set(`k${i}`, i)
        acks.push(store.flush())
      }
      await Promise.all(acks)
      // The first goes alone (nothing was in flight); the other 199 share the next.
      assert.ok(seq() - from <= 2, `200 concurrent flushes took ${seq() - from} transactions`)
      assert.ok(walSyncs <= 2, `200 concurrent flushes took ${walSyncs} fsyncs of the log`)
    } finally {
      realFs.fdatasync = fdatasync
    }
    await store.close()
    const again = openGossip('a', lww(), dir)
    for (let i = 0; i < 200; i++) assert.strictEqual(again.gossip.get(`k${i}`).value, i)
    await again.store.close()
  })

  type Step = { set: number } | { remote: number } | { turn: true } | { wait: true }
  const steps = fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ set: fc.nat({ max: 9 }) }) },
      { weight: 1, arbitrary: fc.record({ remote: fc.nat({ max: 9 }) }) },
      { weight: 2, arbitrary: fc.constant({ turn: true as const }) },
      { weight: 1, arbitrary: fc.constant({ wait: true as const }) },
    ),
    { minLength: 1, maxLength: 60 },
  )

  it('property: a crash after any interleaving of concurrent writes keeps every write whose flush resolved', async () => {
    await fc.assert(
      fc.asyncProperty(steps, fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), fc.integer({ min: 1, max: 20 }), async (list, cut, dropName, reserve) => {
        Clock.now = () => 0
        const dir = fresh()
        const disk = new Disk(dir)
        try {
          const opened = openGossip('a', lww(), dir, { reserve, checkpointBytes: 8192, log: () => undefined })
          const gossip = opened.gossip
          disk.settled() // a new database is checkpointed (synced) before open returns
          const peer = new Gossip('b', lww())
          const acked = new Map<string, number>()
          let last: Promise<void> = Promise.resolve()
          let value = 0
          for (const step of list) {
            if ('set' in step) {
              const key = `k${step.set}`
              gossip.set(key, ++value)
              const version = gossip.version
              last = opened.store.flush().then(() => {
                if ((acked.get(key) ?? -Infinity) < version) acked.set(key, version)
              })
            } else if ('remote' in step) {
              peer.set(`k${step.remote}`, ++value)
              const u = peer.get(`k${step.remote}`) as Update
              gossip.write({ key: u.key, value: u.value, source_id: u.source_id, version: u.version })
            } else if ('turn' in step) await turn()
            else await last
          }
          // Crash now: flushes still in flight never resolve.
          const seen = new Map(acked)
          disk.crash(opened.store, cut, dropName)
          const again = openGossip('a', lww(), dir, { log: () => undefined })
          try {
            for (const [key, version] of seen) {
              assert.ok((again.gossip.get(key).version as number) >= version, `${key}@${version} was acknowledged, then lost in a crash`)
            }
          } finally {
            await again.store.close()
          }
        } finally {
          disk.restore()
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('kill -9 of a process streaming concurrent writes: every write it acknowledged is there after the restart', async function () {
    this.timeout(60_000)
    const dir = fresh()
    const lib = path.join(__dirname, '..', '..', '..', 'lib')
    // Waves of 50 writes, each acknowledged (printed, synchronously) once its flush resolves.
    const script = `
      const fs = require('fs')
      const { base } = require(${JSON.stringify(lib)})
      const { openGossip } = require(${JSON.stringify(path.join(lib, 'node', 'sqlite'))})
      const { gossip, store } = openGossip('a', { resolve: base.resolution.lww_vs_current_vers }, ${JSON.stringify(dir)})
      let i = 0
      const wave = () => {
        for (let j = 0; j < 50; j++, i++) {
          const key = 'k' + i
          gossip.set(key, i)
          const version = gossip.version
          store.flush().then(() => fs.writeSync(1, key + ' ' + version + '\\n'))
        }
        setImmediate(wave)
      }
      fs.writeSync(1, 'ready\\n')
      wave()`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const acked = new Map<string, number>()
    let text = ''
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        text += b
        let nl: number
        while ((nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl)
          text = text.slice(nl + 1)
          const [key, version] = line.split(' ')
          if (version !== undefined) acked.set(key, Number(version))
        }
        // Killed while writes are in flight, well past the first groups.
        if (acked.size >= 2000 && child.exitCode === null) {
          child.kill('SIGKILL')
          resolve()
        }
      })
      child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`the writer exited (${code}) before it was killed`))))
    })
    await exited
    assert.ok(acked.size >= 2000)
    const again = openGossip('a', lww(), dir, { log: () => undefined })
    try {
      let lost = 0
      for (const [key, version] of acked) if ((again.gossip.get(key).version as number) < version) lost++
      assert.strictEqual(lost, 0, `${lost} of ${acked.size} acknowledged writes lost to kill -9`)
    } finally {
      await again.store.close()
    }
  })

  // The `simple-scuttle node` command: its stdin loop starts each command as
  // its line is read, and answers in order, each set only once durable.
  const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'simple-scuttle.js')
  const startCommand = (dir: string): { child: ReturnType<typeof spawn>; lines: string[]; onLine: (f: () => void) => void; ready: Promise<void> } => {
    const child = spawn(process.execPath, [BIN, 'node', '--id', 'a', '--listen', '127.0.0.1:0', '--data', dir], { stdio: ['pipe', 'pipe', 'pipe'] })
    const lines: string[] = []
    let text = ''
    let listener = (): void => undefined
    let err = ''
    child.stdin?.on('error', () => undefined)
    child.stdout?.on('data', (b: Buffer) => {
      text += b
      let nl: number
      while ((nl = text.indexOf('\n')) >= 0) {
        lines.push(text.slice(0, nl))
        text = text.slice(nl + 1)
      }
      listener()
    })
    const ready = new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (b: Buffer) => {
        err += b
        if (/listening on/.test(err)) resolve()
      })
      child.once('exit', (code) => reject(new Error(`the node exited (${code}) before listening: ${err}`)))
    })
    return { child, lines, onLine: (f) => (listener = f), ready }
  }

  it('the node command: commands sent at once are answered in order, each set and del once durable', async function () {
    this.timeout(30_000)
    const dir = fresh()
    const n = startCommand(dir)
    await n.ready
    const commands: string[] = []
    for (let i = 0; i < 300; i++) {
      commands.push(`set k${i % 50} ${i}`)
      if (i % 7 === 0) commands.push(`get k${i % 50}`)
      if (i % 11 === 0) commands.push(`del k${(i + 1) % 50}`)
      if (i % 13 === 0) commands.push('set bad {')
      if (i % 17 === 0) commands.push('status')
    }
    commands.push('state')
    const all = new Promise<void>((resolve) => n.onLine(() => n.lines.length >= commands.length && resolve()))
    n.child.stdin?.write(commands.map((c) => c + '\n').join(''))
    await all
    const last = new Map<string, unknown>()
    let version = -Infinity
    for (let i = 0; i < commands.length; i++) {
      const [name, key, value] = commands[i].split(' ')
      const a = JSON.parse(n.lines[i]) as Record<string, unknown>
      if (name === 'set' && value !== '{') {
        assert.deepStrictEqual([a.ok, a.key], [true, key], `answer ${i} (${commands[i]}): ${n.lines[i]}`)
        assert.ok((a.version as number) > version, 'versions rise in the order of the commands')
        version = a.version as number
        last.set(key, Number(value))
      } else if (name === 'set') assert.strictEqual(a.ok, false, `answer ${i}: ${n.lines[i]}`)
      else if (name === 'del') {
        assert.deepStrictEqual([a.ok, a.key], [true, key], `answer ${i}: ${n.lines[i]}`)
        version = a.version as number
        last.delete(key)
      } else if (name === 'get') assert.deepStrictEqual([a.key, a.value], [key, last.get(key) ?? null], `answer ${i}: ${n.lines[i]}`)
      else if (name === 'status') assert.strictEqual(a.keys, last.size, `answer ${i}: ${n.lines[i]}`)
      else assert.deepStrictEqual(Object.keys(a.state as object).sort(), [...last.keys()].sort())
    }
    n.child.kill('SIGTERM')
    await new Promise((resolve) => n.child.once('exit', resolve))
  })

  it('kill -9 of the node command streaming sets: every set it acknowledged is there after the restart', async function () {
    this.timeout(60_000)
    const dir = fresh()
    const n = startCommand(dir)
    await n.ready
    let sent = 0
    const acked = new Map<string, number>()
    let read = 0
    const exited = new Promise<void>((resolve) => n.child.once('close', () => resolve()))
    const timer = setInterval(() => {
      // Waves of 200 sets in one write, the node's answers read as they come.
      let wave = ''
      for (let j = 0; j < 200; j++, sent++) wave += `set k${sent} ${sent}\n`
      n.child.stdin?.write(wave)
    }, 5)
    await new Promise<void>((resolve) => {
      n.onLine(() => {
        for (; read < n.lines.length; read++) {
          const a = JSON.parse(n.lines[read]) as { ok: boolean; key: string; version: number }
          assert.strictEqual(a.ok, true, n.lines[read])
          acked.set(a.key, a.version)
        }
        // Killed while sets are in flight, well past the first groups.
        if (acked.size >= 3000 && sent > acked.size && n.child.exitCode === null) {
          clearInterval(timer)
          n.child.kill('SIGKILL')
          resolve()
        }
      })
    })
    await exited
    const again = openGossip('a', lww(), dir, { log: () => undefined })
    try {
      let lost = 0
      for (const [key, version] of acked) if ((again.gossip.get(key).version as number) < version) lost++
      assert.strictEqual(lost, 0, `${lost} of ${acked.size} acknowledged sets lost to kill -9`)
    } finally {
      await again.store.close()
    }
  })
})
