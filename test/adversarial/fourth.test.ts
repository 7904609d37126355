/**
 * What the fourth outside red team on issue 21 left open: the value limit
 * counted in bytes at the admin endpoint and in characters everywhere else;
 * a handover session opened by a peer never refused as a twin; an HTTP
 * request on the peer port, a missing --keys or token file and a --data
 * under /proc said without the cause or the fix; unknown SCUTTLE_*
 * variables ignored without a word; `Authorization: bearer` refused.
 */
import * as assert from 'assert'
import { spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as http from 'http'
import * as net from 'net'
import * as os from 'os'
import * as path from 'path'
import type { Duplex } from 'readable-stream'
import { Gossip, MAX_VALUE_LENGTH, base } from '../../lib'
import { startNode, type ScuttleNode } from '../../lib/node'
import { AdminServer } from '../../lib/node/admin'
import { Session, type SessionError } from '../../lib/wire/session'
import { adminRun, command, parseArgs } from '../../bin/node'
import { clientCommand } from '../../bin/client'
import { BIN, until } from './harness'

const lww = base.resolution.lww_vs_current_vers

// A request to the admin endpoint at `port`.
function request(port: number, method: string, p: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const h = body === undefined ? headers : { 'content-type': 'application/json', ...headers }
    const r = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      let text = ''
      res.on('data', (b: Buffer) => (text += String(b)))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    r.on('error', reject)
    r.end(body)
  })
}

// `simple-scuttle ARGS` as a process.
function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] })
  return { status: r.status, stderr: r.stderr }
}

describe('adversarial: fourth outside red team (issue 21)', function () {
  this.timeout(30_000)
  const dirs: string[] = []
  const closers: (() => Promise<void> | void)[] = []
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-fourth-'))
    dirs.push(d)
    return d
  }
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c()
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })

  // A node (with `data`, if given) behind an admin endpoint.
  async function served(data?: string, token?: string): Promise<{ node: ScuttleNode; admin: AdminServer; at: string[]; lines: string[] }> {
    const lines: string[] = []
    const node = await startNode({ id: 'a', resolve: lww, data, listen: { host: '127.0.0.1', port: 0 }, log: (l) => lines.push(l) })
    const admin = await AdminServer.start(
      { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: (r) => adminRun(node, r) },
      { at: { host: '127.0.0.1', port: 0 }, token, log: () => undefined },
    )
    closers.push(() => node.close())
    closers.push(() => admin.close())
    return { node, admin, at: ['--node', `127.0.0.1:${admin.address().port}`], lines }
  }

  async function client(name: string, ...args: string[]): Promise<{ code: number; said: string }> {
    const said: string[] = []
    const code = await clientCommand(name, args, (s) => said.push(s), (s) => said.push(s))
    return { code, said: said.join('') }
  }

  it('attack (limits.sh): a value of 400,000 "€" (400,002 characters of JSON, 1.2 MB of UTF-8) was taken by set, stdin and the wire but refused 413 by the admin endpoint and the CLI ("at most 1048576 bytes"); required: one limit, MAX_VALUE_LENGTH characters of JSON, on every path: the longest value passes set, stdin, the admin endpoint, the CLI, the wire and the disk, and one character more is refused on each with code invalid and the same reason', async () => {
    const data = tmp()
    const { node, admin, at } = await served(data)
    // The longest value: MAX_VALUE_LENGTH characters of JSON, three bytes each in UTF-8 (3 MB).
    const longest = '€'.repeat(MAX_VALUE_LENGTH - 2)
    const over = '€'.repeat(MAX_VALUE_LENGTH - 1)
    assert.strictEqual(JSON.stringify(longest).length, MAX_VALUE_LENGTH)
    const g = new Gossip('g', { resolve: lww })
    g.set('k', longest)
    assert.throws(() => g.set('k', over), new RegExp(`longer than ${MAX_VALUE_LENGTH} characters`))

    const stdin = (await command(node, `set s ${JSON.stringify(longest)}`)) as { ok?: boolean; error?: string }
    assert.strictEqual(stdin.ok, true, JSON.stringify(stdin).slice(0, 300))
    const put = await request(admin.address().port, 'PUT', '/v1/kv/p', JSON.stringify(longest))
    assert.strictEqual(put.status, 200, put.body.slice(0, 300))
    const set = await client('set', ...at, 'c', JSON.stringify(longest))
    assert.strictEqual(set.code, 0, set.said.slice(0, 300))
    for (const k of ['s', 'p', 'c']) assert.strictEqual(node.gossip.get(k).value, longest, k)
    // As a process: an argument holds at most 128 KiB on Linux (E2BIG past it), so the client reads the value from stdin with "-".
    const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'set', 'piped', '-', ...at], { stdio: ['pipe', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (b: Buffer) => (stderr += String(b)))
      child.on('close', (code) => resolve({ code, stderr }))
      child.stdin.on('error', () => undefined)
      child.stdin.end(`${JSON.stringify(longest)}\n`)
    })
    assert.strictEqual(piped.code, 0, piped.stderr)
    assert.strictEqual(node.gossip.get('piped').value, longest)

    // One character more: refused alike on every path, nothing stored.
    const reason = new RegExp(`longer than ${MAX_VALUE_LENGTH} characters as JSON`)
    const stdinOver = (await command(node, `set s2 ${JSON.stringify(over)}`)) as { code?: string; error?: string }
    assert.strictEqual(stdinOver.code, 'invalid', JSON.stringify(stdinOver).slice(0, 300))
    assert.match(String(stdinOver.error), reason)
    const putOver = await request(admin.address().port, 'PUT', '/v1/kv/p2', JSON.stringify(over))
    assert.strictEqual(putOver.status, 400, putOver.body.slice(0, 300))
    assert.strictEqual(JSON.parse(putOver.body).code, 'invalid')
    assert.match(JSON.parse(putOver.body).error, reason)
    const setOver = await client('set', ...at, 'c2', JSON.stringify(over))
    assert.strictEqual(setOver.code, 1, setOver.said.slice(0, 300))
    assert.match(setOver.said, /\[invalid\]/)
    assert.match(setOver.said, reason)
    for (const k of ['s2', 'p2', 'c2']) assert.strictEqual(node.gossip.get(k).value, null, k)

    // The wire (the default binary codec) carries it to a peer, and the disk keeps it.
    const b = await startNode({ id: 'b', resolve: lww, listen: { host: '127.0.0.1', port: 0 }, connect: [node.address()], interval: 50, log: () => undefined })
    closers.push(() => b.close())
    await until(() => b.gossip.get('p').value === longest && b.gossip.get('c').value === longest, 20_000, 'b to hold the longest values')
    await b.close()
    await admin.close()
    await node.close()
    const again = await startNode({ id: 'a', resolve: lww, data, listen: { host: '127.0.0.1', port: 0 }, log: () => undefined })
    closers.push(() => again.close())
    assert.strictEqual(again.gossip.get('p').value, longest)
  })

  it('attack (handover.py): a socket that was never refused as a twin opened a handover session ("handover":true) and had the node write its keys as the node\'s own; required: refused with code handover, nothing written', async () => {
    const { node, lines } = await served()
    const g = new Gossip('mallory', { resolve: lww })
    const socket = net.connect(node.address().port, '127.0.0.1')
    closers.push(() => void socket.destroy())
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    const s = new Session(g, socket as unknown as Duplex, { cluster: 'default', codecs: ['ndjson'], started: Date.now(), handover: true })
    const answers: unknown[] = []
    let refused: SessionError | null = null
    s.on('refused', (err: SessionError) => (refused = err))
    s.on('handover', () => {
      s.send({ key: 'planted', value: 'by mallory' })
      s.send({ end: true })
    })
    s.on('message', (m: unknown) => answers.push(m))
    await until(() => refused !== null || answers.length > 0 || socket.destroyed, 10_000, 'the node to answer the handover')
    assert.deepStrictEqual(answers, [])
    assert.strictEqual(node.gossip.get('planted').value, null)
    const err = refused as SessionError | null
    assert.strictEqual(err?.peerCode, 'handover', String(err?.message))
    assert.match(String(err?.message), /refused as a twin/)
    assert.strictEqual(node.stats().refused.handover, 1)
    assert.ok(!lines.some((l) => /took \d+ writes handed over/.test(l)), lines.join('\n'))
  })

  it('attack (peerhttp.sh): `curl http://HOST:PEER_PORT/v1/status` got "Received HTTP/0.9 when not allowed" and the node logged "did not start with a hello"; required: an HTTP answer in one line saying this is the peer port and the admin endpoint is --admin, and a log line that says so', async () => {
    const { node, lines } = await served()
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(node.address().port, '127.0.0.1')
      let got = ''
      s.on('data', (b: Buffer) => (got += String(b)))
      s.on('error', reject)
      s.on('close', () => resolve(got))
      s.write('GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n')
    })
    assert.match(answer, /^HTTP\/1\.1 400 /)
    const body = answer.split('\r\n\r\n')[1] ?? ''
    assert.strictEqual(body.trim().split('\n').length, 1, body)
    assert.match(body, /peer port.*--admin/)
    await until(() => lines.some((l) => /HTTP request.*peer port.*--admin/.test(l)), 5000, `a log line naming the mistake:\n${lines.join('\n')}`)
    // Through node's own HTTP client, as curl: the status and the line.
    const r = await request(node.address().port, 'GET', '/health')
    assert.strictEqual(r.status, 400)
    assert.match(r.body, /peer port/)
    // The client pointed at the peer port says so, in one line.
    const wrong = await client('status', '--node', `127.0.0.1:${node.address().port}`)
    assert.strictEqual(wrong.code, 1)
    assert.strictEqual(wrong.said.trim().split('\n').length, 1, wrong.said)
    assert.match(wrong.said, /refused: HTTP 400 this is the peer port .*--admin \(default 7947\); .*--metrics$/m)
    // Peers still open sessions at once.
    const b = await startNode({ id: 'b', resolve: lww, listen: { host: '127.0.0.1', port: 0 }, connect: [node.address()], interval: 50, log: () => undefined })
    closers.push(() => b.close())
    await node.set('x', 1)
    await until(() => b.gossip.get('x').value === 1, 10_000, 'b to hold x')
  })

  it('attack (files.sh): a missing --admin-token-file or --token-file said "(ENOENT)"; a missing --keys said what but not what to do; --data /proc/nope said "/proc: ENOENT (a read-only or special file system?)"; required: one line each naming the option, the path, the cause in words and what to do', async () => {
    const dir = tmp()
    const cases: [string[], RegExp, number][] = [
      [['node', '--id', 'a', '--listen', '127.0.0.1:0', '--admin-token-file', path.join(dir, 'no-token')], /--admin-token-file .*no-token: cannot be read \(no such file\): write a token of 16 characters or more/, 2],
      [['status', '--token-file', path.join(dir, 'no-token')], /--token-file .*no-token: cannot be read \(no such file\).*the node's --admin-token-file/, 2],
      [['node', '--id', 'a', '--listen', '127.0.0.1:0', '--keys', path.join(dir, 'no-keys')], /--keys .*no-keys: cannot be read \(no such directory\).*make it.*a\.key\.pem/, 1],
      [['node', '--id', 'a', '--listen', '127.0.0.1:0', '--data', '/proc/nope'], /--data \/proc\/nope: .*\/proc is on a proc file system, which cannot hold a database: choose a directory on a disk/, 1],
      [['node', '--id', 'a', '--listen', '127.0.0.1:0', '--data', '/proc'], /--data \/proc: .*proc file system, which cannot hold a database/, 1],
    ]
    const missed: string[] = []
    for (const [args, re, code] of cases) {
      const r = cli(args)
      const lines = r.stderr.trim().split('\n')
      if (r.status !== code || !re.test(r.stderr) || /ENOENT|\n\s+at /.test(r.stderr) || lines.length > (code === 2 ? 2 : 1)) missed.push(`${args.join(' ')}: exit ${r.status}: ${r.stderr}`)
    }
    assert.deepStrictEqual(missed, [])
  })

  it('attack (env.sh): SCUTTLE_LISTN=127.0.0.1:7001 (a typo) was ignored without a word, while an unknown key in the --config file exits 2; required: said in one warn line naming the variable, a near match and the known ones (not an exit: the environment is shared, and Kubernetes sets SCUTTLE_SERVICE_HOST, SCUTTLE_PORT, ... in every pod of a namespace with a Service named scuttle; those are not warned of)', async () => {
    const env = { SCUTTLE_LISTN: '127.0.0.1:7001', SCUTTLE_ID: 'b', SCUTTLE_NODE: '127.0.0.1:7947', SCUTTLE_ADMIN_TOKEN: 'x'.repeat(16), SCUTTLE_SERVICE_HOST: '10.0.0.1', SCUTTLE_PORT: 'tcp://10.0.0.1:7946', SCUTTLE_PORT_7946_TCP_ADDR: '10.0.0.1' }
    const args = parseArgs(['--id', 'a'], env)
    assert.strictEqual(args.id, 'a')
    assert.strictEqual(args.warnings?.length, 1, JSON.stringify(args.warnings))
    assert.match(args.warnings?.[0] ?? '', /^unknown environment variable SCUTTLE_LISTN \(did you mean SCUTTLE_LISTEN\?\): ignored; .*SCUTTLE_CONNECT/)
    assert.doesNotMatch(args.warnings?.[0] ?? '', /SCUTTLE_SERVICE_HOST|SCUTTLE_PORT\b/)
    assert.deepStrictEqual(parseArgs(['--id', 'a'], { SCUTTLE_ID: 'b' }).warnings ?? [], [])
    // The file's unknown key stays a usage error, now with its near match too.
    const file = path.join(tmp(), 'c.json')
    fs.writeFileSync(file, '{"id": "a", "lsten": "127.0.0.1:7001"}')
    assert.throws(() => parseArgs(['--config', file], {}), /unknown setting "lsten" \(did you mean "listen"\?\)/)
    // As a process: the node runs, and says so at warn.
    const child = spawn(process.execPath, [BIN, 'node', '--id', 'a', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
    closers.push(() => void child.kill('SIGKILL'))
    let stderr = ''
    child.stderr.on('data', (b: Buffer) => (stderr += String(b)))
    await until(() => /listening on/.test(stderr), 10_000, `the node to listen:\n${stderr}`)
    assert.match(stderr, /warn \[a\] unknown environment variable SCUTTLE_LISTN/)
    assert.strictEqual(child.exitCode, null)
  })

  it('attack (bearer.sh): `Authorization: bearer TOKEN` (the scheme in lower case, as RFC 9110 11.1 allows) was refused 401; required: accepted, as BEARER and Bearer with two spaces; a wrong token still refused', async () => {
    const token = 't'.repeat(20)
    const { admin } = await served(undefined, token)
    const port = admin.address().port
    for (const h of [`Bearer ${token}`, `bearer ${token}`, `BEARER ${token}`, `Bearer  ${token}`]) {
      const r = await request(port, 'GET', '/v1/status', undefined, { authorization: h })
      assert.strictEqual(r.status, 200, `${h}: ${r.body}`)
    }
    for (const h of [`bearer ${token}x`, `Basic ${token}`, `bearer${token}`]) {
      const r = await request(port, 'GET', '/v1/status', undefined, { authorization: h })
      assert.strictEqual(r.status, 401, `${h}: ${r.body}`)
    }
  })
})
