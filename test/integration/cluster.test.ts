/**
 * A cluster an operator runs, across processes on 127.0.0.1: five
 * `simple-scuttle node` processes started as the README starts them (each
 * dials those before it, --data, --cluster, one with --metrics), every one
 * lists all five as live; one is killed with SIGKILL and every other reports
 * it dead within the documented bound, then live again after its restart
 * (three times); a node of another cluster is refused by both sides and
 * never becomes a member; metrics are scraped over HTTP. The command line:
 * --help, --version, bad flags, operator errors without stack traces, and
 * the stdin commands.
 *
 * Detection times (from SIGKILL to each other node's `members` saying dead)
 * are written to test/artifacts/membership.json.
 */
import * as assert from 'assert'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as http from 'http'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import { BIN, Cluster, NodeProc, until } from '../adversarial/harness'
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

describe('the command line, for an operator', function () {
  this.timeout(60_000)
  const cluster = new Cluster()
  afterEach(() => cluster.cleanup())
  const run = (args: string[], input?: string) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, input })

  it('--help and --version print and exit 0; a bad flag or command says what is wrong and the usage, exit 2, without a stack trace', () => {
    for (const args of [['--help'], ['-h'], ['help'], ['node', '--help'], ['simulate', '--help'], ['simulate', '-h']]) {
      const r = run(args)
      assert.strictEqual(r.status, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stdout, /^usage: simple-scuttle/)
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }
    for (const args of [['--version'], ['-v']]) assert.strictEqual(run(args).stdout, `${pkg.version}\n`)
    const bad: [string[], RegExp][] = [
      [['--bogus'], /unknown option --bogus/],
      [['nope'], /unknown command "nope"/],
      [['node', '--id'], /--id needs a value/],
      [['node'], /--id is required/],
      [['node', '--id', 'a', '--what'], /unknown option --what/],
      [['node', '--id', 'a', 'extra'], /unexpected argument extra/],
      [['node', '--id', 'a', '--repair'], /--repair needs --data/],
      [['node', '--id', 'a', '--repair=yes'], /--repair takes no value/],
      [['node', '--id', 'a', '--listen', 'nowhere'], /--listen: not HOST:PORT/],
      [['node', '--id', 'a', '--interval', '0'], /--interval must be a positive number/],
      [['node', '--id', 'a', '--mtu', '1.5'], /--mtu must be a positive integer/],
      [['node', '--id', 'a', '--phi', 'x'], /--phi must be a positive number/],
      [['node', '--id', 'a', '--meta', 'zone'], /--meta must be a JSON object/],
      [['node', '--id', 'a', '--meta', '[1]'], /--meta must be a JSON object/],
      // Without keys a peer's late report is unsigned: it must not get a node to withdraw its writes.
      [['node', '--id', 'a', '--late', 'drop'], /--late drop needs --keys/],
      [['node', '--id', 'a', '--late', 'maybe'], /--late must be keep or drop/],
      [['simulate', '--nodes', 'x'], /--nodes needs an integer/],
      [['simulate', '--svg'], /--svg needs a value/],
    ]
    for (const [args, said] of bad) {
      const r = run(args)
      assert.strictEqual(r.status, 2, `${args.join(' ')} exited ${r.status}: ${r.stderr}`)
      assert.match(r.stderr, said)
      // One line for the error, one pointing to the usage (not 30 lines that scroll it away).
      assert.match(r.stderr, /\nsee: simple-scuttle( \w+)? --help\n$/)
      assert.strictEqual(r.stderr.trim().split('\n').length, 2, r.stderr)
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${args.join(' ')}: a stack trace`)
    }
  })

  it('operator errors say what to do, without stack traces: port in use, a locked or foreign data directory, bad names, an unwritable --svg (checked before the run)', async () => {
    const holder = net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
    const busy = (holder.address() as net.AddressInfo).port
    cluster.servers.push(holder)
    const dir = cluster.tmp()
    const a = await cluster.node('a', ['--data', dir])
    const cases: [string[], RegExp, number][] = [
      [['node', '--id', 'b', '--listen', `127.0.0.1:${busy}`], /cannot start: cannot listen on 127\.0\.0\.1:\d+: the address is in use/, 1],
      [['node', '--id', 'b', '--metrics', `127.0.0.1:${busy}`], /cannot start: cannot listen on 127\.0\.0\.1:\d+: the address is in use .*--metrics/, 1],
      [['node', '--id', 'a', '--data', dir], /cannot start: store: .* is in use by another store/, 1],
      [['node', '--id', 'b', '--data', dir], /cannot start: store: .* holds node "a", not "b"|is in use/, 1],
      [['node', '--id', 'b', '--cluster', ''], /cannot start: cluster name refused: it is empty/, 1],
      [['node', '--id', 'b', '--keys', path.join(dir, 'nowhere')], /cannot start: no such file or directory/, 1],
      [['simulate', '--rounds', '2', '--svg', path.join(dir, 'no', 'such', 'dir', 'x.svg')], /--svg: cannot write the plot: no such directory/, 2],
      [['simulate', '--rounds', '2', '--svg', dir], /--svg: cannot write the plot: .* is a directory/, 2],
      // found by an outside attack
      [['node', '--id', 'b', '--ws', `127.0.0.1:${busy}`], /cannot start: cannot listen on 127\.0\.0\.1:\d+: the address is in use .*choose another --ws\)/, 1],
      [['node', '--id', 'b', '--data', '/dev/null'], /cannot start: --data \/dev\/null: \/dev\/null is not a directory/, 1],
      [['node', '--id', 'b', '--interval', '3000000000'], /--interval must be a positive number of milliseconds, at most 2147483647/, 2],
      [['node', '--id', 'b\u001b[2J'], /--id must not hold control or invisible characters/, 2],
      [['node', '--id', 'b\u202e'], /--id must not hold control or invisible characters/, 2],
      [['node', '--id', 'b\u2028x'], /--id must not hold control or invisible characters/, 2],
      [['node', '--id', 'b\u3164'], /--id must not hold control or invisible characters/, 2],
      [['node', '--id', ' '], /--id must not hold control or invisible characters, nor start or end with a space/, 2],
    ]
    for (const [args, said, code] of cases) {
      const r = run(args)
      assert.strictEqual(r.status, code, `${args.join(' ')} exited ${r.status}: ${r.stderr}`)
      assert.match(r.stderr, said)
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${args.join(' ')}: a stack trace`)
    }
    // A foreign directory once a is gone (not locked any more).
    await a.stop()
    const r = run(['node', '--id', 'b', '--data', dir])
    assert.strictEqual(r.status, 1)
    assert.match(r.stderr, /\[b\] cannot start: store: .* holds node "a", not "b"/)
    // A directory that is a file.
    const file = path.join(cluster.tmp(), 'file')
    fs.writeFileSync(file, '')
    const s = run(['simulate', '--rounds', '2', '--svg', path.join(file, 'x.svg')])
    assert.strictEqual(s.status, 2)
    assert.match(s.stderr, /--svg: cannot write the plot: .*file is not a directory/)
    const d = run(['node', '--id', 'b', '--data', file])
    assert.strictEqual(d.status, 1)
    assert.match(d.stderr, /cannot start: --data .*file: .*file is not a directory/)
    assert.doesNotMatch(d.stderr, /\n\s+at /)
  })

  it('answers help, members, status, and refuses get without a key and bare-word values, saying why', async () => {
    const a = await cluster.node('a', ['--meta', '{"role":"test"}'])
    const help = (await a.cmd('help')).commands as { command: string }[]
    assert.deepStrictEqual(help.map((c) => c.command.split(' ')[0]), ['help', 'set', 'get', 'del', 'state', 'peers', 'members', 'status'])
    assert.deepStrictEqual(await a.cmd('get'), { ok: false, error: 'get needs a KEY: get KEY' })
    const bare = await a.cmd('set color blue')
    assert.strictEqual(bare.ok, false)
    assert.match(bare.error as string, /value is not JSON: blue \(values are JSON: a string is quoted, set color "blue"\)/)
    assert.match((await a.cmd('set color')).error as string, /a value is needed/)
    assert.match((await a.cmd('set')).error as string, /set needs a KEY and a JSON value/)
    // membership's own keys are not written by hand (an outside attack forged a's record this way)
    for (const line of ['set member/a {"address":"6.6.6.6:1","started":1}', 'set heartbeat/a 1000000000000', 'del heartbeat/a']) {
      assert.match((await a.cmd(line)).error as string, /keys under member\/ and heartbeat\/ are kept by membership/, line)
    }
    assert.match((await a.cmd('set k {"a":')).error as string, /value is not JSON/)
    assert.strictEqual((await a.cmd('set color "blue"')).ok, true)
    assert.strictEqual((await a.cmd('set n 3')).ok, true)
    assert.match((await a.cmd('bogus')).error as string, /unknown command "bogus"; commands: help, set KEY JSON/)
    const ms = await members(a)
    assert.strictEqual(ms.length, 1)
    assert.strictEqual(ms[0].status, 'live')
    assert.strictEqual(ms[0].self, true)
    const s = await a.cmd('status')
    assert.strictEqual(s.id, 'a')
    assert.strictEqual(s.cluster, 'default')
    assert.strictEqual(s.keys, 2)
    assert.deepStrictEqual(s.members, { live: 1, dead: 0 })
    assert.strictEqual(s.metrics, null)
    assert.strictEqual(s.data, null)
    assert.strictEqual(s.synced, true, 'no peers: nothing to wait for')
  })

  it('del KEY deletes on every node (a later set brings it back); status and peers say when peers are in sync, and the node logs it', async () => {
    const a = await cluster.node('a', ['--interval', '50'])
    const b = await cluster.node('b', ['--interval', '50'], { connect: [a] })
    assert.deepStrictEqual(await a.cmd('del'), { ok: false, error: 'del needs a KEY: del KEY' })
    assert.strictEqual((await a.cmd('set color "blue"')).ok, true)
    await until(async () => (await b.cmd('get color')).value === 'blue', 10_000, 'b to take color')
    await until(async () => (await b.cmd('status')).synced === true, 10_000, 'b to be in sync')
    // Heartbeats keep coming: peers is read until it shows an exchange that left both in sync.
    type PeerLine = { id: string; synced: boolean; behind: { them: number; us: number } }
    let peers: PeerLine[] = []
    await until(
      async () => {
        peers = (await b.cmd('peers')).peers as PeerLine[]
        return peers.length === 1 && peers[0].synced
      },
      10_000,
      'peers to show a in sync',
    )
    // In sync with heartbeats running: what was missing either way went whole in the last exchange, and was only heartbeats.
    assert.deepStrictEqual(peers.map((p) => [p.id, p.synced]), [['a', true]])
    assert.ok(peers[0].behind.them + peers[0].behind.us < 100, JSON.stringify(peers[0].behind))
    assert.match(b.stderr, /in sync with every connected peer \(a\)/)
    const del = await b.cmd('del color')
    assert.strictEqual(del.ok, true)
    assert.strictEqual(typeof del.version, 'number')
    assert.deepStrictEqual(await b.cmd('get color'), { key: 'color', value: null, version: null })
    await until(async () => (await a.cmd('get color')).version === null, 10_000, 'the delete to reach a')
    assert.ok(!('color' in ((await a.cmd('state')).state as object)))
    assert.strictEqual((await a.cmd('set color "green"')).ok, true)
    await until(async () => (await b.cmd('get color')).value === 'green', 10_000, 'a later set to bring color back on b')
    // A settled pair logs "in sync" once per set of peers, not once per write.
    await until(async () => (await a.cmd('status')).synced === true && (await b.cmd('status')).synced === true, 10_000, 'both in sync')
    assert.strictEqual(b.count(/in sync with every connected peer/), 1)
  })
})
