/**
 * Group commit (issue 23): writes that wait for their flush at the same
 * time share one transaction and one fsync of the log, and nothing is
 * acknowledged before it is durable: a crash (the fsync model of
 * test/disk.ts, and kill -9 of a real process) after any interleaving of
 * concurrent writes keeps every write whose flush resolved.
 */
import * as assert from 'assert'
import { spawn } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import fc from 'fast-check'
import { Clock, Gossip } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import type { Update } from '../lib'
import { Disk } from './disk'
import { lww } from './net'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 40)

// The module object itself: `import * as` gives read-only bindings.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('fs') as { fdatasync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void }

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('store: group commit', () => {
  const dirs: string[] = []
  const fresh = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-group-'))
    dirs.push(d)
    return d
  }
  const now = Clock.now
  afterEach(() => {
    Clock.now = now
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })

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
    const lib = path.join(__dirname, '..', 'lib')
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
  const BIN = path.join(__dirname, '..', 'bin', 'simple-scuttle.js')
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
