/**
 * Many sources (defect 5). A digest naming more than 1,024 sources was
 * refused (as "names too many sources") by any node that knew fewer, and the
 * connection dropped: a node holding 1,100 sources could never sync a peer
 * or a newcomer (reconnect loop). Required: a peer connected before, and a
 * newcomer, sync from a node holding 1,100 sources (10,000 with
 * ADVERSARIAL_FULL=1); the time is recorded.
 */
import * as assert from 'assert'
import { Cluster, DONE, FULL, NodeProc, adversarialHooks, figure, line, until } from './harness'

describe('adversarial: many sources (defect 5)', function () {
  this.timeout(FULL ? 180_000 : 40_000)
  const cluster = new Cluster()
  adversarialHooks(cluster, 'sources')

  /** Feed `a` one key from each of `n` sources, in answers of 500 updates, as a relay peer would. */
  async function feed(a: NodeProc, n: number): Promise<number> {
    const start = Date.now()
    const f = await cluster.attacker(a.port, 'relay')
    f.keep = false
    for (let i = 0; i < n; i += 500) {
      let text = ''
      for (let j = i; j < Math.min(n, i + 500); j++) text += line({ key: `s${j}/k`, value: j, source_id: `s${j}`, version: 1 })
      await f.send(text + DONE)
    }
    await until(async () => Object.keys(await a.state(20_000)).length >= n, 30_000, `a to hold ${n} sources' keys`, 250)
    f.destroy()
    return Date.now() - start
  }

  async function sync(n: number): Promise<void> {
    const a = await cluster.node('a', ['--mtu', '200'])
    const b = await cluster.node('b', ['--mtu', '200'], { connect: [a] })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect to a')
    figure('sources', n)
    figure('feed_ms', await feed(a, n))
    const start = Date.now()
    const c = await cluster.node('newcomer', ['--mtu', '200'], { connect: [a] })
    const deadline = FULL ? 120_000 : 8_000
    const count = async (p: NodeProc) => Object.keys(await p.state(20_000)).length
    let held = { b: 0, newcomer: 0 }
    try {
      await until(
        async () => {
          held = { b: await count(b), newcomer: await count(c) }
          return held.b >= n && held.newcomer >= n
        },
        deadline,
        `b (connected before) and a newcomer to sync ${n} sources from a`,
        250,
      )
    } catch (err) {
      figure('held_at_deadline', held)
      figure('newcomer_drops', c.count(/closing connection/))
      throw new Error(`${(err as Error).message}: b holds ${held.b}, the newcomer ${held.newcomer} of ${n}; newcomer log:\n${c.tail(300)}`)
    }
    figure('sync_ms', Date.now() - start)
    assert.ok(a.alive && b.alive && c.alive)
  }

  it('a node holding 1,100 sources: required: a peer connected before and a newcomer both sync all of them', async () => {
    await sync(1100)
  })

  if (FULL) {
    it('(ADVERSARIAL_FULL) a node holding 10,000 sources: required: a peer connected before and a newcomer both sync all of them', async () => {
      await sync(10_000)
    })
  }
})
