/**
 * The admin endpoint (lib/node/admin.ts) in process, against a target that
 * records what it is asked: routes, refusals by code, the token, bounds.
 * Slow clients on it and on the metrics endpoint: test/node/bounded-http.test.ts.
 */
import * as assert from 'assert'
import * as http from 'http'
import * as net from 'net'
import { MAX_VALUE_LENGTH, base } from '../../lib'
import { ADMIN_CODES, startNode } from '../../lib/node'
import { adminRun, command } from '../../bin/node'
import { clientCommand } from '../../bin/client'
import { AdminServer, FailureLimiter, type AdminRequest } from '../../lib/node/admin'

// A request as the client sends it (a body goes as JSON unless headers say otherwise).
// (`from`: the client's address, another of 127/8 for another client.)
function request(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  from?: string,
): Promise<{ status: number; body: string; allow?: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const h = body === undefined ? headers : { 'content-type': 'application/json', ...headers }
    const r = http.request({ host: '127.0.0.1', port, method, path, headers: h, localAddress: from, agent: false }, (res) => {
      let text = ''
      res.on('data', (b: Buffer) => (text += String(b)))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, allow: res.headers.allow, retryAfter: res.headers['retry-after'] }))
    })
    r.on('error', reject)
    r.end(body)
  })
}

describe('admin endpoint', () => {
  const asked: AdminRequest[] = []
  let ready = false
  const target = {
    id: 'a',
    readiness: () => ({ ready, joined: true, synced: ready }),
    async run(r: AdminRequest): Promise<Record<string, unknown>> {
      asked.push(r)
      if (r.key === 'refused') return { ok: false, code: 'store_failed', error: 'no disk' }
      if (r.key === 'bad') return { ok: false, error: 'no code' }
      return { ok: true, ...r }
    },
  }
  let admin: AdminServer
  let port = 0
  before(async () => {
    admin = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, log: () => undefined })
    port = admin.address().port
  })
  after(() => admin.close())

  it('answers probes, routes requests, and refuses by code', async () => {
    assert.deepStrictEqual(JSON.parse((await request(port, 'GET', '/health')).body), { ok: true, id: 'a' })
    assert.strictEqual((await request(port, 'GET', '/ready')).status, 503)
    ready = true
    assert.strictEqual((await request(port, 'GET', '/ready')).status, 200)
    assert.strictEqual((await request(port, 'HEAD', '/ready')).body, '')
    assert.strictEqual((await request(port, 'GET', '/v1/kv/a%2Fb')).status, 200)
    assert.strictEqual((await request(port, 'PUT', '/v1/kv/k', '"v"')).status, 200)
    assert.strictEqual((await request(port, 'PUT', '/v1/kv/k', '1', { 'content-type': 'application/json; charset=utf-8' })).status, 200)
    assert.strictEqual((await request(port, 'DELETE', '/v1/kv/k')).status, 200)
    for (const name of ['members', 'status', 'peers', 'state']) assert.strictEqual((await request(port, 'GET', `/v1/${name}`)).status, 200)
    assert.deepStrictEqual(asked.slice(0, 4), [
      { command: 'get', key: 'a/b' },
      { command: 'set', key: 'k', value: '"v"' },
      { command: 'set', key: 'k', value: '1' },
      { command: 'del', key: 'k' },
    ])
    const refused = await request(port, 'PUT', '/v1/kv/refused', '1')
    assert.deepStrictEqual([refused.status, JSON.parse(refused.body).code], [503, 'store_failed'])
    const bad = await request(port, 'PUT', '/v1/kv/bad', '1')
    assert.deepStrictEqual([bad.status, JSON.parse(bad.body).code], [400, 'refused'])
    for (const [method, path, status, code] of [
      ['GET', '/v1/nope', 404, 'not_found'],
      ['PATCH', '/v1/kv/k', 405, 'method_not_allowed'],
      ['GET', '/v1/kv/%E0%A4%A', 400, 'bad_request'],
    ] as const) {
      const r = await request(port, method, path)
      assert.deepStrictEqual([r.status, JSON.parse(r.body).code], [status, code], `${method} ${path}`)
    }
    const utf8 = await request(port, 'PUT', '/v1/kv/k', Buffer.from([0x22, 0xff, 0x22]))
    assert.deepStrictEqual([utf8.status, JSON.parse(utf8.body).code], [400, 'bad_request'])
    // Past room for the longest value at three bytes a character (test/adversarial/fourth.test.ts: that one passes).
    const big = await request(port, 'PUT', '/v1/kv/k', 'x'.repeat(3 * MAX_VALUE_LENGTH + (16 << 10) + 1)).catch((e: Error) => ({ status: 0, body: e.message }))
    assert.strictEqual(big.status, 413, big.body.slice(0, 300))
  })

  it('refuses browsers: a cross-site POST, a DNS-rebound Host, any Origin but one allowed, a write not in JSON (attack on issue 21)', async () => {
    const before = asked.length
    // A page may send this without a preflight (a "simple" request).
    const csrf = await request(port, 'POST', '/v1/kv/csrf', '"pwned"', { origin: 'https://evil.example', 'content-type': 'text/plain;charset=UTF-8' })
    assert.deepStrictEqual([csrf.status, JSON.parse(csrf.body).code], [403, 'forbidden'], csrf.body)
    // After DNS rebinding the page is same-origin, and says its own name as Host.
    const rebound = await request(port, 'PUT', '/v1/kv/rb', '"rebound"', { host: `evil.example:${port}`, origin: `http://evil.example:${port}` })
    assert.deepStrictEqual([rebound.status, JSON.parse(rebound.body).code], [403, 'forbidden'], rebound.body)
    assert.match(JSON.parse(rebound.body).error, /--admin-host/)
    for (const p of ['/v1/state', '/health', '/ready']) assert.strictEqual((await request(port, 'GET', p, undefined, { host: `evil.example:${port}` })).status, 403, p)
    const post = await request(port, 'POST', '/v1/kv/k', '1')
    assert.deepStrictEqual([post.status, post.allow], [405, 'GET, PUT, DELETE'])
    const options = await request(port, 'OPTIONS', '/v1/kv/k')
    assert.strictEqual(options.status, 405)
    const text = await request(port, 'PUT', '/v1/kv/k', '1', { 'content-type': 'text/plain' })
    assert.deepStrictEqual([text.status, JSON.parse(text.body).code], [415, 'unsupported_media_type'])
    const none = await request(port, 'PUT', '/v1/kv/k', '1', { 'content-type': '' })
    assert.strictEqual(none.status, 415)
    assert.strictEqual(asked.length, before, `asked: ${JSON.stringify(asked.slice(before))}`)
    // IP literals and localhost cannot be rebound: served.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost']) {
      assert.strictEqual((await request(port, 'GET', '/v1/status', undefined, { host })).status, 200, host)
    }
    // Names and origins the operator allowed.
    const open = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, hosts: ['admin.internal'], origins: ['https://ops.example'], log: () => undefined })
    try {
      const p = open.address().port
      assert.strictEqual((await request(p, 'GET', '/v1/status', undefined, { host: `admin.internal:${p}` })).status, 200)
      assert.strictEqual((await request(p, 'GET', '/v1/status', undefined, { host: `ADMIN.internal:${p}` })).status, 200)
      assert.strictEqual((await request(p, 'PUT', '/v1/kv/k', '1', { origin: 'https://ops.example' })).status, 200)
      assert.strictEqual((await request(p, 'PUT', '/v1/kv/k', '1', { origin: 'https://ops.example.evil.example' })).status, 403)
      assert.strictEqual((await request(p, 'GET', '/v1/status', undefined, { host: `admin.internal.evil.example:${p}` })).status, 403)
    } finally {
      await open.close()
    }
  })

  it('with a token, asks it of every request but the probes; refuses to listen beyond loopback without one', async () => {
    const token = 'a-token-of-sixteen-or-more'
    const guarded = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, token, log: () => undefined })
    try {
      const p = guarded.address().port
      assert.strictEqual((await request(p, 'GET', '/health')).status, 200)
      const no = await request(p, 'GET', '/v1/status')
      assert.deepStrictEqual([no.status, JSON.parse(no.body).code], [401, 'unauthorized'])
      assert.strictEqual((await request(p, 'GET', '/v1/status', undefined, { authorization: 'Bearer wrong' })).status, 401)
      assert.strictEqual((await request(p, 'GET', '/v1/status', undefined, { authorization: `Bearer ${token}` })).status, 200)
    } finally {
      await guarded.close()
    }
    await assert.rejects(AdminServer.start(target, { at: { host: '0.0.0.0', port: 0 }, log: () => undefined }), /needs a token of 16 characters or more/)
    await assert.rejects(AdminServer.start(target, { at: { host: '0.0.0.0', port: 0 }, token: 'short', log: () => undefined }), /needs a token/)
  })

  it('attack (third outside attack on issue 21): wrong tokens as fast as one likes; required: past 10 in a minute an address is answered 429 with Retry-After, whatever it sends, and others are served', async () => {
    const token = 'a-token-of-sixteen-or-more'
    const lines: string[] = []
    const guarded = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, token, log: (l) => lines.push(l) })
    try {
      const p = guarded.address().port
      const guess = (from: string, t: string) => request(p, 'GET', '/v1/status', undefined, { authorization: `Bearer ${t}` }, from)
      for (let i = 0; i < 10; i++) assert.strictEqual((await guess('127.0.0.2', `guess-${i}`)).status, 401, `guess ${i}`)
      const limited = await guess('127.0.0.2', 'guess-10')
      assert.deepStrictEqual([limited.status, JSON.parse(limited.body).code], [429, 'too_many_attempts'], limited.body)
      const wait = Number(limited.retryAfter)
      assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After: ${limited.retryAfter}`)
      // The right token is not even looked at: a guess that hits must not tell.
      assert.strictEqual((await guess('127.0.0.2', token)).status, 429)
      assert.strictEqual((await request(p, 'GET', '/health', undefined, {}, '127.0.0.2')).status, 200)
      // Another address: its own count.
      assert.strictEqual((await guess('127.0.0.1', token)).status, 200)
      assert.strictEqual((await guess('127.0.0.1', 'wrong')).status, 401)
      assert.deepStrictEqual(
        lines.filter((l) => /too_many_attempts/.test(l)),
        ['admin: 10 requests with a wrong token from 127.0.0.2 within 60 s: its requests are refused for 60 s [too_many_attempts]'],
      )
    } finally {
      await guarded.close()
    }
    // The lock lifts once its time is up.
    const short = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, token, lockout: { attempts: 2, ms: 300 }, log: () => undefined })
    try {
      const p = short.address().port
      const auth = (t: string) => request(p, 'GET', '/v1/status', undefined, { authorization: `Bearer ${t}` })
      assert.deepStrictEqual([(await auth('x')).status, (await auth('y')).status, (await auth(token)).status], [401, 401, 429])
      const end = Date.now() + 5000
      while ((await auth(token)).status !== 200) {
        assert.ok(Date.now() < end, 'still refused 5 s after a lock of 300 ms')
        await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      await short.close()
    }
  })

  it('attack (fourth outside attack on issue 21): a lock flushed by one wrong token from each of 5,000 other addresses (127/8, or /64s of one /48), ~2,200 guesses/s overall; required: a lock is never forgotten before an unlocked address, and past a global budget only known good addresses are served', () => {
    let now = 0
    // The table alone (no global budget): the lock stays.
    const table = new FailureLimiter({ attempts: 10, ms: 60_000, global: Infinity }, () => now)
    for (let i = 0; i < 10; i++) table.failed('127.0.0.2')
    for (let i = 0; i < 5000; i++) table.failed(`127.1.${(i >> 8) & 255}.${i & 255}`)
    assert.ok(table.size <= 4096, `${table.size} addresses held`)
    assert.ok(table.locked('127.0.0.2') > 0, 'the lock was flushed out of the table')
    assert.strictEqual(table.locked('127.9.9.9'), 0)
    // With the global budget (default: 100 a minute).
    const limiter = new FailureLimiter({ attempts: 10, ms: 60_000 }, () => now)
    limiter.good('127.0.0.1')
    for (let i = 0; i < 10; i++) limiter.failed('127.0.0.2')
    assert.strictEqual(limiter.locked('127.0.0.2'), 60)
    for (let i = 0; i < 5000; i++) limiter.failed(`127.1.${(i >> 8) & 255}.${i & 255}`)
    assert.ok(limiter.locked('127.0.0.2') > 0, 'the lock was flushed out of the table')
    // 5,010 wrong tokens in a minute: past the global budget, an address never seen with the right token waits...
    assert.ok(limiter.locked('127.9.9.9') > 0, 'a fresh address is served past the global budget')
    assert.ok(limiter.locked('2001:db8:1:7::1') > 0)
    // ...and one seen with it is served.
    assert.strictEqual(limiter.locked('127.0.0.1'), 0)
    now = 60_000
    assert.strictEqual(limiter.locked('127.9.9.9'), 0, 'still refused once the window passed')
    // IPv6 /64s of one /48: the same.
    const v6 = new FailureLimiter({ attempts: 10, ms: 60_000, global: Infinity }, () => now)
    for (let i = 0; i < 10; i++) v6.failed('2001:db8:1:1::1')
    for (let i = 0; i < 5000; i++) v6.failed(`2001:db8:1:${(i + 2).toString(16)}::1`)
    assert.ok(v6.locked('2001:db8:1:1::2') > 0, 'the /64 lock was flushed')
  })

  it('a table full of locked addresses refuses every address not known good until a window passes', () => {
    let now = 0
    const limiter = new FailureLimiter({ attempts: 1, ms: 1000, global: Infinity }, () => now)
    limiter.good('192.0.2.1')
    for (let i = 0; i < 4096; i++) limiter.failed(`10.0.${i >> 8}.${i & 255}`)
    assert.strictEqual(limiter.locked('10.1.0.0'), 0, 'refused before the table was full')
    assert.deepStrictEqual(limiter.failed('10.1.0.0'), 'all')
    assert.strictEqual(limiter.size, 4096)
    assert.ok(limiter.locked('10.0.0.0') > 0, 'a lock was forgotten for a newcomer')
    assert.ok(limiter.locked('10.2.0.0') > 0)
    assert.strictEqual(limiter.locked('192.0.2.1'), 0)
    now = 1000
    assert.strictEqual(limiter.locked('10.2.0.0'), 0)
    // Locks that ran out make room again.
    assert.deepStrictEqual(limiter.failed('10.2.0.0'), 'address')
    assert.ok(limiter.size <= 4096)
  })

  it('past the global budget of wrong tokens, the endpoint answers 429 to addresses not seen with the right token, serves those seen, and says so once', async () => {
    const token = 'a-token-of-sixteen-or-more'
    const lines: string[] = []
    const guarded = await AdminServer.start(target, { at: { host: '127.0.0.1', port: 0 }, token, lockout: { attempts: 10, ms: 60_000, global: 20 }, log: (l) => lines.push(l) })
    try {
      const p = guarded.address().port
      const guess = (from: string, t: string) => request(p, 'GET', '/v1/status', undefined, { authorization: `Bearer ${t}` }, from)
      assert.strictEqual((await guess('127.0.0.1', token)).status, 200)
      for (let i = 0; i < 20; i++) assert.strictEqual((await guess(`127.0.1.${i}`, 'wrong')).status, 401, `guess ${i}`)
      const fresh = await guess('127.0.2.1', token)
      assert.deepStrictEqual([fresh.status, JSON.parse(fresh.body).code], [429, 'too_many_attempts'], fresh.body)
      assert.ok(Number(fresh.retryAfter) >= 1 && Number(fresh.retryAfter) <= 60, `Retry-After: ${fresh.retryAfter}`)
      assert.strictEqual((await guess('127.0.1.1', 'wrong')).status, 429)
      assert.strictEqual((await guess('127.0.0.1', token)).status, 200)
      assert.strictEqual((await request(p, 'GET', '/health', undefined, {}, '127.0.2.1')).status, 200)
      assert.deepStrictEqual(
        lines.filter((l) => /too_many_attempts/.test(l)),
        ['admin: 20 requests with a wrong token from all addresses within 60 s: requests from addresses not seen with the right token are refused for 60 s [too_many_attempts]'],
      )
    } finally {
      await guarded.close()
    }
  })

  it('the failure limiter holds at most 4,096 addresses, an IPv6 /64 as one, and lifts a lock after its window', () => {
    let now = 0
    const limiter = new FailureLimiter({ attempts: 3, ms: 1000, global: Infinity }, () => now)
    for (let i = 0; i < 10_000; i++) limiter.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
    assert.ok(limiter.size <= 4096, `${limiter.size} addresses held`)
    // One attacker holding a /64 counts once.
    for (let i = 0; i < 3; i++) limiter.failed(`2001:db8:1:2::${i.toString(16)}`)
    assert.ok(limiter.locked('2001:db8:1:2:ffff::1') > 0)
    assert.strictEqual(limiter.locked('2001:db8:1:3::1'), 0)
    for (let i = 0; i < 3; i++) limiter.failed('::ffff:192.0.2.1')
    assert.ok(limiter.locked('192.0.2.1') > 0)
    assert.strictEqual(limiter.locked('192.0.2.2'), 0)
    now = 999
    assert.strictEqual(limiter.locked('192.0.2.1'), 1)
    now = 1000
    assert.strictEqual(limiter.locked('192.0.2.1'), 0)
  })
})

describe('stdin commands and the admin endpoint: one code per failure', () => {
  it('attack (sixth outside attack on issue 21): error lines on stdin carried no code (the admin endpoint answers one for the same failure); required: every error line carries a code, the same as the endpoint\'s', async () => {
    const node = await startNode({ id: 'a', resolve: base.resolution.lww_vs_current_vers, membership: true, log: () => undefined })
    const admin = await AdminServer.start(
      { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: (r) => adminRun(node, r) },
      { at: { host: '127.0.0.1', port: 0 }, log: () => undefined },
    )
    const port = admin.address().port
    try {
      // The same failure both ways: [stdin line, admin request].
      const pairs: [string, string, string, string?][] = [
        ['set member/x 1', 'PUT', '/v1/kv/member%2Fx', '1'],
        ['del heartbeat/x', 'DELETE', '/v1/kv/heartbeat%2Fx'],
        ['set k {"a":', 'PUT', '/v1/kv/k', '{"a":'],
        ['set k', 'PUT', '/v1/kv/k', ''],
        ['set k blue', 'PUT', '/v1/kv/k', 'blue'],
        ['set __proto__ 1', 'PUT', '/v1/kv/__proto__', '1'],
        ['bogus', 'GET', '/v1/bogus'],
      ]
      const codes = new Set<string>([...ADMIN_CODES, 'store_failed', 'twin'])
      for (const [line, method, path, body] of pairs) {
        const stdin = (await command(node, line)) as { ok?: boolean; code?: unknown; error?: unknown }
        const http = JSON.parse((await request(port, method, path, body)).body) as { ok?: boolean; code?: unknown }
        assert.strictEqual(stdin.ok, false, line)
        assert.strictEqual(typeof stdin.error, 'string', line)
        assert.strictEqual(stdin.code, http.code, `${line}: stdin says ${JSON.stringify(stdin)}, ${method} ${path} says ${JSON.stringify(http)}`)
      }
      // The client: a negative number is a value, not an option (it was "Unknown option '-5'"); a refusal names its code.
      const said: string[] = []
      const node_ = ['--node', `127.0.0.1:${port}`]
      assert.strictEqual(await clientCommand('set', ['n', '-5', ...node_], (s) => said.push(s), (s) => said.push(s)), 0, said.join(''))
      assert.strictEqual(node.gossip.get('n').value, -5)
      assert.strictEqual(await clientCommand('set', [...node_, 'n', '-2.5e3'], (s) => said.push(s), (s) => said.push(s)), 0, said.join(''))
      assert.strictEqual(node.gossip.get('n').value, -2500)
      said.length = 0
      assert.strictEqual(await clientCommand('status', [...node_, '--timeout', '-1'], (s) => said.push(s), (s) => said.push(s)), 2)
      assert.match(said.join(''), /--timeout must be a positive number of milliseconds, not "-1"/)
      said.length = 0
      assert.strictEqual(await clientCommand('set', ['member/x', '1', ...node_], (s) => said.push(s), (s) => said.push(s)), 1)
      assert.match(said.join(''), /^simple-scuttle set: node 127\.0\.0\.1:\d+ refused \[invalid\]: member\/x: keys under member\//)
      // Failures of stdin alone (a command line without its key or value) carry a code of the same list.
      for (const line of ['set', 'get', 'del']) {
        const stdin = (await command(node, line)) as { ok?: boolean; code?: unknown }
        assert.strictEqual(stdin.ok, false, line)
        assert.ok(typeof stdin.code === 'string' && codes.has(stdin.code), `${line}: ${JSON.stringify(stdin)}`)
      }
    } finally {
      await admin.close()
      await node.close()
    }
  })
})
