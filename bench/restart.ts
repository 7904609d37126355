/**
 * `npm run bench:restart`: restart and status at RESTART_N keys (default
 * 100,000; the figure is RESTART_N=1000000), in one run:
 * - fill: RESTART_N keys (`k<i>` = i) written by `set` into a data
 *   directory through this build's store (once, not timed);
 * - node: a fresh `simple-scuttle node --data DIR` process, `get k1`
 *   written as it starts: ms from spawn to that answer, RSS then; then one
 *   `status` and one `members`, each timed, and RSS after;
 * - floor: a fresh process that opens the same database read-only and
 *   reads every row into a Map (`key` -> {key, value (JSON.parse),
 *   source_id, version}): ms from spawn to done; the same process start
 *   is in both;
 * - phases: in a fresh process, Store.open (with its check), store.state
 *   (every row read, checked and parsed) and Gossip.restore, each timed
 *   (what the profile splits further: RESTART_PROF=DIR runs the phases
 *   process with --cpu-prof into DIR).
 * Node and floor alternate in RESTART_ROUNDS rounds (default 3); medians.
 * Variants of the node: RESTART_BINS as LOAD_BINS (default this build);
 * a build whose store cannot read this format fails its row.
 */
import { execFileSync, spawn } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { base, Gossip } from '../lib'
import { openGossip, Store } from '../lib/node/sqlite'
import { NodeProc, median, ms, variants } from './proc'

const N = Number(process.env.RESTART_N ?? 100_000)
const ROUNDS = Number(process.env.RESTART_ROUNDS ?? 3)
const DIR = process.env.RESTART_DIR ?? os.tmpdir()
const OUT = process.env.RESTART_OUT ?? path.join(__dirname, '..', '..', 'bench', `restart-results-${N}.json`)

function config() {
  return { resolve: base.resolution.lww_vs_current_vers }
}

async function fill(dir: string, n: number): Promise<void> {
  const { gossip, store } = openGossip('a', config(), dir)
  for (let i = 0; i < n; i++) {
    gossip.set(`k${i}`, i)
    if (i % 10_000 === 9_999) await store.flush()
  }
  await store.close()
}

/** The floor, in this process (run as a child): every row into a Map. */
function floorChild(dir: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3')
  const db = new Database(path.join(dir, 'state.db'), { readonly: true })
  const map = new Map<string, { key: string; value: unknown; source_id: string; version: number }>()
  const rows = db.prepare('SELECT key, source_id, version, value FROM mappings').raw(true)
  for (const [key, source_id, version, value] of rows.iterate() as IterableIterator<[string, string, number, string]>) {
    map.set(key, { key, value: JSON.parse(value), source_id, version })
  }
  db.close()
  process.stdout.write(`${map.size}\n`)
}

/** Store.open, store.state, Gossip.restore, each timed (run as a child). */
function phasesChild(dir: string): void {
  const t0 = ms()
  const store = Store.open(dir, 'a')
  const t1 = ms()
  const state = store.state
  const t2 = ms()
  const g = state === undefined ? new Gossip('a', config()) : Gossip.restore('a', config(), state)
  store.attach(g)
  const t3 = ms()
  const got = g.get('k1').value
  if (got !== 1) throw new Error(`k1 is ${JSON.stringify(got)}`)
  process.stdout.write(`${JSON.stringify({ open: t1 - t0, load: t2 - t1, restore: t3 - t2, rssMB: process.memoryUsage().rss / 2 ** 20 })}\n`)
  void store.close().then(() => process.exit(0))
}

function floor(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = ms()
    const child = spawn(process.execPath, ['--max-old-space-size=16384', __filename, 'floor', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => {
      out += b
      if (out.includes('\n')) resolve(ms() - t)
    })
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`floor exited ${code}`))))
  })
}

async function node(bin: string, dir: string): Promise<{ firstAnswer: number; rssReadyMB: number; status: number; members: number; rssAfterMB: number }> {
  const t = ms()
  const n = new NodeProc(bin, 'a', ['--listen', '127.0.0.1:0', '--data', dir], ['--max-old-space-size=16384'])
  try {
    const first = await n.timed('get k1')
    if (!first.line.includes('"value":1')) throw new Error(`get k1 answered ${first.line.slice(0, 200)}`)
    const firstAnswer = ms() - t
    const rssReadyMB = n.rssMB() ?? NaN
    const status = (await n.timed('status')).ms
    const members = (await n.timed('members')).ms
    return { firstAnswer, rssReadyMB, status, members, rssAfterMB: n.rssMB() ?? NaN }
  } finally {
    await n.stop(60_000)
  }
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(DIR, 'scuttle-bench-restart-'))
  const data = path.join(root, 'a')
  const samples: Record<string, Record<string, number[]>> = {}
  const push = (v: string, what: string, x: number): void => {
    samples[v] ??= {}
    ;(samples[v][what] ??= []).push(x)
  }
  const started = new Date().toISOString()
  try {
    process.stderr.write(`bench:restart: filling ${N} keys...\n`)
    await fill(data, N)
    const vs = variants(process.env.RESTART_BINS)
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`bench:restart round ${r + 1}/${ROUNDS}\n`)
      const order = r % 2 === 0 ? vs : [...vs].reverse()
      push('floor', 'rows into a Map ms', await floor(data))
      for (const v of order) {
        try {
          const x = await node(v.bin, data)
          for (const [k, val] of Object.entries(x)) push(v.name, k, val)
        } catch (err) {
          process.stderr.write(`  ${v.name}: ${(err as Error).message.split('\n')[0]}\n`)
        }
      }
      const flags = process.env.RESTART_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.RESTART_PROF)}`]
      const ph = JSON.parse(execFileSync(process.execPath, [...flags, '--max-old-space-size=16384', __filename, 'phases', data], { encoding: 'utf8' }).trim().split('\n').pop() as string) as Record<string, number>
      for (const [k, val] of Object.entries(ph)) push('phases', `${k}${k === 'rssMB' ? '' : ' ms'}`, val)
    }
    const med: Record<string, Record<string, number>> = {}
    for (const [v, m] of Object.entries(samples)) {
      med[v] = {}
      for (const [what, xs] of Object.entries(m)) med[v][what] = median(xs)
    }
    const floorMs = med.floor['rows into a Map ms']
    const goals: Record<string, { value: number; goal: string; met: boolean }> = {}
    for (const v of vs) {
      const m = med[v.name]
      if (m === undefined) continue
      goals[`${v.name}: first answer / floor`] = { value: m.firstAnswer / floorMs, goal: '<= 1.5x', met: m.firstAnswer / floorMs <= 1.5 }
      goals[`${v.name}: status ms`] = { value: m.status, goal: '< 50', met: m.status < 50 }
      goals[`${v.name}: members ms`] = { value: m.members, goal: '< 50', met: m.members < 50 }
    }
    const out = { started, finished: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), n: N, rounds: ROUNDS, medians: med, goals, samples }
    fs.writeFileSync(OUT, `${JSON.stringify(out, null, 2)}\n`)
    const lines: string[] = []
    for (const [v, m] of Object.entries(med)) for (const [what, x] of Object.entries(m)) lines.push(`${v.padEnd(10)} ${what.padEnd(22)} ${x.toFixed(x >= 100 ? 0 : 1)}`)
    lines.push('')
    for (const [g, x] of Object.entries(goals)) lines.push(`${g.padEnd(32)} ${x.value.toFixed(2)} (goal ${x.goal}) ${x.met ? 'met' : 'NOT met'}`)
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'floor') floorChild(process.argv[3])
else if (process.argv[2] === 'phases') phasesChild(process.argv[3])
else if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
