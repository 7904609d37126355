/**
 * Load: 10 node processes in a full mesh on 127.0.0.1, each taking 200
 * writes a second on stdin (5 s by default, 60 s with ADVERSARIAL_FULL=1).
 * Required: no acknowledged write is lost (every `set` answered ok is
 * readable, with its value, on every node at the end); the time to
 * converge after the load stops, the achieved write rate and the peak RSS
 * are recorded.
 */
import * as assert from 'assert'
import { Cluster, FULL, NodeProc, adversarialHooks, figure, pace, until } from './harness'

const NODES = 10
const RATE = 200
const SECONDS = FULL ? 60 : 5

describe('adversarial: load', function () {
  this.timeout((SECONDS + (FULL ? 480 : 60)) * 1000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'load')

  it(`${NODES} nodes in a full mesh, ${RATE} writes/s each for ${SECONDS} s; required: every acknowledged write is readable on every node at the end`, async () => {
    const nodes: NodeProc[] = []
    for (let i = 0; i < NODES; i++) nodes.push(await cluster.node(`n${i}`, ['--mtu', '500'], { connect: nodes.slice(), interval: 100 }))
    await until(
      async () => (await Promise.all(nodes.map((n) => n.peers()))).every((p) => p.length === NODES - 1),
      15_000,
      'the mesh to connect',
      100,
    )

    const acked = new Map<string, number>()
    const refused: string[] = []
    const pending: Promise<void>[] = []
    const start = Date.now()
    const batch = RATE / 10
    let sent = 0
    for (let tick = 0; tick < SECONDS * 10; tick++) {
      for (const [i, n] of nodes.entries()) {
        for (let j = 0; j < batch; j++) {
          const key = `n${i}-${tick}-${j}`
          const value = tick * 1000 + j
          sent++
          pending.push(
            n.set(key, value, 120_000).then((a) => {
              if (a.ok === true) acked.set(key, value)
              else refused.push(`${key}: ${String(a.error)}`)
            }),
          )
        }
      }
      await pace(Math.max(0, start + (tick + 1) * 100 - Date.now()))
    }
    await Promise.all(pending)
    const loadMs = Date.now() - start
    figure('writes_sent', sent)
    figure('writes_acknowledged', acked.size)
    figure('achieved_writes_per_s_per_node', Math.round(acked.size / NODES / (loadMs / 1000)))
    figure('load_ms', loadMs)
    assert.deepStrictEqual(refused.slice(0, 5), [], 'writes were refused under load')

    const end = Date.now()
    // Cheap first: each writer's last acknowledged key on every node (a source's updates arrive in
    // version order); then the full check of every acknowledged write, polled until it holds.
    const last = new Map<string, [string, number]>()
    for (const [key, value] of acked) last.set(key.split('-')[0], [key, value])
    await until(
      async () => {
        for (const n of nodes) for (const [key, value] of last.values()) if ((await n.get(key, 60_000)).value !== value) return false
        return true
      },
      FULL ? 300_000 : 30_000,
      "every node to hold every writer's last acknowledged write",
      FULL ? 1000 : 200,
    )
    figure('converge_after_load_ms', Date.now() - end)
    const missing = new Map<string, number>()
    try {
      await until(
        async () => {
          missing.clear()
          const states = await Promise.all(nodes.map((n) => n.state(60_000)))
          for (const [i, s] of states.entries()) {
            let m = 0
            for (const [key, value] of acked) if (s[key]?.value !== value) m++
            if (m > 0) missing.set(nodes[i].id, m)
          }
          return missing.size === 0
        },
        FULL ? 120_000 : 20_000,
        'every node to hold every acknowledged write',
        FULL ? 5000 : 1000,
      )
    } finally {
      figure('missing_at_end', Object.fromEntries(missing))
    }
    figure('verified_all_writes_after_load_ms', Date.now() - end)
    for (const n of nodes) assert.ok(n.alive, `${n.id} died under load`)
  })
})
