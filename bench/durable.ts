/**
 * `npm run bench:durable`: durable writes (issue 23), all on the same disk
 * (DURABLE_DIR, default the OS temp dir), in one run:
 * - the disk's floor: one append of 100 bytes plus fdatasync, and one
 *   in-place 4 KiB overwrite plus fdatasync (median of DURABLE_FSYNCS);
 * - a lone write: `set` through the command channel of a node with
 *   `--data`, each sent once the previous one is answered (median of
 *   DURABLE_LONE), against the same without `--data` (the channel alone)
 *   and against the disk's floor; and in-process, `gossip.set` then
 *   `await store.flush()`, one at a time;
 * - a stream: DURABLE_STREAM `set`s written to stdin at once, acknowledged
 *   writes/s until the last answer, with and without `--data`; and in
 *   process, that many `set`s each awaiting its own `flush()`, all at once
 *   (what a pipelined command loop asks of the store).
 *
 * Command-channel variants (DURABLE_BINS, `name=path,...` as LOAD_BINS;
 * default this build as `ours`, and `pipelined`, bench/pipeline-node.ts:
 * the command loop the issue needs, on this build's store) alternate in
 * DURABLE_ROUNDS rounds, every node a fresh process; medians.
 * With DURABLE_STRACE=1 (and strace installed) one extra stream per
 * variant under `strace -f -c` counts syscalls per set.
 */
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { base } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import { NodeProc, median, ms, OUR_BIN, percentile, variants } from './proc'

const DIR = process.env.DURABLE_DIR ?? os.tmpdir()
const FSYNCS = Number(process.env.DURABLE_FSYNCS ?? 300)
const LONE = Number(process.env.DURABLE_LONE ?? 300)
const STREAM = Number(process.env.DURABLE_STREAM ?? 10_000)
const ROUNDS = Number(process.env.DURABLE_ROUNDS ?? 3)
const OUT = process.env.DURABLE_OUT ?? path.join(__dirname, '..', '..', 'bench', 'durable-results.json')
const PIPELINED = path.join(__dirname, 'pipeline-node.js')

/** Median ms of `n` appends of 100 bytes + fdatasync, and of `n` 4 KiB overwrites at offset 0 + fdatasync. */
export function diskFloor(dir: string, n: number): { append: number; overwrite: number } {
  const file = path.join(dir, `fsync-probe-${process.pid}`)
  const fd = fs.openSync(file, 'w+')
  try {
    const line = Buffer.alloc(100, 120)
    const page = Buffer.alloc(4096, 121)
    fs.writeSync(fd, page, 0, page.length, 0)
    fs.fdatasyncSync(fd)
    const appends: number[] = []
    const overwrites: number[] = []
    let at = page.length
    for (let i = 0; i < n; i++) {
      let t = ms()
      fs.writeSync(fd, line, 0, line.length, at)
      at += line.length
      fs.fdatasyncSync(fd)
      appends.push(ms() - t)
      t = ms()
      fs.writeSync(fd, page, 0, page.length, 0)
      fs.fdatasyncSync(fd)
      overwrites.push(ms() - t)
    }
    return { append: median(appends), overwrite: median(overwrites) }
  } finally {
    fs.closeSync(fd)
    fs.rmSync(file, { force: true })
  }
}

function config() {
  return { resolve: base.resolution.lww_vs_current_vers }
}

/** In process: `n` sets one at a time, each awaiting flush(); median and p99 ms. */
async function inProcessLone(dir: string, n: number): Promise<{ p50: number; p99: number }> {
  const { gossip, store } = openGossip('a', config(), dir)
  const xs: number[] = []
  try {
    for (let i = 0; i < n + 10; i++) {
      const t = ms()
      gossip.set(`k${i}`, i)
      await store.flush()
      if (i >= 10) xs.push(ms() - t)
    }
  } finally {
    await store.close()
  }
  xs.sort((a, b) => a - b)
  return { p50: percentile(xs, 50), p99: percentile(xs, 99) }
}

/** In process: `n` sets at once, each awaiting its own flush(); acknowledged writes/s. */
async function inProcessStream(dir: string, n: number): Promise<number> {
  const { gossip, store } = openGossip('a', config(), dir)
  try {
    const t = ms()
    const acks: Promise<void>[] = []
    for (let i = 0; i < n; i++) {
      gossip.set(`k${i}`, i)
      acks.push(store.flush())
    }
    await Promise.all(acks)
    return n / ((ms() - t) / 1000)
  } finally {
    await store.close()
  }
}

async function withNode<T>(bin: string, data: string | null, f: (n: NodeProc) => Promise<T>, wrap: string[] = []): Promise<T> {
  const args = ['--listen', '127.0.0.1:0', ...(data === null ? [] : ['--data', data])]
  const n = new NodeProc(bin, 'a', args, wrap)
  try {
    await n.ready()
    return await f(n)
  } finally {
    await n.stop()
  }
}

/** Lone sets through the command channel; median and p99 ms. */
async function channelLone(bin: string, data: string | null, n: number): Promise<{ p50: number; p99: number }> {
  return withNode(bin, data, async (node) => {
    const xs: number[] = []
    for (let i = 0; i < n + 10; i++) {
      const r = await node.timed(`set k${i} ${i}`)
      if (!r.line.startsWith('{"ok":true')) throw new Error(`set refused: ${r.line}`)
      if (i >= 10) xs.push(r.ms)
    }
    xs.sort((a, b) => a - b)
    return { p50: percentile(xs, 50), p99: percentile(xs, 99) }
  })
}

/** `n` sets written at once through the command channel; acknowledged writes/s until the last answer. */
async function channelStream(bin: string, data: string | null, n: number): Promise<number> {
  return withNode(bin, data, async (node) => {
    await node.timed('get warm')
    const lines: string[] = []
    for (let i = 0; i < n; i++) lines.push(`set k${i} ${i}`)
    const t = ms()
    const last = await new Promise<number>((resolve, reject) => {
      let left = n
      node.sendMany(lines, (_i, line, at) => {
        if (!line.startsWith('{"ok":true')) reject(new Error(`set refused: ${line}`))
        if (--left === 0) resolve(at)
      })
    })
    return n / ((last - t) / 1000)
  })
}

/** Syscalls per set of a stream of `n` sets (strace -f -c over the node process), or null without strace. */
function straceCounts(bin: string, data: string, n: number): Record<string, number> | null {
  if (spawnSync('strace', ['-V']).status !== 0) return null
  const script = `
    const { NodeProc } = require(${JSON.stringify(path.join(__dirname, 'proc.js'))});
    (async () => {
      const node = new NodeProc(${JSON.stringify(bin)}, 'a', ['--listen', '127.0.0.1:0', '--data', ${JSON.stringify(data)}], []);
      await node.ready();
      await node.timed('get warm');
      const lines = []; for (let i = 0; i < ${n}; i++) lines.push('set k' + i + ' ' + i);
      await new Promise((resolve) => { let left = ${n}; node.sendMany(lines, () => { if (--left === 0) resolve(); }); });
      await node.stop();
    })();`
  const out = path.join(DIR, `strace-${process.pid}.txt`)
  const r = spawnSync('strace', ['-f', '-c', '-o', out, process.execPath, '-e', script], { encoding: 'utf8' })
  if (r.status !== 0) return null
  const text = fs.readFileSync(out, 'utf8')
  fs.rmSync(out, { force: true })
  const counts: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line)
    if (m !== null && ['fdatasync', 'fsync', 'pwrite64', 'write', 'writev', 'pread64', 'read'].includes(m[2])) counts[m[2]] = Number(m[1]) / n
  }
  return counts
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(DIR, 'scuttle-bench-durable-'))
  const vs = [...variants(process.env.DURABLE_BINS), ...(process.env.DURABLE_BINS === undefined ? [{ name: 'pipelined', bin: PIPELINED }] : [])]
  let k = 0
  const fresh = (): string => path.join(root, `d${k++}`)
  const samples: Record<string, Record<string, number[]>> = {}
  const push = (v: string, what: string, x: number): void => {
    samples[v] ??= {}
    ;(samples[v][what] ??= []).push(x)
  }
  const started = new Date().toISOString()
  try {
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`bench:durable round ${r + 1}/${ROUNDS}\n`)
      const floor = diskFloor(root, FSYNCS)
      push('disk', 'append+fdatasync ms', floor.append)
      push('disk', 'overwrite 4k+fdatasync ms', floor.overwrite)
      const lone = await inProcessLone(fresh(), LONE)
      push('in-process', 'lone p50 ms', lone.p50)
      push('in-process', 'lone p99 ms', lone.p99)
      push('in-process', 'stream acked/s', await inProcessStream(fresh(), STREAM))
      const order = r % 2 === 0 ? vs : [...vs].reverse()
      for (const v of order) {
        const l = await channelLone(v.bin, fresh(), LONE)
        push(v.name, 'lone p50 ms', l.p50)
        push(v.name, 'lone p99 ms', l.p99)
        push(v.name, 'lone p50 ms, no --data', (await channelLone(v.bin, null, LONE)).p50)
        push(v.name, 'stream acked/s', await channelStream(v.bin, fresh(), STREAM))
        push(v.name, 'stream acked/s, no --data', await channelStream(v.bin, null, STREAM))
      }
      for (const d of fs.readdirSync(root)) fs.rmSync(path.join(root, d), { recursive: true, force: true })
    }
    const strace: Record<string, Record<string, number> | null> = {}
    if (process.env.DURABLE_STRACE === '1') for (const v of vs) strace[v.name] = straceCounts(v.bin, fresh(), 2000)
    const med: Record<string, Record<string, number>> = {}
    for (const [v, m] of Object.entries(samples)) {
      med[v] = {}
      for (const [what, xs] of Object.entries(m)) med[v][what] = median(xs)
    }
    const fsyncMs = med.disk['append+fdatasync ms']
    const goals: Record<string, { value: number; goal: string; met: boolean }> = {
      'in-process lone / fsync': { value: med['in-process']['lone p50 ms'] / fsyncMs, goal: '<= 2x', met: med['in-process']['lone p50 ms'] / fsyncMs <= 2 },
      'in-process stream acked/s': { value: med['in-process']['stream acked/s'], goal: '>= 5000', met: med['in-process']['stream acked/s'] >= 5000 },
    }
    for (const v of vs) {
      const lone = med[v.name]['lone p50 ms']
      const channel = med[v.name]['lone p50 ms, no --data']
      goals[`${v.name}: lone / fsync`] = { value: lone / fsyncMs, goal: '<= 2x', met: lone / fsyncMs <= 2 }
      goals[`${v.name}: (lone - channel) / fsync`] = { value: (lone - channel) / fsyncMs, goal: '<= 2x', met: (lone - channel) / fsyncMs <= 2 }
      goals[`${v.name}: stream acked/s`] = { value: med[v.name]['stream acked/s'], goal: '>= 5000', met: med[v.name]['stream acked/s'] >= 5000 }
    }
    const out = {
      started,
      finished: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadavg: os.loadavg(),
      dir: DIR,
      setup: { rounds: ROUNDS, fsyncs: FSYNCS, lone: LONE, stream: STREAM, variants: vs.map((v) => ({ ...v, bin: v.bin === OUR_BIN ? 'this build' : v.bin })) },
      statistic: 'median over rounds; ratios from the medians of this run',
      medians: med,
      goals,
      strace,
      samples,
    }
    fs.writeFileSync(OUT, `${JSON.stringify(out, null, 2)}\n`)
    const lines: string[] = []
    for (const [v, m] of Object.entries(med)) for (const [what, x] of Object.entries(m)) lines.push(`${v.padEnd(12)} ${what.padEnd(30)} ${x >= 100 ? x.toFixed(0) : x.toFixed(3)}`)
    lines.push('')
    for (const [g, x] of Object.entries(goals)) lines.push(`${g.padEnd(40)} ${x.value >= 100 ? x.value.toFixed(0) : x.value.toFixed(2)} (goal ${x.goal}) ${x.met ? 'met' : 'NOT met'}`)
    for (const [v, c] of Object.entries(strace)) lines.push(`${v}: syscalls per set: ${c === null ? 'strace failed' : Object.entries(c).map(([s, x]) => `${s} ${x.toFixed(2)}`).join(', ')}`)
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
