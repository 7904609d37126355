/**
 * Faults across processes, on 127.0.0.1 only: five `simple-scuttle node`
 * processes in a ring, each with a data directory, writes on all of them;
 * one is killed with SIGKILL and restarted from its data directory, one is
 * partitioned (its connections cut, and refused, by the proxies that carry
 * its links) and healed. All five converge, with every acknowledged write
 * (or a later write of the same key) in place. Bounded in time; every
 * process is stopped with SIGTERM (and must exit 0) or killed in `after`.
 */
import * as assert from 'assert'
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as fs from 'fs'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import { generateKeyPair } from '../../lib/node'
import { Attacker } from '../adversarial/harness'

const BIN = path.join(__dirname, '..', '..', 'bin', 'simple-scuttle.js')

async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve) => {
          const s = net.createServer()
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  return ports
}

/** A node process, driven through its stdin command protocol. */
class NodeProc {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<number | null>
  stderr = ''
  private buffered = ''
  private waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }[] = []

  constructor(readonly args: string[]) {
    this.child = spawn(process.execPath, [BIN, 'node', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stderr.on('data', (b: Buffer) => {
      this.stderr += String(b)
    })
    this.child.stdout.on('data', (b: Buffer) => {
      this.buffered += String(b)
      for (let nl = this.buffered.indexOf('\n'); nl !== -1; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl)
        this.buffered = this.buffered.slice(nl + 1)
        this.waiting.shift()?.resolve(JSON.parse(line))
      }
    })
    this.child.stdin.on('error', () => undefined)
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => {
        for (const w of this.waiting.splice(0)) w.reject(new Error(`node exited (${code}) before answering`))
        resolve(code)
      }),
    )
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Send one command; resolves with its answer line. */
  cmd(line: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      this.child.stdin.write(`${line}\n`)
    })
  }
}

/** A TCP forwarder carrying one ring link, which can cut and refuse connections. */
class Proxy {
  readonly server: net.Server
  cut = false
  private readonly open = new Set<net.Socket>()

  constructor(readonly port: number, readonly target: number) {
    this.server = net.createServer((client) => {
      if (this.cut) {
        client.destroy()
        return
      }
      const upstream = net.connect(this.target, '127.0.0.1')
      for (const s of [client, upstream]) {
        this.open.add(s)
        s.on('error', () => undefined)
        s.once('close', () => {
          this.open.delete(s)
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream).pipe(client)
    })
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.port, '127.0.0.1', () => resolve()))
  }

  partition(): void {
    this.cut = true
    for (const s of this.open) s.destroy()
  }

  heal(): void {
    this.cut = false
  }

  close(): Promise<void> {
    this.partition()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

describe('faults across processes (loopback)', function () {
  this.timeout(45000)
  const N = 5
  const procs: NodeProc[] = []
  const proxies: Proxy[] = []
  let root = ''

  after(async () => {
    for (const p of procs) if (p.alive) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    await Promise.all(proxies.map((p) => p.close()))
    if (root !== '') fs.rmSync(root, { recursive: true, force: true })
  })

  it('a ring of five survives SIGKILL + restart and a healed partition: all converge, no acknowledged write lost', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-ring-'))
    const ports = await freePorts(2 * N)
    const nodePort = ports.slice(0, N)
    const proxyPort = ports.slice(N)
    // Link i carries node i -> node i+1 through proxy i.
    for (let i = 0; i < N; i++) proxies.push(new Proxy(proxyPort[i], nodePort[(i + 1) % N]))
    await Promise.all(proxies.map((p) => p.listen()))
    const argsOf = (i: number) => [
      '--id',
      `n${i}`,
      '--listen',
      `127.0.0.1:${nodePort[i]}`,
      '--connect',
      `127.0.0.1:${proxyPort[i]}`,
      '--data',
      path.join(root, `n${i}`),
      '--interval',
      '40',
      '--mtu',
      '20',
    ]
    const live: NodeProc[] = []
    for (let i = 0; i < N; i++) live.push(new NodeProc(argsOf(i)))
    procs.push(...live)

    // Acknowledged writes: key -> the version of its last acknowledged write.
    // (Versions of two sources may tie: the higher source id wins, as in resolve.)
    const acked = new Map<string, { version: number; value: unknown; source: string }>()
    const versions: number[][] = Array.from({ length: N }, () => [])
    const write = async (i: number, key: string, value: unknown) => {
      const answer = await live[i].cmd(`set ${key} ${JSON.stringify(value)}`)
      assert.strictEqual(answer.ok, true, JSON.stringify(answer))
      versions[i].push(answer.version as number)
      const prev = acked.get(key)
      const version = answer.version as number
      const source = `n${i}`
      if (prev === undefined || version > prev.version || (version === prev.version && source > prev.source)) {
        acked.set(key, { version, value, source })
      }
    }
    const round = async (tag: string, nodes: number[]) => {
      await Promise.all(
        nodes.map(async (i) => {
          for (let k = 0; k < 4; k++) await write(i, `n${i}/${tag}${k}`, { tag, k })
          await write(i, 'shared', `${tag} by n${i}`)
        }),
      )
    }
    const states = async (nodes: NodeProc[]) => Promise.all(nodes.map(async (p) => (await p.cmd('state')).state as Record<string, { value: unknown; version: number }>))

    await until(async () => (await Promise.all(live.map((p) => p.cmd('peers')))).every((a) => (a.peers as unknown[]).length === 2), 15000, 'the ring to connect')
    await round('a', [0, 1, 2, 3, 4])

    // SIGKILL n2 right after its writes were acknowledged, write elsewhere, restart it.
    live[2].child.kill('SIGKILL')
    await live[2].exited
    const before = Math.max(...versions[2])
    versions[2] = []
    await round('b', [0, 1, 3, 4])
    live[2] = new NodeProc(argsOf(2))
    procs.push(live[2])
    const restored = await live[2].cmd('state')
    for (let k = 0; k < 4; k++) {
      assert.ok(`n2/a${k}` in (restored.state as object), `n2 lost its acknowledged write n2/a${k} in the crash`)
    }

    // Partition n4: cut both links that carry it (3 -> 4 and 4 -> 0).
    proxies[3].partition()
    proxies[4].partition()
    await until(async () => ((await live[4].cmd('peers')).peers as unknown[]).length === 0, 10000, 'n4 to be cut off')
    await round('c', [0, 1, 2, 3, 4])
    const cut = (await states([live[4]]))[0]
    assert.ok(!('n0/c0' in cut), 'n4 was really partitioned')
    assert.ok(Math.min(...versions[2]) > before, 'the restarted n2 reused a version')
    proxies[3].heal()
    proxies[4].heal()
    await round('d', [0, 2, 4])

    // Everyone converges to the same state, holding every acknowledged write.
    let last: Record<string, { value: unknown; version: number }>[] = []
    await until(
      async () => {
        last = await states(live)
        const canon = last.map((s) => JSON.stringify(Object.keys(s).sort().map((k) => [k, s[k]])))
        return new Set(canon).size === 1 && Object.keys(last[0]).length === acked.size
      },
      20000,
      'all five to converge',
    )
    for (const [key, { version, value }] of acked) {
      const held = last[0][key]
      assert.ok(held !== undefined && held.version >= version, `acknowledged ${key}@${version} lost`)
      if (held.version === version) assert.deepStrictEqual(held.value, value)
    }
    const get = await live[1].cmd('get shared')
    assert.strictEqual(get.version, acked.get('shared')?.version)
    assert.deepStrictEqual(await live[1].cmd('get missing'), { key: 'missing', value: null, version: null })
    assert.strictEqual((await live[1].cmd('bogus')).ok, false)
    assert.strictEqual((await live[1].cmd('set k {not json')).ok, false)
    assert.strictEqual((await live[1].cmd('set __proto__ 1')).ok, false)

    // SIGTERM flushes and exits 0.
    for (const p of live) p.child.kill('SIGTERM')
    const codes = await Promise.all(live.map((p) => p.exited))
    assert.deepStrictEqual(codes, [0, 0, 0, 0, 0], live.map((p) => p.stderr).join('\n'))
  })

  it('--keys: signed updates relay between processes, and a forgery is refused with the peer cut off', async () => {
    const ports = await freePorts(2)
    const keys = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-keys-'))
    try {
      for (const id of ['a', 'b']) {
        const pair = generateKeyPair()
        fs.writeFileSync(path.join(keys, `${id}.pub.pem`), pair.publicKey)
        fs.writeFileSync(path.join(keys, `${id}.key.pem`), pair.privateKey)
      }
      const common = ['--keys', keys, '--interval', '30']
      const a = new NodeProc(['--id', 'a', '--listen', `127.0.0.1:${ports[0]}`, ...common])
      const b = new NodeProc(['--id', 'b', '--listen', `127.0.0.1:${ports[1]}`, '--connect', `127.0.0.1:${ports[0]}`, ...common])
      procs.push(a, b)
      assert.strictEqual((await a.cmd('set x "signed"')).ok, true)
      await until(async () => (await b.cmd('get x')).value === 'signed', 10000, 'b to accept a’s signed write')
      // An insider: a member with a key of its own (a keyless peer is refused at its hello).
      const insider = generateKeyPair()
      const mallory = await Attacker.open(ports[1], null)
      // Its key is not among b's: refused at the hello, by code.
      assert.strictEqual((await mallory.authenticate('mallory', insider.privateKey)).refused, 'bad_proof')
      await mallory.closed
      // With its key in the directory b trusts (read at b's start: b restarts).
      fs.writeFileSync(path.join(keys, 'mallory.pub.pem'), insider.publicKey)
      b.child.kill('SIGTERM')
      assert.strictEqual(await b.exited, 0)
      const b2 = new NodeProc(['--id', 'b', '--listen', `127.0.0.1:${ports[1]}`, '--connect', `127.0.0.1:${ports[0]}`, ...common])
      procs.push(b2)
      await until(async () => (await b2.cmd('get x')).value === 'signed', 10000, 'b to restart with x')
      const m2 = await Attacker.open(ports[1], null)
      assert.strictEqual((await m2.authenticate('mallory', insider.privateKey)).open, true)
      const held = (await b2.cmd('get x')).version as number
      const forged = { key: 'x', value: 'forged', source_id: 'a', version: held + 1000, signature: 'A'.repeat(86) + '==' }
      await m2.send(`${JSON.stringify(forged)}\n`)
      await m2.closed
      assert.match(b2.stderr, /closing connection to mallory: sent invalid input: signature of a missing or invalid/)
      assert.strictEqual((await b2.cmd('get x')).value, 'signed')
      a.child.kill('SIGTERM')
      b2.child.kill('SIGTERM')
      assert.deepStrictEqual(await Promise.all([a.exited, b2.exited]), [0, 0])
    } finally {
      fs.rmSync(keys, { recursive: true, force: true })
    }
  })

  it('the command line refuses bad options with its usage', async () => {
    for (const args of [['--id'], ['--mtu', '0', '--id', 'x'], ['--listen', 'nowhere'], ['--what', 'x'], []]) {
      const p = new NodeProc(args)
      procs.push(p)
      assert.notStrictEqual(await p.exited, 0)
      assert.match(p.stderr, /--help|HOST:PORT/)
    }
  })
})
