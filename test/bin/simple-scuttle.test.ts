/**
 * The command line, for an operator (bin/simple-scuttle.ts and the
 * commands it runs): --help, --version, bad flags, operator errors without
 * stack traces, and the stdin commands of `simple-scuttle node`.
 */
import * as assert from 'assert'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as net from 'net'
import * as path from 'path'
import { BIN, Cluster, until } from '../adversarial/harness'

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
      // (It said only "store: dir must be a path", naming no flag.)
      [['node', '--id', 'a', '--data', ''], /--data needs a directory: give a path, or leave --data out to keep state in memory/],
      // (It said "the value is not JSON:  (a string is quoted: '""')".)
      [['set', 'k', '-'], /set k -: no value on stdin/],
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
      const r = run(args, '')
      assert.strictEqual(r.status, 2, `${args.join(' ')} exited ${r.status}: ${r.stderr}`)
      assert.match(r.stderr, said)
      // One line for the error, one pointing to the usage (not 30 lines that scroll it away).
      assert.match(r.stderr, /\nsee: simple-scuttle( \w+)? --help\n$/)
      assert.strictEqual(r.stderr.trim().split('\n').length, 2, r.stderr)
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${args.join(' ')}: a stack trace`)
    }
  })

  it('(found by the outside attack, red team 21j) the client sent invalid UTF-8 (a Latin-1 file on stdin, a byte in a key or value argument) as U+FFFD and answered ok, where the endpoint refuses the same bytes (400 bad_request); required: refused in one line, exit 2, before any node is asked', () => {
    // No node listens there: a refusal that came from the node would say it cannot reach it.
    const node = ['--node', '127.0.0.1:9']
    const latin1 = spawnSync(process.execPath, [BIN, 'set', 'k', '-', ...node], { encoding: 'utf8', input: Buffer.from([0x22, 0xe9, 0x74, 0xe9, 0x22]), timeout: 20_000 })
    // Arguments: Node cannot spawn with bytes that are not UTF-8, a shell can.
    const arg = (key: string, value: string) => spawnSync('sh', ['-c', `exec "$0" "$1" set "$(printf '${key}')" "$(printf '${value}')" ${node.join(' ')}`, process.execPath, BIN], { encoding: 'utf8', timeout: 20_000 })
    for (const [r, said] of [
      [latin1, /set k -: stdin is not valid UTF-8/],
      [arg('k\\377', '1'), /set: the key holds U\+FFFD/],
      [arg('k', '"\\303("'), /set: the value holds U\+FFFD/],
    ] as const) {
      assert.strictEqual(r.status, 2, r.stderr)
      assert.match(r.stderr, said)
      assert.strictEqual(r.stderr.trim().split('\n').length, 2, r.stderr)
    }
    // A U+FFFD written as JSON's escape is a character like any other: only the connection fails here.
    const escaped = run(['set', 'k', '"\\ufffd"', ...node])
    assert.strictEqual(escaped.status, 1, escaped.stderr)
    assert.match(escaped.stderr, /cannot reach node/)
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
      // (third outside red team) the line said no fix
      [['node', '--id', 'a', '--data', dir], /cannot start: store: .* is in use by another store: another process has it open .*stop it, or give this node another --data/, 1],
      [['node', '--id', 'b', '--data', dir], /cannot start: store: .* holds node "a", not "b"|is in use/, 1],
      [['node', '--id', 'b', '--cluster', ''], /cannot start: cluster name refused: it is empty/, 1],
      [['node', '--id', 'b', '--keys', path.join(dir, 'nowhere')], /cannot start: --keys .*nowhere: cannot be read \(no such directory\)/, 1],
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
    assert.deepStrictEqual(await a.cmd('get'), { ok: false, code: 'invalid', error: 'get needs a KEY: get KEY' })
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
    const ms = (await a.cmd('members')).members as { status: string; self: boolean }[]
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
    // What status and peers answer is what docs/operations.md says they answer (status lacked its documented "refused").
    const docs = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'operations.md'), 'utf8')
    // The fields of the JSON object in a command's row (`peers`: of each peer), nested objects' fields left out.
    const fields = (command: string): string[] => {
      const row = new RegExp(`^\\| \`${command}\` \\| \`([^\`]+)\``, 'm').exec(docs)?.[1] ?? ''
      const body = command === 'peers' ? (/\[\{(.*)\}\]/.exec(row)?.[1] ?? '') : row.slice(1, -1)
      return [...body.replace(/\{[^{}]*\}/g, '').matchAll(/"([a-z_]+)"/g)].map((m) => m[1])
    }
    assert.deepStrictEqual(Object.keys(s).sort(), fields('status').sort())
    const b = await cluster.node('b', ['--interval', '50'], { connect: [a] })
    await until(async () => ((await b.cmd('peers')).peers as unknown[]).length === 1, 10_000, 'b to connect')
    const peer = ((await b.cmd('peers')).peers as Record<string, unknown>[])[0]
    assert.deepStrictEqual(Object.keys(peer).sort(), fields('peers').sort())
  })

  it('del KEY deletes on every node (a later set brings it back); status and peers say when peers are in sync, and the node logs it', async () => {
    const a = await cluster.node('a', ['--interval', '50'])
    const b = await cluster.node('b', ['--interval', '50'], { connect: [a] })
    assert.deepStrictEqual(await a.cmd('del'), { ok: false, code: 'invalid', error: 'del needs a KEY: del KEY' })
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
    assert.match(b.stderr, /in sync with every peer that answers \(a\)/)
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
    assert.strictEqual(b.count(/in sync with every peer that answers/), 1)
  })
})
