/**
 * A `simple-scuttle node` process for the process benchmarks (load,
 * durable, restart): spawned from any build of the command (ours, or
 * another worktree's `dist/bin/simple-scuttle.js`), driven through its stdin
 * commands, answers matched to commands in order (the node answers in
 * order). Kept light: the load generator drives ten of these from one
 * process on the same cores as the nodes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'

/** Our own build of the command (dist/bench -> dist/bin). */
export const OUR_BIN = path.join(__dirname, '..', 'bin', 'simple-scuttle.js')

/** Milliseconds, high resolution, from an arbitrary origin. */
export function ms(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** Waits `t` ms: only to pace a load generator or a poll, never in place of a condition. */
export const pace = (t: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, t))

export interface Pending {
  /** When the command was written, ms(). */
  at: number
  /** Called with the answer line (raw text) and the time it arrived. */
  done: (line: string, at: number) => void
}

/**
 * One node process. `send(lines, pending)` writes command lines in one write;
 * each answer line resolves the oldest pending command.
 */
export class NodeProc {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<number | null>
  readonly id: string
  port = 0
  stderr = ''
  private buffered = ''
  private queue: Pending[] = []
  private head = 0
  private listening: ((port: number) => void) | null = null

  constructor(bin: string, id: string, args: string[], nodeFlags: string[] = []) {
    this.id = id
    this.child = spawn(process.execPath, [...nodeFlags, bin, 'node', '--id', id, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdin.on('error', () => undefined)
    this.child.stderr.on('data', (b: Buffer) => {
      if (this.stderr.length < 1_000_000) this.stderr += String(b)
      if (this.listening !== null) {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(this.stderr)
        if (m !== null) {
          this.port = Number(m[1])
          const l = this.listening
          this.listening = null
          l(this.port)
        }
      }
    })
    this.child.stdout.on('data', (b: Buffer) => this.onData(b))
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)))
  }

  private onData(b: Buffer): void {
    const t = ms()
    this.buffered += b.toString('utf8')
    let start = 0
    for (let nl = this.buffered.indexOf('\n'); nl !== -1; nl = this.buffered.indexOf('\n', start)) {
      const line = this.buffered.slice(start, nl)
      start = nl + 1
      const p = this.queue[this.head]
      if (p === undefined) continue
      this.queue[this.head++] = undefined as unknown as Pending
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head)
        this.head = 0
      }
      p.done(line, t)
    }
    this.buffered = this.buffered.slice(start)
  }

  /** Commands written and not answered yet. */
  get outstanding(): number {
    return this.queue.length - this.head
  }

  /** Resolves with the port once the node says it listens; rejects if it exits first. */
  ready(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.port !== 0) return resolve(this.port)
      this.listening = resolve
      void this.exited.then((code) => reject(new Error(`node ${this.id} exited (${code}) before listening:\n${this.stderr.slice(-2000)}`)))
    })
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** Write `lines` (each a command, without newline) in one write; `pending` gets one entry per line. */
  sendMany(lines: string[], done: (i: number, line: string, at: number) => void): void {
    const at = ms()
    for (let i = 0; i < lines.length; i++) this.queue.push({ at, done: (l, t) => done(i, l, t) })
    this.child.stdin.write(`${lines.join('\n')}\n`)
  }

  /** One command; resolves with its parsed answer. */
  cmd(text: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`node ${this.id} exited (${code}) before answering ${text.slice(0, 40)}:\n${this.stderr.slice(-2000)}`))
      void this.exited.then(onExit)
      this.queue.push({ at: ms(), done: (l) => resolve(JSON.parse(l) as Record<string, unknown>) })
      this.child.stdin.write(`${text}\n`)
    })
  }

  /** One command; resolves with the round trip in ms (answer not parsed). */
  timed(text: string): Promise<{ ms: number; line: string }> {
    return new Promise((resolve) => {
      const at = ms()
      this.queue.push({ at, done: (l, t) => resolve({ ms: t - at, line: l }) })
      this.child.stdin.write(`${text}\n`)
    })
  }

  /** CPU seconds (user + system) the process has used, from /proc; null once gone. */
  cpuSeconds(): number | null {
    try {
      const stat = fs.readFileSync(`/proc/${this.child.pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      return null
    }
  }

  /** Peak resident set (VmHWM), MB; null once gone. */
  peakRssMB(): number | null {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8'))
      return m === null ? null : Number(m[1]) / 1024
    } catch {
      return null
    }
  }

  /** Resident set now (VmRSS), MB; null once gone. */
  rssMB(): number | null {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8'))
      return m === null ? null : Number(m[1]) / 1024
    } catch {
      return null
    }
  }

  /** SIGTERM (the node flushes; a --cpu-prof profile is written), SIGKILL after `grace` ms. */
  async stop(grace = 20_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), grace)
    await this.exited
    clearTimeout(timer)
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** `name=path,name=path` (LOAD_BINS and friends) into variants; `ours` is this build. */
export function variants(spec: string | undefined): { name: string; bin: string }[] {
  if (spec === undefined || spec.trim() === '') return [{ name: 'ours', bin: OUR_BIN }]
  return spec.split(',').map((part) => {
    const [name, bin] = part.split('=')
    const b = bin === undefined || bin === '' ? OUR_BIN : bin
    const file = fs.existsSync(path.join(b, 'dist', 'bin', 'simple-scuttle.js')) ? path.join(b, 'dist', 'bin', 'simple-scuttle.js') : b
    if (!fs.existsSync(file)) throw new Error(`${name}: no such build: ${file} (build it: npm ci in that worktree)`)
    return { name, bin: file }
  })
}
