/**
 * Repair of a damaged store (lib/node/store/salvage.ts), through the
 * store's API: damage in any file is refused naming it, and repair keeps
 * what reads whole, holds back what a digest would over-claim, keeps the
 * record of deletes, and logs every loss (docs/operations.md, "Damage
 * and --repair"). The errors that refuse damage: damage.test.ts.
 */
import * as assert from 'assert'
import { spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import Database from 'better-sqlite3'
import { Gossip } from '../../../lib'
import { Store, StoreDamagedError, openGossip } from '../../../lib/node/sqlite'
import { Cluster, memory, type Persistence } from '../../../lib/testing/cluster'
import { lww } from '../../net'
import { exchange, freshDirs, settleStreams } from './stores'

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'simple-scuttle.js')

describe('node/store: salvage (repair of damage)', () => {
  const fresh = freshDirs()

  // A store holding acknowledged writes, closed cleanly or crashed with its log.
  async function filled(dir: string, crash: boolean): Promise<Map<string, unknown>> {
    const { gossip, store } = openGossip('a', lww(), dir, { reserve: 5 })
    const peer = new Gossip('b', lww())
    for (let i = 0; i < 40; i++) {
      gossip.set(`own${i}`, { i, pad: 'o'.repeat(100) })
      peer.set(`peer${i}`, { i, pad: 'p'.repeat(100) })
    }
    exchange(gossip, peer)
    await settleStreams()
    await store.flush()
    const acked = new Map(Object.values(gossip.state).map((u) => [u.key, u.value]))
    if (crash) store._abandon()
    else await store.close()
    return acked
  }

  function expectRefused(dir: string, file: RegExp): void {
    assert.throws(
      () => openGossip('a', lww(), dir),
      (e: Error) => e instanceof StoreDamagedError && file.test(e.file) && e.message.includes('repair'),
    )
  }

  // A row's checksum made wrong, as a flipped bit on disk would.
  function damageRow(dir: string, key: string): void {
    const db = new Database(path.join(dir, 'state.db'))
    assert.strictEqual(db.prepare('UPDATE mappings SET crc = crc + 1 WHERE key = ?').run(key).changes, 1)
    db.close()
  }

  // A store holding a delete ('gone'), 'kept', and 'hurt' with its row damaged.
  async function deletedThenHurt(dir: string, options: { view?: boolean } = {}): Promise<void> {
    const first = openGossip('a', lww(), dir, options)
    first.gossip.set('gone', 1)
    first.gossip.delete('gone')
    first.gossip.set('kept', 2)
    first.gossip.set('hurt', 3)
    await first.store.close()
    damageRow(dir, 'hurt')
  }

  function repaired(dir: string): { gossip: Gossip; store: Store; lines: string[] } {
    const lines: string[] = []
    const { gossip, store } = openGossip('a', lww(), dir, { repair: true, log: (l) => lines.push(l) })
    assert.ok(fs.readdirSync(dir).some((n) => n.startsWith('damaged-')), 'a copy was kept aside')
    return { gossip, store, lines }
  }

  it('a flipped byte in a row: refused; repair drops the row, holds back what the digest would over-claim, and logs it', async () => {
    const dir = fresh()
    const acked = await filled(dir, false)
    const db = new Database(path.join(dir, 'state.db'))
    db.prepare("UPDATE mappings SET value = '{\"i\":7,\"pad\":\"tampered\"}' WHERE key = 'peer7'").run()
    db.close()
    expectRefused(dir, /state\.db$/)
    const { gossip, store, lines } = repaired(dir)
    assert.ok(lines.some((l) => l.includes('"peer7"') && l.includes('"b"')), lines.join('\n'))
    assert.ok(lines.some((l) => /holds \d+ mapping\(s\) of other nodes above a lost version of theirs out of its digest/.test(l)), lines.join('\n'))
    assert.strictEqual(gossip.get('peer7').version, -Infinity, 'the damaged row is not served')
    for (const [k, v] of acked) if (k.startsWith('own')) assert.deepStrictEqual(gossip.get(k).value, v)
    // The lost mappings come back from a peer that holds them.
    const peer = new Gossip('b', lww())
    for (let i = 0; i < 40; i++) peer.set(`peer${i}`, { i, pad: 'p'.repeat(100) })
    exchange(gossip, peer)
    await settleStreams()
    assert.deepStrictEqual(gossip.get('peer7').value, { i: 7, pad: 'p'.repeat(100) })
    assert.deepStrictEqual(store.check(), [])
    await store.close()
  })

  it('a repair keeps a delete a delete (it came back as a live null)', async () => {
    const dir = fresh()
    await deletedThenHurt(dir)
    expectRefused(dir, /state\.db$/)
    const { gossip, store } = repaired(dir)
    assert.strictEqual(gossip.get('gone').version, -Infinity, JSON.stringify(gossip.get('gone')))
    assert.ok(!Object.keys(gossip.state).includes('gone'))
    assert.strictEqual(gossip.get('kept').value, 2)
    await store.close()
    // And it stays a delete when the repaired store is opened again.
    const again = openGossip('a', lww(), dir)
    assert.strictEqual(again.gossip.get('gone').version, -Infinity)
    await again.store.close()
  })

  it('a repair that cannot read the record of collected deletes says so', async () => {
    const dir = fresh()
    const first = openGossip('a', lww(), dir)
    first.gossip.set('kept', 1)
    first.gossip.set('hurt', 2)
    await first.store.close()
    const db = new Database(path.join(dir, 'state.db'))
    assert.strictEqual(db.prepare('UPDATE deletes SET crc = crc + 1').run().changes, 1)
    db.prepare("UPDATE mappings SET crc = crc + 1 WHERE key = 'hurt'").run()
    db.close()
    const { gossip, store, lines } = repaired(dir)
    assert.ok(lines.some((l) => /record of collected deletes is damaged \(its checksum does not match\): a peer behind those deletes could bring deleted keys back/.test(l)), lines.join('\n'))
    assert.strictEqual(gossip.get('kept').value, 1)
    await store.close()
  })

  it('a damaged row under the view (view: true) is repaired when told to, not refused', async () => {
    const dir = fresh()
    await deletedThenHurt(dir, { view: true })
    const lines: string[] = []
    const { gossip, store } = openGossip('a', lww(), dir, { view: true, repair: true, log: (l) => lines.push(l) })
    assert.ok(lines.some((l) => l.includes('lost the mapping of "hurt"')), lines.join('\n'))
    assert.strictEqual(gossip.get('gone').version, -Infinity)
    assert.strictEqual(gossip.get('kept').value, 2)
    assert.deepStrictEqual(Object.keys(gossip.state), ['kept'])
    await store.close()
  })

  it('a repair keeps the record of collected deletes: a stale peer does not bring a collected delete back', async () => {
    const dir = fresh()
    const GRACE = 60_000
    let store: Store | null = null
    const lines: string[] = []
    let before: unknown
    // b on disk; its restart damages a's oldest row and repairs.
    const disk: Persistence = {
      name: 'sqlite',
      keeps: 'everything',
      open: async (id, cfg) => {
        const opened = openGossip(id, cfg, dir, { fsync: false, repair: true, log: (l) => lines.push(l) })
        store = opened.store
        return opened.gossip
      },
      reopen: async (node, cfg) => {
        await (store as Store).close()
        const db = new Database(path.join(dir, 'state.db'))
        before = db.prepare('SELECT record FROM deletes').pluck().get()
        db.prepare("UPDATE mappings SET crc = crc + 1 WHERE key = 'kept'").run()
        db.close()
        return disk.open(node.id, cfg)
      },
      wipe: async () => undefined,
    }
    const c = await Cluster.start({ ids: ['a', 'b', 'c'], config: () => ({ ...lww(), tombstone_grace: GRACE }), persistence: (id) => (id === 'b' ? disk : memory) })
    try {
      const a = c.node('a')
      a.set('kept', 1)
      a.set('mid', 5)
      a.set('gone', 2)
      for (let i = 0; i < 3; i++) await c.round()
      // c is away, and keeps 'gone' as it was.
      c.partition(new Set(['c']))
      a.delete('gone')
      a.set('later', 3)
      for (let i = 0; i < 4; i++) {
        c.advance(GRACE / 2)
        await c.round()
      }
      assert.strictEqual(c.node('b').history.mapping('a', 'gone'), undefined, 'b collected the delete')
      const b = await c.restart('b', 'clean')
      assert.ok(lines.some((l) => l.includes('lost the mapping of "kept"')), lines.join('\n'))
      // The record as it was, with a's max held back below the lost row.
      const db = new Database(path.join(dir, 'state.db'), { readonly: true })
      const record = db.prepare('SELECT record FROM deletes').pluck().get() as string | undefined
      db.close()
      const was = JSON.parse(before as string) as Record<string, unknown>
      assert.ok(was.collected !== undefined && was.horizon !== undefined, before as string)
      assert.deepStrictEqual(JSON.parse(record ?? '{}'), { ...was, maxes: { a: (a.get('kept').version as number) - 1 } })
      // b's digest names a below the damaged row: the stale c answers
      // with 'gone' as it was before the delete.
      c.heal()
      await c.exchange('c', 'b')
      await c.exchange('b', 'c')
      await c.exchange('c', 'b')
      assert.strictEqual(b.get('gone').version, -Infinity, JSON.stringify(b.get('gone')))
      // What b still held above the lost row comes back though it is
      // below the horizon; the lost row there is refused, and said so.
      for (let i = 0; i < 6; i++) await c.round()
      assert.strictEqual(b.get('mid').value, 5)
      assert.strictEqual(b.get('later').value, 3)
      assert.strictEqual(b.get('gone').version, -Infinity)
      assert.ok(lines.some((l) => /1 lost mapping\(s\) at or below the horizon of collected deletes/.test(l)), lines.join('\n'))
    } finally {
      for (const g of c.nodes.values()) g.destroy()
      c.restoreClock()
      await (store as Store | null)?.close()
    }
  })

  it('a damaged row of its own: repair asks peers for its own writes from below it', async () => {
    const dir = fresh()
    await filled(dir, false)
    const db = new Database(path.join(dir, 'state.db'))
    db.prepare("UPDATE mappings SET crc = crc + 1 WHERE key = 'own3'").run()
    db.close()
    expectRefused(dir, /state\.db$/)
    const { gossip, store, lines } = repaired(dir)
    assert.ok(lines.some((l) => l.includes('"own3"')))
    assert.ok(lines.some((l) => /asks peers for its own writes above version/.test(l)))
    const peer = new Gossip('b', lww())
    const holder = openGossip('a-copy', lww(), fresh())
    void holder
    // A peer that holds a's writes gives back the lost one.
    const witness = new Gossip('c', lww())
    const fromDisk = new Database(fs.readdirSync(dir).filter((n) => n.startsWith('damaged-')).map((n) => path.join(dir, n, 'state.db'))[0], { readonly: true })
    for (const r of fromDisk.prepare("SELECT key, value, source_id, version FROM mappings WHERE source_id = 'a'").all() as { key: string; value: string; source_id: string; version: number }[]) {
      witness.write({ key: r.key, value: r.key === 'own3' ? { i: 3, pad: 'o'.repeat(100) } : JSON.parse(r.value), source_id: r.source_id, version: r.version })
    }
    fromDisk.close()
    await settleStreams()
    exchange(gossip, witness)
    await settleStreams()
    assert.deepStrictEqual(gossip.get('own3').value, { i: 3, pad: 'o'.repeat(100) })
    void peer
    await holder.store.close()
    await store.close()
  })

  it('zero-filled and truncated database pages: refused naming state.db; repair keeps what it can read and logs the rest', async () => {
    for (const kind of ['zero', 'truncate'] as const) {
      const dir = fresh()
      await filled(dir, false)
      const file = path.join(dir, 'state.db')
      const size = fs.statSync(file).size
      if (kind === 'zero') {
        const fd = fs.openSync(file, 'r+')
        fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, size - 2 * 4096)
        fs.closeSync(fd)
      } else {
        fs.truncateSync(file, size - 4096 - 100)
      }
      expectRefused(dir, /state\.db$/)
      const { gossip, store, lines } = repaired(dir)
      assert.ok(lines.some((l) => /lost|could not be read/.test(l)), `${kind}: ${lines.join('\n')}`)
      assert.deepStrictEqual(store.check(), [])
      gossip.set('after', 1)
      await store.close()
    }
  })

  it('a deleted or emptied database with its directory intact: refused; repair starts empty and asks for everything', async () => {
    for (const kind of ['delete', 'empty'] as const) {
      const dir = fresh()
      await filled(dir, false)
      if (kind === 'delete') fs.rmSync(path.join(dir, 'state.db'))
      else fs.writeFileSync(path.join(dir, 'state.db'), '')
      expectRefused(dir, /state\.db$/)
      const { gossip, store, lines } = repaired(dir)
      assert.ok(lines.some((l) => /missing|lost|meta/.test(l)), `${kind}: ${lines.join('\n')}`)
      const peer = new Gossip('b', lww())
      peer.set('x', 1)
      exchange(gossip, peer)
      await settleStreams()
      assert.strictEqual(gossip.get('x').value, 1)
      await store.close()
    }
  })

  it('a flipped byte in the middle of the log (later commits whole): refused naming the log; repair keeps the commits before it', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir, { reserve: 1000, checkpointBytes: 1 << 30 })
    for (let i = 0; i < 30; i++) {
      gossip.set(`k${i}`, { i, pad: 'x'.repeat(300) })
      await store.flush()
    }
    store._abandon()
    const wal = path.join(dir, 'state.db-wal')
    const fd = fs.openSync(wal, 'r+')
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, 32 + 24 + 100)
    b[0] ^= 0x10
    fs.writeSync(fd, b, 0, 1, 32 + 24 + 100)
    fs.closeSync(fd)
    expectRefused(dir, /state\.db-wal$/)
    const lines: string[] = []
    const again = openGossip('a', lww(), dir, { repair: true, log: (l) => lines.push(l) })
    assert.ok(lines.some((l) => /frame 1 .*damaged/.test(l) && /dropped \d+ later commit/.test(l)), lines.join('\n'))
    assert.deepStrictEqual(again.store.check(), [])
    await again.store.close()
  })

  it('a log cut back or deleted after acknowledgement: refused (the acked witness); repair logs the lost transactions', async () => {
    for (const kind of ['truncate', 'delete'] as const) {
      const dir = fresh()
      const { gossip, store } = openGossip('a', lww(), dir, { reserve: 1000, checkpointBytes: 1 << 30 })
      for (let i = 0; i < 10; i++) {
        gossip.set(`k${i}`, i)
        await store.flush()
      }
      store._abandon()
      const wal = path.join(dir, 'state.db-wal')
      const frame = 24 + 4096
      if (kind === 'truncate') fs.truncateSync(wal, 32 + 3 * frame)
      else fs.rmSync(wal)
      expectRefused(dir, /state\.db-wal$/)
      const lines: string[] = []
      const again = openGossip('a', lww(), dir, { repair: true, log: (l) => lines.push(l) })
      assert.ok(lines.some((l) => /transactions \d+ to \d+ were acknowledged/.test(l)), lines.join('\n'))
      await again.store.close()
      // Repaired once: the next open is clean.
      const third = openGossip('a', lww(), dir)
      await third.store.close()
    }
  })

  it('a torn tail of the log (a crash mid-write) opens with a logged account, nothing acknowledged lost', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir, { reserve: 1000, checkpointBytes: 1 << 30 })
    gossip.set('acked', 1)
    await store.flush()
    gossip.set('unacked', 2)
    await settleStreams() // committed, not fsynced
    store._abandon()
    const wal = path.join(dir, 'state.db-wal')
    fs.truncateSync(wal, fs.statSync(wal).size - 1000)
    const lines: string[] = []
    const again = openGossip('a', lww(), dir, { log: (l) => lines.push(l) })
    assert.strictEqual(again.gossip.get('acked').value, 1)
    assert.ok(lines.some((l) => /ignoring its last \d+ bytes/.test(l)), lines.join('\n'))
    await again.store.close()
  })

  it('a damaged or missing witness or lock: logged, set aside, made anew; nothing lost', async () => {
    const dir = fresh()
    const acked = await filled(dir, true)
    fs.writeFileSync(path.join(dir, 'acked'), 'garbage garbage!')
    fs.writeFileSync(path.join(dir, 'lock.db'), 'this is not a database, it is damage '.repeat(200))
    const lines: string[] = []
    const again = openGossip('a', lww(), dir, { log: (l) => lines.push(l) })
    for (const [k, v] of acked) assert.deepStrictEqual(again.gossip.get(k).value, v)
    assert.ok(lines.some((l) => /acked is damaged/.test(l)), lines.join('\n'))
    assert.ok(lines.some((l) => /lock\.db was damaged .* moved to .*damaged-/.test(l)), lines.join('\n'))
    await again.store.close()
    fs.rmSync(path.join(dir, 'acked'))
    const lines2: string[] = []
    const third = openGossip('a', lww(), dir, { log: (l) => lines2.push(l) })
    third.gossip.set('more', 1)
    await third.store.close()
    assert.ok(fs.existsSync(path.join(dir, 'acked')))
  })

  it('simple-scuttle node refuses a damaged --data directory naming the file; --repair mends it with a logged account', async function () {
    this.timeout(30_000)
    const dir = fresh()
    await filled(dir, false)
    const db = new Database(path.join(dir, 'state.db'))
    db.prepare("UPDATE mappings SET crc = crc + 1 WHERE key = 'peer3'").run()
    db.close()
    const refused = spawnSync(process.execPath, [BIN, 'node', '--id', 'a', '--data', dir], { encoding: 'utf8', input: '', timeout: 20_000 })
    assert.notStrictEqual(refused.status, 0)
    assert.match(refused.stderr, /state\.db is damaged: row \("peer3", "b"\): its checksum does not match.*--repair/)
    const child = spawn(process.execPath, [BIN, 'node', '--id', 'a', '--data', dir, '--repair'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', (b: Buffer) => (err += String(b)))
    const answer = await new Promise<string>((resolve) => {
      let out = ''
      child.stdout.on('data', (b: Buffer) => {
        out += String(b)
        if (out.includes('\n')) resolve(out)
      })
      child.stdin.write('get own3\n')
    })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
    assert.strictEqual(JSON.parse(answer).value.i, 3)
    assert.match(err, /\[a\] store: repair: lost the mapping of "peer3" by "b"/)
    assert.ok(fs.readdirSync(dir).some((n) => n.startsWith('damaged-')))
  })

  it('check(): finds a flipped value, a doubled resolved entry, and a damaged page', async () => {
    const dir = fresh()
    const { gossip, store } = openGossip('a', lww(), dir)
    gossip.set('x', 1)
    gossip.set('y', 2)
    await store.flush()
    assert.deepStrictEqual(store.check(), [])
    const db = new Database(path.join(dir, 'state.db'))
    db.prepare("UPDATE mappings SET value = '9' WHERE key = 'x'").run()
    db.prepare("INSERT INTO mappings VALUES ('y', 'z', 1, '3', NULL, 1, 0)").run()
    db.close()
    const problems = store.check()
    assert.ok(problems.some((p) => /"x".*checksum/.test(p)), problems.join('\n'))
    assert.ok(problems.some((p) => /"y" has more than one resolved entry/.test(p)), problems.join('\n'))
    assert.throws(() => store.get('x'), StoreDamagedError)
    await store.close()
  })
})
