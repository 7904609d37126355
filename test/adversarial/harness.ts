/**
 * The adversarial suite's harness: real `simple-scuttle node` processes on
 * 127.0.0.1 driven through their stdin commands, a raw TCP attacker that
 * speaks (and abuses) the hello + NDJSON protocol, polling with deadlines,
 * peak-RSS sampling from /proc/<pid>/status, and figures written to
 * test/artifacts/adversarial.json for the report.
 *
 * Every process, socket and directory a test makes is registered with a
 * {@link Cluster}, whose `cleanup()` (run from `afterEach` by
 * {@link adversarialHooks}) kills and removes them even when the test failed.
 */
import * as assert from 'assert'
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as fs from 'fs'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import * as crypto from 'crypto'
import { generateKeyPair } from '../../lib/node'
import { proofBytes } from '../../lib/wire/session'

/**
 * Ids an attacker uses that `Cluster.keys` also gives a key pair: under
 * `--keys` a keyless peer is refused at its hello (see operator.test.ts),
 * so the attackers of signed clusters are insiders, members with keys of
 * their own, which is the stronger threat.
 */
export const INSIDERS = ['mallory', 'mallory2', 'spy', 'forger', 'replayer']

/** The repository root, found from dist/test/adversarial (compiled) or test/adversarial. */
export const ROOT = (() => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json')
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'simple-scuttle') return dir
    if (path.dirname(dir) === dir) throw new Error(`no simple-scuttle package.json above ${__dirname}`)
  }
})()
export const BIN = path.join(ROOT, 'dist', 'bin', 'simple-scuttle.js')
export const ARTIFACT = path.join(ROOT, 'test', 'artifacts', 'adversarial.json')

/** ADVERSARIAL_FULL=1 runs the heavy variants (10,000 sources, 60 s of load, ...). */
export const FULL = process.env.ADVERSARIAL_FULL === '1'

/** The protocol's highest version (lib/shape.ts), restated so the suite states it independently. */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER - 2 ** 32

export const HELLO = (id: string): string => `${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, id })}\n`
export const DONE = '{"digest":true,"done":true,"protocol":2}\n'
export const REPLY = '{"digest":true,"done":true,"reply":true,"protocol":2}\n'

export const line = (o: unknown): string => `${JSON.stringify(o)}\n`

/** Polls `check` every `every` ms until it holds; fails with `what` after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms: number, what: string, every = 25): Promise<number> {
  const start = Date.now()
  const end = start + ms
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}

/** Waits `ms`: only to pace what an attacker or a load generator sends, never to wait for a condition. */
export const pace = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves after one turn of the event loop (not a stand-in for a condition: used to yield in loops). */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Peak and current resident set of a process, in kB, from /proc (null once it is gone). */
export function memoryOf(pid: number): { hwm: number; rss: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    if (hwm === null || rss === null) return null
    return { hwm: Number(hwm[1]), rss: Number(rss[1]) }
  } catch {
    return null
  }
}

/** Bytes a process has written through write(2) and friends, sockets included (wchar of /proc/<pid>/io). */
export function bytesWritten(pid: number): number {
  const m = /wchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))
  if (m === null) throw new Error(`no wchar in /proc/${pid}/io`)
  return Number(m[1])
}

/** A `simple-scuttle node` process, driven through its stdin command protocol. */
export class NodeProc {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<number | null>
  stderr = ''
  /** Highest VmHWM seen, kB. */
  peakKB = 0
  port = 0
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  private buffered = ''
  private waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = []
  private readonly sampler: NodeJS.Timeout

  constructor(
    readonly id: string,
    readonly args: string[],
  ) {
    this.child = spawn(process.execPath, [BIN, 'node', '--id', id, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stderr.on('data', (b: Buffer) => {
      // Keep the head and the tail: a node that logs in a loop must not exhaust the test's memory.
      this.stderr += String(b)
      if (this.stderr.length > 4_000_000) this.stderr = this.stderr.slice(0, 1_000_000) + '\n…\n' + this.stderr.slice(-2_000_000)
    })
    this.child.stdout.on('data', (b: Buffer) => {
      this.buffered += String(b)
      for (let nl = this.buffered.indexOf('\n'); nl !== -1; nl = this.buffered.indexOf('\n')) {
        const text = this.buffered.slice(0, nl)
        this.buffered = this.buffered.slice(nl + 1)
        const w = this.waiting.shift()
        if (w === undefined) continue
        clearTimeout(w.timer)
        try {
          w.resolve(JSON.parse(text))
        } catch {
          w.reject(new Error(`node ${id} answered with a line that is not JSON: ${text.slice(0, 200)}`))
        }
      }
    })
    this.child.stdin.on('error', () => undefined)
    this.sampler = setInterval(() => this.sample(), 100)
    this.sampler.unref()
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        clearInterval(this.sampler)
        this.exitCode = code
        this.exitSignal = signal
        for (const w of this.waiting.splice(0)) {
          clearTimeout(w.timer)
          w.reject(new Error(`node ${id} exited (code ${code}, signal ${signal}) before answering; stderr tail:\n${this.tail()}`))
        }
        resolve(code)
      }),
    )
  }

  /** Resolves with the port once the node logs that it listens. */
  async ready(ms = 10_000): Promise<number> {
    await until(
      () => {
        if (!this.alive) throw new Error(`node ${this.id} exited before listening (code ${this.exitCode}); stderr:\n${this.tail()}`)
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(this.stderr)
        if (m !== null) this.port = Number(m[1])
        return m !== null
      },
      ms,
      `node ${this.id} to listen`,
      10,
    )
    return this.port
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  sample(): void {
    const m = memoryOf(this.child.pid as number)
    if (m !== null && m.hwm > this.peakKB) this.peakKB = m.hwm
  }

  /** Send one command; resolves with its answer line, rejects after `ms` or if the node dies. */
  cmd(text: string, ms = 10_000): Promise<Record<string, unknown>> {
    if (!this.alive) return Promise.reject(new Error(`node ${this.id} is not running (code ${this.exitCode}, signal ${this.exitSignal}); stderr tail:\n${this.tail()}`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`node ${this.id} did not answer "${text.slice(0, 60)}" within ${ms} ms; stderr tail:\n${this.tail()}`))
      }, ms)
      this.waiting.push({ resolve, reject, timer })
      this.child.stdin.write(`${text}\n`)
    })
  }

  async set(key: string, value: unknown, ms?: number): Promise<Record<string, unknown>> {
    return this.cmd(`set ${key} ${JSON.stringify(value)}`, ms)
  }

  /** `set` that must be acknowledged; returns the version. */
  async write(key: string, value: unknown): Promise<number> {
    const a = await this.set(key, value)
    assert.strictEqual(a.ok, true, `set ${key} on ${this.id} was refused: ${JSON.stringify(a).slice(0, 300)}`)
    return a.version as number
  }

  async get(key: string, ms?: number): Promise<{ key: string; value: unknown; version: number | null }> {
    return (await this.cmd(`get ${key}`, ms)) as { key: string; value: unknown; version: number | null }
  }

  async state(ms?: number): Promise<Record<string, { value: unknown; version: number; source_id: string }>> {
    return (await this.cmd('state', ms)).state as Record<string, { value: unknown; version: number; source_id: string }>
  }

  async peers(ms?: number): Promise<{ id: string; address: string; direction: string }[]> {
    return (await this.cmd('peers', ms)).peers as { id: string; address: string; direction: string }[]
  }

  /** Lines of its log matching `re`. */
  count(re: RegExp): number {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`)
    return (this.stderr.match(g) ?? []).length
  }

  tail(n = 2000): string {
    return this.stderr.slice(-n)
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.sample()
    if (this.alive) this.child.kill('SIGTERM')
    return this.exited
  }

  kill(): void {
    this.sample()
    if (this.alive) this.child.kill('SIGKILL')
  }
}

/** One parsed line the node sent an attacker, or the raw text if it was not JSON. */
export type Received = Record<string, unknown>

/**
 * A raw TCP peer: connects, optionally says hello, sends whatever it is
 * told (objects as NDJSON lines, strings or bytes as they are), and counts
 * what comes back.
 */
export class Attacker {
  readonly socket: net.Socket
  readonly closed: Promise<void>
  isClosed = false
  /** Bytes the node sent us / we sent the node. */
  bytesIn = 0
  bytesOut = 0
  /** Lines received, and how many were digest ends, reply ends, updates. */
  lines = 0
  dones = 0
  replies = 0
  updates = 0
  /** The node's hello, once read, and its second line (accept or refused), for a session. */
  nodeHello: Received | null = null
  accepted: Received | null = null
  verdict: Received | null = null
  /** Received messages (kept only while `keep` is true, and at most 100,000). */
  readonly messages: Received[] = []
  keep = true
  private text = ''
  private readonly connected: Promise<void>

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.on('error', () => undefined)
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.isClosed = true
        resolve()
      }),
    )
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve())
      this.socket.once('close', () => reject(new Error(`attacker could not connect to port ${port}`)))
    })
    this.connected.catch(() => undefined)
    this.socket.on('data', (b: Buffer) => this.onData(b))
  }

  static async open(port: number, hello: string | null = 'mallory'): Promise<Attacker> {
    const a = new Attacker(port)
    await a.connected
    if (hello !== null) await a.send(HELLO(hello))
    return a
  }

  private onData(b: Buffer): void {
    this.bytesIn += b.length
    this.text += b.toString('utf8')
    let start = 0
    for (let nl = this.text.indexOf('\n'); nl !== -1; nl = this.text.indexOf('\n', start)) {
      const t = this.text.slice(start, nl)
      start = nl + 1
      this.lines++
      let m: Received
      try {
        m = JSON.parse(t) as Received
      } catch {
        m = { raw: t.slice(0, 200) }
      }
      if (this.nodeHello === null && m.hello !== undefined) this.nodeHello = m
      if (m.accept !== undefined) {
        this.accepted = m
        continue
      }
      if (m.open !== undefined || m.refused !== undefined) {
        this.verdict = m
        continue
      }
      if (m.digest === true && m.done === true) {
        if (m.reply === true) this.replies++
        else this.dones++
      } else if (m.digest !== true && m.hello === undefined) this.updates++
      if (this.keep && this.messages.length < 100_000) this.messages.push(m)
    }
    this.text = this.text.slice(start)
  }

  /** Write and wait for the socket to take it (backpressure respected); never throws once closed. */
  send(data: string | Buffer | unknown): Promise<void> {
    const chunk = typeof data === 'string' || Buffer.isBuffer(data) ? data : line(data)
    if (this.isClosed || this.socket.destroyed) return Promise.resolve()
    this.bytesOut += Buffer.byteLength(chunk as string | Buffer)
    return new Promise((resolve) => {
      const ok = this.socket.write(chunk as string | Buffer, () => resolve())
      // A write callback only fires once flushed; a closed socket resolves through 'close'.
      if (!ok) this.closed.then(() => resolve())
    })
  }

  /**
   * Send `text` (which should end with a digest end, {@link DONE}) and wait
   * until the node answers it with a reply end, or closes the connection:
   * the node has then handled everything sent before. Resolves with which.
   */
  async exchange(text: string, ms = 5000): Promise<'answered' | 'closed'> {
    const before = this.replies
    await this.send(text)
    await until(() => this.replies > before || this.isClosed, ms, 'the node to answer the attacker or close its connection', 5)
    return this.replies > before ? 'answered' : 'closed'
  }

  /** Open a session as `id`, proving it with `privateKey` (a member with a key). Resolves with the node's open or refused line. */
  async authenticate(id: string, privateKey: string): Promise<Received> {
    const nonce = crypto.randomBytes(16).toString('base64')
    await this.send(line({ hello: 'simple-scuttle', protocol: 2, id, codecs: ['ndjson'], nonce }))
    await until(() => this.nodeHello !== null || this.isClosed, 5000, 'the node to say hello', 5)
    const h = this.nodeHello as Received
    const proof = crypto.sign(null, proofBytes(id, nonce, String(h.nonce), String(h.cluster ?? 'default')), privateKey).toString('base64')
    await this.send(line({ accept: true, proof }))
    await until(() => this.accepted !== null || this.verdict !== null || this.isClosed, 5000, 'the node to accept or refuse the hello', 5)
    // Our open line follows the node's accept, whether or not its open came already.
    if (this.verdict?.refused === undefined && !this.isClosed) await this.send(line({ open: true }))
    await until(() => this.verdict !== null || this.isClosed, 5000, 'the node to open or refuse the session', 5)
    return this.verdict ?? { refused: 'closed' }
  }

  /** Stop reading what the node sends (a peer that never reads). */
  pause(): void {
    this.socket.pause()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/**
 * A TCP forwarder on 127.0.0.1 in front of a node, with a gate: while
 * closed, connections are accepted and held (nothing is forwarded either
 * way); `release()` forwards the held ones and every later one to `target`.
 * `blackhole()` and `cut()` partition a link that was forwarding.
 */
export class Gate {
  readonly server: net.Server
  private open = false
  private readonly held: net.Socket[] = []
  private readonly sockets = new Set<net.Socket>()
  // Connections forwarded, client and upstream, and those blackholed.
  private readonly pairs = new Map<net.Socket, net.Socket>()
  private readonly holed = new Set<net.Socket>()

  constructor(public target: number) {
    this.server = net.createServer((client) => {
      client.on('error', () => undefined)
      this.sockets.add(client)
      client.once('close', () => this.sockets.delete(client))
      if (this.open) this.forward(client)
      else {
        client.pause()
        this.held.push(client)
      }
    })
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()))
    return (this.server.address() as net.AddressInfo).port
  }

  close(): void {
    this.open = false
  }

  release(): void {
    this.open = true
    for (const c of this.held.splice(0)) if (!c.destroyed) this.forward(c)
    for (const c of this.holed) this.pipe(c, this.pairs.get(c) as net.Socket)
    this.holed.clear()
  }

  /** Forward nothing more either way, the connections left open (a link that drops every packet); new ones are held. */
  blackhole(): void {
    this.open = false
    for (const [c, u] of this.pairs) {
      if (this.holed.has(c)) continue
      c.unpipe(u)
      u.unpipe(c)
      c.pause()
      u.pause()
      this.holed.add(c)
    }
  }

  /** Close every connection; new ones are held. */
  cut(): void {
    this.open = false
    for (const s of this.sockets) s.destroy()
  }

  private pipe(client: net.Socket, upstream: net.Socket): void {
    client.pipe(upstream).pipe(client)
    client.resume()
    upstream.resume()
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect(this.target, '127.0.0.1')
    upstream.on('error', () => undefined)
    this.sockets.add(upstream)
    upstream.once('close', () => {
      this.sockets.delete(upstream)
      client.destroy()
    })
    client.once('close', () => {
      upstream.destroy()
      this.pairs.delete(client)
      this.holed.delete(client)
    })
    this.pairs.set(client, upstream)
    this.pipe(client, upstream)
  }

  destroy(): void {
    for (const s of this.sockets) s.destroy()
    this.server.close()
  }
}

/** Everything one test starts, for cleanup even when it fails. */
export class Cluster {
  readonly procs: NodeProc[] = []
  readonly attackers: Attacker[] = []
  readonly dirs: string[] = []
  readonly servers: net.Server[] = []
  readonly gates: Gate[] = []

  /** Spawn a node listening on an ephemeral loopback port; resolves once it listens. */
  async node(id: string, args: string[] = [], opts: { connect?: (NodeProc | string)[]; interval?: number } = {}): Promise<NodeProc> {
    const connect = (opts.connect ?? []).flatMap((p) => ['--connect', typeof p === 'string' ? p : p.address])
    const interval = args.includes('--interval') ? [] : ['--interval', String(opts.interval ?? 50)]
    const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']
    const p = new NodeProc(id, [...listen, ...interval, ...connect, ...args])
    this.procs.push(p)
    await p.ready()
    return p
  }

  /** A raw peer; under `--keys` (a key made by `keys()` for its id) it opens an authenticated session. */
  async attacker(port: number, hello: string | null = 'mallory'): Promise<Attacker> {
    const a = new Attacker(port)
    this.attackers.push(a)
    await a['connected']
    const key = hello === null ? undefined : this.privateKeys.get(hello)
    if (key !== undefined) await a.authenticate(hello as string, key)
    else if (hello !== null) await a.send(HELLO(hello))
    return a
  }

  // Private keys of the ids keys() made (the last made wins).
  private readonly privateKeys = new Map<string, string>()

  tmp(prefix = 'scuttle-adv-'): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    this.dirs.push(d)
    return d
  }

  /** A --keys directory with a key pair for each id and for the {@link INSIDERS} (and only public keys for `publicOnly`). */
  keys(ids: string[], publicOnly: string[] = []): string {
    const dir = this.tmp('scuttle-adv-keys-')
    for (const id of [...ids, ...publicOnly, ...INSIDERS.filter((i) => !ids.includes(i) && !publicOnly.includes(i))]) {
      const pair = generateKeyPair()
      fs.writeFileSync(path.join(dir, `${id}.pub.pem`), pair.publicKey)
      if (!publicOnly.includes(id)) fs.writeFileSync(path.join(dir, `${id}.key.pem`), pair.privateKey)
      if (INSIDERS.includes(id)) this.privateKeys.set(id, pair.privateKey)
    }
    return dir
  }

  /** Peak RSS (MB) and connections closed with a reason, per node started in this test. */
  figures(): Record<string, unknown> {
    const rss: Record<string, number> = {}
    const dropped: Record<string, number> = {}
    for (const p of this.procs) {
      p.sample()
      const name = rss[p.id] === undefined ? p.id : `${p.id}#${this.procs.indexOf(p)}`
      rss[name] = Math.round(p.peakKB / 102.4) / 10
      dropped[name] = p.count(/closing connection to/)
    }
    return this.procs.length === 0 ? {} : { peak_rss_mb: rss, connections_closed: dropped }
  }

  async cleanup(): Promise<void> {
    for (const a of this.attackers.splice(0)) a.destroy()
    for (const s of this.servers.splice(0)) s.close()
    for (const g of this.gates.splice(0)) g.destroy()
    const procs = this.procs.splice(0)
    for (const p of procs) p.kill()
    await Promise.all(procs.map((p) => p.exited))
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
    this.privateKeys.clear()
  }
}

// Figures of the current test, written with its outcome after it ends.
let current: Record<string, unknown> = {}

/** Record a figure of the running test (written to test/artifacts/adversarial.json). */
export function figure(name: string, value: unknown): void {
  current[name] = value
}

function writeFigures(file: string, title: string, entry: Record<string, unknown>): void {
  let all: { full?: boolean; tests?: Record<string, unknown> } = {}
  try {
    all = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    all = {}
  }
  const tests = (all.tests ?? {}) as Record<string, unknown>
  tests[title] = entry
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, `${JSON.stringify({ note: 'figures of the adversarial suite (test/adversarial); one entry per test, newest run wins', tests }, null, 2)}\n`)
}

/**
 * Registers the hooks every adversarial file uses: figures reset before each
 * test; after it, the cluster's figures are gathered, everything it started
 * is cleaned up, and the test's figures and outcome are written out.
 */
export function adversarialHooks(cluster: Cluster, suite: string): void {
  beforeEach(() => {
    current = {}
  })
  afterEach(async function () {
    const t = this.currentTest
    const entry: Record<string, unknown> = {
      ...current,
      ...cluster.figures(),
      result: t?.state ?? 'unknown',
      ms: t?.duration,
      full: FULL,
      at: new Date().toISOString(),
    }
    if (t?.state === 'failed') entry.error = String(t.err?.message ?? t.err).split('\n').slice(0, 3).join(' | ').slice(0, 500)
    await cluster.cleanup()
    writeFigures(ARTIFACT, `${suite} :: ${t?.title ?? '?'}`, entry)
  })
}

/** A JSON array nested `depth` levels deep, as text, built without recursion. */
export function nested(depth: number, inner = '0'): string {
  return '['.repeat(depth) + inner + ']'.repeat(depth)
}

/** The same value as an object, built without recursion. */
export function nestedValue(depth: number): unknown {
  let v: unknown = 0
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

/** Waits until `b` holds `key` with `value` (deep-equal); returns the ms it took. */
export async function converges(b: NodeProc, key: string, value: unknown, ms: number, what?: string): Promise<number> {
  const want = JSON.stringify(value)
  return until(async () => JSON.stringify((await b.get(key)).value) === want, ms, what ?? `${b.id} to hold ${key}=${want.slice(0, 60)}`, 50)
}

/**
 * The standard after-attack check: the node is alive and answers stdin, a
 * fresh write on it reaches the honest peer (and one on the peer reaches
 * it) within `ms`. Returns the time to converge.
 */
export async function stillServes(node: NodeProc, honest: NodeProc, tag: string, ms = 10_000): Promise<number> {
  assert.ok(node.alive, `${node.id} died (code ${node.exitCode}, signal ${node.exitSignal}); stderr tail:\n${node.tail()}`)
  const state = await node.cmd('state')
  assert.ok(state.state !== undefined, `${node.id} does not answer "state"`)
  const start = Date.now()
  await node.write(`after-${tag}`, { from: node.id, tag })
  await honest.write(`back-${tag}`, { from: honest.id, tag })
  await converges(honest, `after-${tag}`, { from: node.id, tag }, ms, `a write on ${node.id} after the attack (${tag}) to reach honest ${honest.id}`)
  await converges(node, `back-${tag}`, { from: honest.id, tag }, ms, `a write on honest ${honest.id} after the attack (${tag}) to reach ${node.id}`)
  return Date.now() - start
}
