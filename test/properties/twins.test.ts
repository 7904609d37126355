/**
 * Twins against a model (docs/twins.md): schedules of writes on two or
 * more live nodes with one id (`b`) and on other nodes (`a`, `c`), twins
 * started fresh or from a cloned or older backup of `b`'s data directory,
 * restores from an older backup, restarts, and partitions, run on real
 * nodes over 127.0.0.1. The model keeps every ACKNOWLEDGED write; once
 * healed, every node other than a twin (and `b`, once one process runs as
 * it) must hold, for every key acknowledged, an acknowledged write to it
 * that no acknowledged write came after (causally: its node held it when
 * it wrote), no write answered `twin`, and all must agree. Counterexamples found are
 * kept in REGRESSIONS, replayed first on every run.
 */
import * as assert from 'assert'
import fc from 'fast-check'
import * as fs from 'fs'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import { base } from '../../lib'
import { isMembershipKey } from '../../lib/membership'
import { startNode, type NodeOptions, type ScuttleNode, type TwinReport } from '../../lib/node'
import { Gate, until } from '../adversarial/harness'

type Step =
  | { op: 'write'; on: 'a' | 'c' | 'b'; twin: number; key: number }
  | { op: 'twin'; from: 'fresh' | 'clone' | 'old' }
  | { op: 'backup' }
  | { op: 'restore' }
  | { op: 'restart'; who: 'a' | 'c' }
  | { op: 'partition'; twin: number }
  | { op: 'heal' }

const KEYS = 4
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('write' as const), on: fc.constantFrom('a' as const, 'c' as const, 'b' as const), twin: fc.nat(3), key: fc.nat(KEYS - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('twin' as const), from: fc.constantFrom('fresh' as const, 'clone' as const, 'old' as const) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'backup' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'restore' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('restart' as const), who: fc.constantFrom('a' as const, 'c' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('partition' as const), twin: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'heal' as const }) },
)

// Schedules that failed once (found by this property), replayed on every
// run. `open`: not fixed yet (see docs/twins.md, "Limits"): replayed only
// with TWINS_OPEN=1, since it fails only in some interleavings.
// `stopWait`: the clean stop's wait (see run), 0 for a stop that waits for nothing (as a crash).
const REGRESSIONS: { why: string; steps: Step[]; open?: true; stopWait?: number }[] = [
  {
    why: "b0 wrote k0 (v0), a wrote v1 over it (1 us above), and b0 was cut off before v1 reached it; the fresh twin's versions, taken for b0's past, had b0 issue v0 again above them (1 s above v1) before v1 arrived: v0 won everywhere, v1 lost (fixed: a write issued again carries its first version, `first`, and every node places it there among other sources' writes, docs/deletes.md R2)",
    steps: [{ op: 'heal' }, { op: 'write', on: 'b', twin: 3, key: 0 }, { op: 'write', on: 'a', twin: 2, key: 0 }, { op: 'heal' }, { op: 'twin', from: 'fresh' }, { op: 'partition', twin: 2 }, { op: 'heal' }, { op: 'restart', who: 'a' }, { op: 'write', on: 'b', twin: 1, key: 2 }, { op: 'restart', who: 'a' }, { op: 'write', on: 'a', twin: 1, key: 2 }, { op: 'restore' }, { op: 'write', on: 'b', twin: 0, key: 2 }, { op: 'write', on: 'a', twin: 0, key: 3 }],
  },
  {
    why: 'the fresh twin b2, admitted, wrote k3 (v5, acknowledged) over v0, then was stopped cleanly and its directory restored from the oldest backup: v5 had reached no peer (the model stopped nodes without the CLI\'s stop wait; fixed in the model: stopWait, as the CLI)',
    steps: [{ op: 'write', on: 'a', twin: 1, key: 3 }, { op: 'write', on: 'a', twin: 3, key: 1 }, { op: 'write', on: 'a', twin: 3, key: 0 }, { op: 'backup' }, { op: 'write', on: 'a', twin: 0, key: 1 }, { op: 'twin', from: 'fresh' }, { op: 'backup' }, { op: 'write', on: 'b', twin: 0, key: 0 }, { op: 'twin', from: 'clone' }, { op: 'write', on: 'b', twin: 2, key: 3 }, { op: 'write', on: 'c', twin: 3, key: 1 }, { op: 'restore' }],
  },
  {
    why: "b0 wrote k3 (v0, acknowledged); a overwrote it (v5, acknowledged, having held v0); b0's clock, raised by its fresh twin's versions taken for its past, issued v0 again above them (Incarnation.reissue), above v5: v0 won everywhere, v5 lost (fixed: a write that a higher version of another source replaced here is not issued again, see Incarnation.replaced)",
    steps: [
      { op: 'twin', from: 'fresh' },
      { op: 'write', on: 'b', twin: 0, key: 3 },
      { op: 'write', on: 'c', twin: 2, key: 2 },
      { op: 'heal' },
      { op: 'write', on: 'c', twin: 0, key: 3 },
      { op: 'restart', who: 'a' },
      { op: 'write', on: 'c', twin: 2, key: 3 },
      { op: 'write', on: 'c', twin: 1, key: 1 },
      { op: 'write', on: 'a', twin: 3, key: 3 },
      { op: 'heal' },
      { op: 'write', on: 'b', twin: 3, key: 3 },
    ],
  },
  {
    why: "a fresh twin's write v2 reached a, and a wrote v3 over it (acknowledged); the twin, refused, then handed v2 over to c (no peer's digest had told it a held it), and c wrote it as its own, re-dated above v3: v3 lost everywhere (fixed: a handed write carries its version, and a peer holding its key at or above it leaves it out)",
    steps: [
      { op: 'restart', who: 'c' },
      { op: 'restore' },
      { op: 'write', on: 'a', twin: 3, key: 0 },
      { op: 'partition', twin: 2 },
      { op: 'write', on: 'b', twin: 2, key: 2 },
      { op: 'twin', from: 'old' },
      { op: 'write', on: 'b', twin: 1, key: 0 },
      { op: 'write', on: 'a', twin: 0, key: 0 },
      { op: 'backup' },
      { op: 'write', on: 'a', twin: 1, key: 1 },
      { op: 'partition', twin: 1 },
      { op: 'write', on: 'a', twin: 1, key: 1 },
      { op: 'heal' },
      { op: 'heal' },
    ],
  },
  {
    why: 'b acknowledged k0 and was restarted before gossiping it; a fresh twin, admitted meanwhile, wrote versions of b above it; the restarted b was refused as a twin (k0, of a past life, not handed over); once the twin stopped, peers holding b above k0 never took it (fixed: a node that sees a twin of an id offers its mappings of it again, as Replica.twinned). When the restarted b is instead refused, stranded or told to stop (it started after the fresh twin), k0 stayed in its directory alone (fixed: a refused node hands over its past lives\' writes restored from its directory too, docs/twins.md R6). Replayed with stops that wait for nothing (as a crash), so that k0 leaves only by the handover',
    stopWait: 0,
    steps: [
      { op: 'write', on: 'b', twin: 0, key: 2 },
      { op: 'twin', from: 'fresh' },
      { op: 'write', on: 'c', twin: 2, key: 3 },
      { op: 'write', on: 'b', twin: 0, key: 0 },
      { op: 'backup' },
      { op: 'write', on: 'a', twin: 2, key: 3 },
    ],
  },
  {
    why: "b wrote k1 cut off, restarted, and met a fresh twin that joined first: refused as the elder on a claim, its write reached no one until the twin was stopped (the first model stopped none), then won over a's later write, which never saw it (the first model asked for the last in real time; with last writer wins, of two writes that did not see each other either may win)",
    steps: [
      { op: 'write', on: 'b', twin: 3, key: 3 },
      { op: 'write', on: 'b', twin: 2, key: 2 },
      { op: 'partition', twin: 3 },
      { op: 'write', on: 'b', twin: 2, key: 1 },
      { op: 'restart', who: 'c' },
      { op: 'restore' },
      { op: 'write', on: 'a', twin: 3, key: 1 },
      { op: 'partition', twin: 2 },
      { op: 'twin', from: 'clone' },
      { op: 'heal' },
    ],
  },
  {
    why: 'a write b1 served while stranded (refused on a claim) was handed over to c before it was acknowledged, then answered twin (taken back) once the elder\'s heartbeats became evidence: it won everywhere (fixed: only acknowledged writes are handed over)',
    steps: [
      { op: 'partition', twin: 2 },
      { op: 'heal' },
      { op: 'heal' },
      { op: 'write', on: 'b', twin: 3, key: 2 },
      { op: 'twin', from: 'fresh' },
      { op: 'write', on: 'b', twin: 2, key: 0 },
      { op: 'write', on: 'b', twin: 1, key: 2 },
    ],
  },
]

interface Process {
  node: ScuttleNode
  data: string
  gates: Gate[]
  stopped: boolean
  closing?: Promise<void>
}

async function free(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

// Run one schedule; resolves with nothing, or throws what the model found.
async function run(steps: Step[], stopWait = 2000): Promise<void> {
  const dirs: string[] = []
  const gates: Gate[] = []
  const logs: string[] = []
  const mkdir = (name: string) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), `twinprop-${name}-`))
    dirs.push(d)
    return d
  }
  const base_: Partial<NodeOptions> = {
    interval: 100,
    membership: true,
    stallTimeout: 1500,
    // As the CLI's SIGTERM (5 s there, at 10 times the interval): a clean
    // stop waits for a peer to hold its writes, or a restore from an older
    // backup loses them by design (docs/operations.md, Backups).
    stopWait,
    backoff: { min: 20, max: 200 },
    resolve: base.resolution.lww_vs_current_vers,
  }
  const ports = { a: await free(), c: await free() }
  const dataOf = { a: mkdir('a'), c: mkdir('c') }
  const start = (id: 'a' | 'c') =>
    startNode({ ...base_, id, data: dataOf[id], listen: { host: '127.0.0.1', port: ports[id] }, connect: id === 'c' ? [{ host: '127.0.0.1', port: ports.a }] : [], log: (l) => logs.push(`${id}: ${l}`) })
  const fixed: Record<'a' | 'c', ScuttleNode> = { a: await start('a'), c: await start('c') }
  const twins: Process[] = []
  const backups: string[] = []
  // The model: every write by value, with the value its node held for the
  // key just before (what it overwrote, so the write came causally after
  // it), and whether it was acknowledged. Last writer wins by version, so
  // of writes that did not see each other either may win: an acknowledged
  // write must lose only to one that came after it (docs/twins.md, I1).
  const writes = new Map<string, { key: string; prev: unknown; acked: boolean; on: string; before: number; version?: number }>()
  const winner = new Map<string, string>()
  // Writes answered `twin` (taken back): never to be seen.
  const refused = new Set<string>()
  let n = 0
  let tags = 0

  const startB = async (data: string): Promise<Process> => {
    const gs = [new Gate(ports.a), new Gate(ports.c)]
    gates.push(...gs)
    const at = await Promise.all(gs.map(async (g) => ({ host: '127.0.0.1', port: await g.listen() })))
    for (const g of gs) g.release()
    const tag = `b${tags++}`
    const node = await startNode({ ...base_, id: 'b', data, listen: { host: '127.0.0.1', port: 0 }, connect: at, log: (l) => logs.push(`${tag}: ${l}`) })
    const p: Process = { node, data, gates: gs, stopped: false }
    // As the CLI: the newer of two twins stops (after its handover, see Twins.close).
    node.on('twin', (t: TwinReport) => {
      if (t.newer && !p.stopped) {
        p.stopped = true
        p.closing = new Promise((resolve) => setImmediate(() => void node.close().then(resolve, resolve)))
      }
    })
    return p
  }
  const live = () => twins.filter((p) => !p.stopped)
  const primary = () => live()[0]
  const copy = (from: string) => {
    const to = mkdir('copy')
    fs.cpSync(from, to, { recursive: true })
    return to
  }

  try {
    twins.push(await startB(mkdir('b')))
    for (const s of steps) {
      switch (s.op) {
        case 'write': {
          const on = s.on === 'b' ? live()[s.twin % Math.max(1, live().length)]?.node : fixed[s.on]
          if (on === undefined) break
          const key = `k${s.key}`
          const value = `v${n++}`
          const held = on.gossip.get(key)
          const w: { key: string; prev: unknown; acked: boolean; on: string; before: number; version?: number } = { key, prev: held.value, acked: false, on: s.on, before: held.version }
          writes.set(value, w)
          try {
            w.version = await on.set(key, value)
            w.acked = true
            winner.set(key, value)
          } catch (err) {
            // Refused (twin, taken back): never acknowledged.
            if ((err as { code?: string }).code !== 'twin') throw err
            refused.add(value)
          }
          break
        }
        case 'twin': {
          const from = s.from === 'fresh' || backups.length === 0 ? mkdir('b') : copy(s.from === 'clone' ? backups[backups.length - 1] : backups[0])
          twins.push(await startB(from))
          break
        }
        case 'backup':
        case 'restore': {
          const p = primary()
          if (p === undefined) break
          // A clean stop (SIGTERM), then the copy or the restore, then a start.
          p.stopped = true
          await p.node.close()
          for (const g of p.gates) g.destroy()
          if (s.op === 'backup') backups.push(copy(p.data))
          const data = s.op === 'restore' && backups.length > 0 ? copy(backups[0]) : p.data
          twins.splice(twins.indexOf(p), 1, await startB(data))
          break
        }
        case 'restart': {
          await fixed[s.who].close()
          fixed[s.who] = await start(s.who)
          break
        }
        case 'partition': {
          const p = live()[s.twin % Math.max(1, live().length)]
          for (const g of p?.gates ?? []) g.cut()
          break
        }
        case 'heal':
          for (const p of twins) for (const g of p.gates) g.release()
          break
      }
    }
    for (const p of twins) for (const g of p.gates) g.release()
    // Healed, the operator stops every twin but the eldest (docs/twins.md:
    // "stop one of them"), once the writes they acknowledged had the time
    // to flow (at least a few exchanges once healed).
    await until(() => fixed.a.peers().length + fixed.c.peers().length >= 2, 10_000, 'a and c to have peers again').catch(() => undefined)
    const healed = Date.now()
    await until(() => Date.now() - healed > 2000, 5000, 'a quiet time healed')
    for (const p of live().slice(1)) {
      p.stopped = true
      p.closing = p.node.close()
      await p.closing
    }
    // The nodes that must agree (b too once one process runs as it).
    const judged = () => {
      const out: [string, ScuttleNode][] = [['a', fixed.a], ['c', fixed.c]]
      if (live().length === 1) out.push(['b', live()[0].node])
      return out
    }
    const problems = () => {
      const found: string[] = []
      const nodes = judged()
      // Acknowledged writes no acknowledged write came after: the possible winners.
      const overwritten = new Set<unknown>()
      for (const w of writes.values()) {
        if (!w.acked) continue
        for (let p = w.prev, seen = 0; typeof p === 'string' && seen < writes.size && !overwritten.has(p); p = writes.get(p)?.prev, seen++) overwritten.add(p)
      }
      for (const key of winner.keys()) {
        const may = [...writes].filter(([v, w]) => w.key === key && w.acked && !overwritten.has(v)).map(([v]) => v)
        for (const [id, node] of nodes) {
          const held = node.gossip.get(key).value
          if (!may.includes(held as string)) found.push(`${id} holds ${key}=${JSON.stringify(held)}, not one of the acknowledged writes no acknowledged write came after (${may.join(', ')})`)
        }
      }
      const state = (node: ScuttleNode) =>
        JSON.stringify(
          [...Array(KEYS).keys()].map((k) => node.gossip.get(`k${k}`).value),
        )
      for (const [id, node] of nodes) for (let k = 0; k < KEYS; k++) if (refused.has(node.gossip.get(`k${k}`).value as string)) found.push(`${id} holds k${k}=${String(node.gossip.get(`k${k}`).value)}, a write answered twin`)
      const first = state(nodes[0][1])
      for (const [id, node] of nodes.slice(1)) if (state(node) !== first) found.push(`${id} disagrees with a: ${state(node)} vs ${first}`)
      return found
    }
    await until(() => problems().length === 0, 20_000, 'every acknowledged winner everywhere').catch(() => {
      const versions = [...winner.keys()].map((k) => `${k}: ${['a', 'b', 'c'].map((src) => `${src}@${fixed.a.gossip.history.mapping(src, k)?.version ?? '-'}=${String(fixed.a.gossip.history.mapping(src, k)?.value ?? '-')}`).join(' ')}`)
      const made = [...writes].map(([v, w]) => `${v}: ${w.key} on ${w.on} over ${String(w.prev)}@${w.before} at ${w.version ?? (w.acked ? '?' : 'refused')}`)
      throw new Error(`${problems().join('\n')}\nwrites: ${made.join('; ')}\nat a, by source: ${versions.join('; ')}\nschedule: ${JSON.stringify(steps)}\n${logs.filter((l) => process.env.TWINS_LOG === "all" || /twin|hand/.test(l)).slice(-(Number(process.env.TWINS_LOG_LINES ?? 40))).join('\n')}`)
    })
    // (Membership's keys are each node's own: left out of the model.)
    assert.ok([...winner.keys()].every((k) => !isMembershipKey(k)))
  } finally {
    for (const p of twins) await (p.closing ?? (p.stopped ? undefined : p.node.close().catch(() => undefined)))
    for (const id of ['a', 'c'] as const) await fixed[id].close().catch(() => undefined)
    for (const g of gates) g.destroy()
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  }
}

describe('property: twins against a model of acknowledged writes (docs/twins.md, issue 21)', function () {
  this.timeout(600_000)

  for (const [i, r] of REGRESSIONS.entries()) if (r.open !== true || process.env.TWINS_OPEN === '1') it(`regression ${i + 1}${r.open === true ? ' (open)' : ''}: ${r.why}`, () => run(r.steps, r.stopWait))

  it('every acknowledged write wins where it should, at every node, once healed; all agree', async () => {
    // A fixed seed by default (a suite run is repeatable as far as timing allows); TWINS_SEED=random for a new one.
    const seed = process.env.TWINS_SEED === 'random' ? undefined : Number(process.env.TWINS_SEED ?? 21)
    const numRuns = Number(process.env.TWINS_RUNS ?? 3)
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 4, maxLength: 14 }), async (steps) => {
        await run(steps)
      }),
      { numRuns, seed, endOnFailure: true },
    )
  })
})
