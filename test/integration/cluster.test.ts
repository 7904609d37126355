/**
 * A cluster an operator runs, across processes on 127.0.0.1: five
 * `simple-scuttle node` processes started as the README starts them (each
 * dials those before it, --data, --cluster, one with --metrics), every one
 * lists all five as live; one is killed with SIGKILL and every other reports
 * it dead within the documented bound, then live again after its restart
 * (three times); a node of another cluster is refused by both sides and
 * never becomes a member; metrics are scraped over HTTP. (The command line
 * itself is test/bin/simple-scuttle.test.ts.)
 *
 * Detection times (from SIGKILL to each other node's `members` saying dead)
 * are written to test/artifacts/membership.json.
 */
import * as assert from 'assert'
import * as http from 'http'
import * as net from 'net'
import * as path from 'path'
import { Cluster, NodeProc, until } from '../adversarial/harness'
import { figure } from '../membership-sim'

interface MemberLine {
  id: string
  status: 'live' | 'dead'
  address: string | null
  heartbeat: number | null
  last_heartbeat_ms: number | null
  interval_ms: number | null
  phi: number
  started: number | null
  self: boolean
}

async function members(p: NodeProc): Promise<MemberLine[]> {
  return (await p.cmd('members')).members as MemberLine[]
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve) => {
      const s = net.createServer()
      s.listen(0, '127.0.0.1', () => resolve(s))
    })),
  )
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  return ports
}

export function scrape(port: number, what = '/metrics'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: what }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('scrape timed out')))
  })
}

/** The value of a metric line `name{labels} value` in Prometheus text. */
export function metric(text: string, name: string): number | null {
  const escaped = name.replace(/[{}"=.]/g, (c) => `\\${c}`)
  const m = new RegExp(`^${escaped} ([0-9.e+-]+)$`, 'm').exec(text)
  return m === null ? null : Number(m[1])
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

describe('a five-node cluster (processes on 127.0.0.1)', function () {
  this.timeout(90_000)
  const cluster = new Cluster()
  afterEach(() => cluster.cleanup())

  it('lists its members; detects a SIGKILLed node within the bound and its return, three times; refuses another cluster; serves metrics', async () => {
    const N = 5
    const INTERVAL = 50
    const THRESHOLD = 8
    const ports = await freePorts(N + 2)
    const metricsPort = ports[N + 1]
    const root = cluster.tmp('scuttle-cluster-')
    // As in the README: node i dials every node before it.
    const argsOf = (i: number) => [
      '--listen',
      `127.0.0.1:${ports[i]}`,
      ...Array.from({ length: i }, (_, j) => ['--connect', `127.0.0.1:${ports[j]}`]).flat(),
      '--data',
      path.join(root, `n${i}`),
      '--interval',
      String(INTERVAL),
      '--cluster',
      'demo',
      ...(i === 0 ? ['--metrics', `127.0.0.1:${metricsPort}`] : []),
      ...(i === 1 ? ['--meta', '{"zone":"b"}'] : []),
    ]
    const spawn = (i: number) => {
      const p = new NodeProc(`n${i}`, argsOf(i))
      cluster.procs.push(p)
      return p
    }
    const procs = Array.from({ length: N }, (_, i) => spawn(i))
    await Promise.all(procs.map((p) => p.ready()))
    const allLive = async (ps: NodeProc[], n: number) =>
      (await Promise.all(ps.map(members))).every((ms) => ms.length === n && ms.every((m) => m.status === 'live'))
    await until(() => allLive(procs, N), 20_000, 'every node to list five live members', 50)
    const listed = await members(procs[2])
    assert.deepStrictEqual(listed.map((m) => m.id), ['n0', 'n1', 'n2', 'n3', 'n4'])
    assert.strictEqual(listed.find((m) => m.id === 'n3')?.address, `127.0.0.1:${ports[3]}`)
    assert.deepStrictEqual((listed.find((m) => m.id === 'n1') as unknown as { meta: unknown }).meta, { zone: 'b' })
    // Heartbeats are carried, not stored apart: state shows only the user's keys.
    assert.strictEqual((await procs[0].cmd('set color "blue"')).ok, true)
    await until(async () => (await procs[3].get('color')).value === 'blue', 10_000, 'a write to spread')
    assert.deepStrictEqual(Object.keys((await procs[3].cmd('state')).state as object), ['color'])

    // Kill, detect, restart, see it back: three times, different victims.
    const detection: number[] = []
    const returns: number[] = []
    for (const victim of [3, 1, 4]) {
      const observers = procs.filter((_, i) => i !== victim)
      const before = await Promise.all(observers.map(async (o) => (await members(o)).find((m) => m.id === `n${victim}`) as MemberLine))
      for (const m of before) assert.strictEqual(m.status, 'live')
      procs[victim].kill()
      const killed = Date.now()
      await procs[victim].exited
      const seenDead = new Map<string, number>()
      await until(
        async () => {
          await Promise.all(
            observers.map(async (o) => {
              if (seenDead.has(o.id)) return
              const m = (await members(o)).find((x) => x.id === `n${victim}`)
              if (m?.status === 'dead') seenDead.set(o.id, Date.now() - killed)
            }),
          )
          return seenDead.size === observers.length
        },
        20_000,
        `every node to report n${victim} dead`,
        10,
      )
      // The documented bound: threshold x ln 10 x the mean gap each observer
      // measured (interval_ms), after the last heartbeat it heard (at most a
      // few intervals before the kill), checked every interval / 2; plus the
      // polling of this test and process scheduling.
      observers.forEach((o, k) => {
        const bound = THRESHOLD * Math.LN10 * (before[k].interval_ms as number) + INTERVAL / 2 + 3 * INTERVAL + 250
        const took = seenDead.get(o.id) as number
        assert.ok(took <= bound, `${o.id} reported n${victim} dead after ${took} ms; bound ${Math.round(bound)} ms`)
        detection.push(took)
      })
      assert.match(observers[0].stderr, new RegExp(`member n${victim} is dead at 127\\.0\\.0\\.1:${ports[victim]}: no heartbeat for \\d+ ms`))
      // It comes back from its data directory: the same member, live again, a new incarnation.
      const started = Date.now()
      procs[victim] = spawn(victim)
      await procs[victim].ready()
      const seenLive = new Map<string, number>()
      await until(
        async () => {
          await Promise.all(
            observers.map(async (o) => {
              if (seenLive.has(o.id)) return
              const ms = (await members(o)).filter((x) => x.id === `n${victim}`)
              assert.strictEqual(ms.length, 1, 'one member, not two')
              if (ms[0].status === 'live' && ms[0].started !== before[0].started) seenLive.set(o.id, Date.now() - started)
            }),
          )
          return seenLive.size === observers.length
        },
        20_000,
        `every node to report n${victim} live again`,
        10,
      )
      returns.push(...seenLive.values())
      assert.match(observers[0].stderr, new RegExp(`member n${victim} restarted \\(a new incarnation at 127\\.0\\.0\\.1:${ports[victim]}\\)`))
      await until(() => allLive(procs, N), 20_000, 'all five live again', 50)
    }
    figure('processes', {
      runs: 3,
      observers_per_run: N - 1,
      interval_ms: INTERVAL,
      threshold: THRESHOLD,
      detection_ms: detection,
      detection_ms_median: median(detection),
      detection_ms_worst: Math.max(...detection),
      live_again_ms_from_spawn: returns,
      live_again_ms_median: median(returns),
      live_again_ms_worst: Math.max(...returns),
    })

    // A node of another cluster that can reach this one: refused by both sides, never a member.
    const other = new NodeProc('x9', ['--listen', `127.0.0.1:${ports[N]}`, '--connect', `127.0.0.1:${ports[0]}`, '--interval', String(INTERVAL), '--cluster', 'other'])
    cluster.procs.push(other)
    await other.ready()
    await until(() => /peer x9 is of cluster "other", this node of "demo": refused/.test(procs[0].stderr), 10_000, 'n0 to refuse x9')
    await until(() => /peer n0 is of cluster "demo", this node of "other": refused/.test(other.stderr), 10_000, 'x9 to refuse n0')
    assert.deepStrictEqual((await members(other)).map((m) => m.id), ['x9'])
    assert.ok((await members(procs[0])).every((m) => m.id !== 'x9'))
    assert.deepStrictEqual(await other.peers(), [])

    // Metrics, over HTTP on 127.0.0.1.
    const { status, body } = await scrape(metricsPort)
    assert.strictEqual(status, 200)
    assert.strictEqual(metric(body, 'scuttle_members{status="live"}'), 5)
    assert.strictEqual(metric(body, 'scuttle_members{status="dead"}'), 0)
    assert.strictEqual(metric(body, 'scuttle_peers'), 4)
    assert.ok((metric(body, 'scuttle_refused_total{code="other_cluster"}') ?? 0) >= 1, 'the refused hello is counted')
    for (const name of ['scuttle_exchanges_total{role="asked"}', 'scuttle_updates_sent_total', 'scuttle_updates_received_total', 'scuttle_bytes_sent_total', 'scuttle_bytes_received_total']) {
      assert.ok((metric(body, name) ?? 0) > 0, `${name} counts`)
    }
    assert.ok((metric(body, 'scuttle_digest_entries_count{direction="received"}') ?? 0) > 0)
    const staleness = metric(body, 'scuttle_slowest_peer_staleness_seconds') as number
    assert.ok(staleness >= 0 && staleness < 5, `staleness ${staleness}`)
    assert.match(body, /^process_resident_memory_bytes \d+/m)
    assert.strictEqual((await scrape(metricsPort, '/')).status, 404)
    const status0 = await procs[0].cmd('status')
    assert.strictEqual(status0.cluster, 'demo')
    assert.deepStrictEqual(status0.members, { live: 5, dead: 0 })
    assert.strictEqual(status0.metrics, `127.0.0.1:${metricsPort}`)

    // SIGTERM: every node flushes and exits 0.
    const codes = await Promise.all([...procs, other].map((p) => p.stop()))
    assert.deepStrictEqual(codes, [0, 0, 0, 0, 0, 0], procs.map((p) => p.tail(300)).join('\n'))
  })
})
