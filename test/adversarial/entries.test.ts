/**
 * Every entry takes a value or a key by one rule (third outside red team on
 * issue 21): the library's `set`, a stream, stdin, the admin endpoint and
 * the CLI client. A value one entry took and changed (-0 stored as 0, an
 * integer past 2^53 rounded) while another refused it is a value the writer
 * did not write; a key a peer may write that the admin endpoint cannot name
 * is one an operator cannot read or delete.
 */
import * as assert from 'assert'
import * as http from 'http'
import * as net from 'net'
import { Gossip, base } from '../../lib'
import { startNode, type ScuttleNode } from '../../lib/node'
import { AdminServer } from '../../lib/node/admin'
import { adminRun, command } from '../../bin/node'
import { clientCommand } from '../../bin/client'

describe('adversarial: one rule at every entry (issue 21, third outside red team)', function () {
  this.timeout(20_000)
  let node: ScuttleNode
  let admin: AdminServer
  let at: string[]

  before(async () => {
    node = await startNode({ id: 'a', resolve: base.resolution.lww_vs_current_vers, log: () => undefined })
    admin = await AdminServer.start(
      { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: (r) => adminRun(node, r) },
      { at: { host: '127.0.0.1', port: 0 }, log: () => undefined },
    )
    at = ['--node', `127.0.0.1:${admin.address().port}`]
  })
  after(async () => {
    await admin.close()
    await node.close()
  })

  // The client's exit code and what it said.
  async function cli(name: string, ...args: string[]): Promise<{ code: number; said: string }> {
    const said: string[] = []
    const code = await clientCommand(name, [...at, ...args], (s) => said.push(s), (s) => said.push(s))
    return { code, said: said.join('') }
  }

  it('attack (badinput.sh, clikeys.sh): -0 set through the admin endpoint or the CLI was stored as 0 while a peer\'s -0 is refused; required: one rule on every path: refused, with code invalid, nothing stored', async () => {
    const g = new Gossip('g', { resolve: base.resolution.lww_vs_current_vers })
    const q = new Gossip('q', { resolve: base.resolution.lww_vs_current_vers })
    assert.throws(() => g.set('z', -0), /-0/)
    assert.throws(() => g.set('z', { x: [1, -0] }), /-0/)
    assert.strictEqual(g.get('z').value, null)
    // A peer's -0, as ndjson parses it.
    const s = q.createStream()
    const invalid: string[] = []
    s.on('invalid', (_u: unknown, reason: string) => invalid.push(reason))
    s.write({ key: 'z', value: -0, source_id: 'p', version: 1 })
    await new Promise((r) => setImmediate(r))
    assert.strictEqual(q.get('z').value, null)
    assert.ok(invalid.some((r) => /-0/.test(r)), JSON.stringify(invalid))
    const stdin = (await command(node, 'set z -0')) as { code?: string }
    assert.strictEqual(stdin.code, 'invalid', JSON.stringify(stdin))
    const put = await cli('set', 'z', '{"x":-0}')
    assert.strictEqual(put.code, 1, put.said)
    assert.match(put.said, /\[invalid\].*-0/)
    const top = await cli('set', 'z', '-0')
    assert.strictEqual(top.code, 1, top.said)
    assert.strictEqual(node.gossip.get('z').value, null)
  })

  it('attack (badinput.sh, clikeys.sh): `set big 12345678901234567890` through the CLI, stdin or the admin endpoint was acknowledged and stored as 12345678901234567000; required: refused with code invalid and a reason (send it as a string), nothing stored; an integer a double holds exactly (within 2^53, or 2^53 and 1e20 as JSON.stringify writes them) and a fraction pass', async () => {
    for (const text of ['12345678901234567890', '{"a":[1,-9007199254740993]}', '9007199254740993']) {
      const stdin = (await command(node, `set big ${text}`)) as { code?: string; error?: string }
      assert.strictEqual(stdin.code, 'invalid', `${text}: ${JSON.stringify(stdin)}`)
      assert.match(String(stdin.error), /string/)
      const put = await cli('set', 'big', text)
      assert.strictEqual(put.code, 1, put.said)
      assert.match(put.said, /\[invalid\].*string/)
    }
    assert.strictEqual(node.gossip.get('big').value, null)
    // Inside a string, a long run of digits is text.
    for (const text of ['9007199254740991', '9007199254740992', '100000000000000000000', '1.5e300', '"12345678901234567890"', '{"n":"12345678901234567890"}']) {
      const put = await cli('set', 'fine', text)
      assert.strictEqual(put.code, 0, `${text}: ${put.said}`)
      assert.deepStrictEqual(node.gossip.get('fine').value, JSON.parse(text))
    }
  })
})

// A node behind an admin endpoint for one describe: started before, closed after.
function serveAdmin(set: (node: ScuttleNode, port: number) => void): void {
  let node: ScuttleNode | undefined
  let admin: AdminServer | undefined
  before(async () => {
    const n = await startNode({ id: 'a', resolve: base.resolution.lww_vs_current_vers, log: () => undefined })
    node = n
    admin = await AdminServer.start(
      { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: (r) => adminRun(n, r) },
      { at: { host: '127.0.0.1', port: 0 }, log: () => undefined },
    )
    set(n, admin.address().port)
  })
  after(async () => {
    await admin?.close()
    await node?.close()
  })
}

describe('adversarial: every key a peer can write, the admin endpoint and the CLI can name (issue 21, third outside red team)', function () {
  this.timeout(20_000)
  let node: ScuttleNode
  let port = 0
  serveAdmin((n, p) => {
    node = n
    port = p
  })

  function get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const r = http.request({ host: '127.0.0.1', port, method: 'GET', path, agent: false }, (res) => {
        let text = ''
        res.on('data', (b: Buffer) => (text += String(b)))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      })
      r.on('error', reject)
      r.end()
    })
  }

  it('attack (dots.ndjson, clikeys.sh): keys "." and ".." (a peer may write them, /v1/state shows them) could not be read nor deleted: /v1/kv/.. and /v1/kv/%2E%2E were normalised to /v1/ and answered 404; required: every valid key is reachable through the endpoint (raw or percent-encoded) and the CLI', async () => {
    const at = ['--node', `127.0.0.1:${port}`]
    for (const key of ['.', '..', '...', 'a/../b', './x']) {
      await node.set(key, key)
      const said: string[] = []
      assert.strictEqual(await clientCommand('get', [...at, key], (s) => said.push(s), (s) => said.push(s)), 0, `get ${key}: ${said.join('')}`)
      assert.strictEqual(JSON.parse(said.join('')).value, key, `get ${key}: ${said.join('')}`)
    }
    for (const [path, key] of [['/v1/kv/..', '..'], ['/v1/kv/%2E%2E', '..'], ['/v1/kv/.', '.'], ['/v1/kv/%2e', '.'], ['/v1/kv/a%2F..%2Fb', 'a/../b']]) {
      const r = await get(path)
      assert.strictEqual(r.status, 200, `${path}: ${r.body}`)
      assert.strictEqual(JSON.parse(r.body).value, key, `${path}: ${r.body}`)
    }
    for (const key of ['.', '..']) {
      const said: string[] = []
      assert.strictEqual(await clientCommand('del', [...at, key], (s) => said.push(s), (s) => said.push(s)), 0, `del ${key}: ${said.join('')}`)
      assert.strictEqual(node.gossip.get(key).value, null, `${key} was not deleted`)
      assert.strictEqual(await clientCommand('set', [...at, key, '"again"'], (s) => said.push(s), (s) => said.push(s)), 0, `set ${key}: ${said.join('')}`)
      assert.strictEqual(node.gossip.get(key).value, 'again')
    }
  })
})

describe('adversarial: the admin endpoint\'s Host check (issue 21, third outside red team)', function () {
  this.timeout(20_000)
  let node: ScuttleNode
  let port = 0
  serveAdmin((n, p) => {
    node = n
    port = p
  })

  // The status line of a raw request.
  function raw(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(text))
      let got = ''
      s.on('data', (b: Buffer) => {
        got += String(b)
        if (got.includes('\r\n')) {
          s.destroy()
          resolve(got.slice(0, got.indexOf('\r\n')))
        }
      })
      s.on('error', reject)
      s.on('close', () => resolve(got.split('\r\n')[0]))
    })
  }

  it('attack (admin_host.py): `Host: evil.com@127.0.0.1` (userinfo), two Host headers, and an absolute-form target naming evil.com with `Host: 127.0.0.1` were served 200 (a rebinding page could drive the node); required: refused', async () => {
    const G = 'GET /v1/status HTTP/1.1\r\n'
    const refused = [
      G + 'Host: evil.com@127.0.0.1\r\n\r\n',
      G + 'Host: 127.0.0.1\r\nHost: evil.com\r\n\r\n',
      G + 'Host: evil.com\r\nHost: 127.0.0.1\r\n\r\n',
      G + 'Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n',
      'GET http://evil.com/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      'GET http://evil.com@127.0.0.1/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    ]
    for (const text of refused) {
      const status = await raw(text)
      assert.match(status, /^HTTP\/1\.1 4\d\d /, `${JSON.stringify(text)}: ${status}`)
    }
    // What stays served: an IP literal or localhost, and an absolute-form target naming one (its authority wins, RFC 9112).
    for (const text of [G + `Host: 127.0.0.1:${port}\r\n\r\n`, G + 'Host: localhost\r\n\r\n', 'GET http://127.0.0.1/v1/status HTTP/1.1\r\nHost: evil.com\r\n\r\n']) {
      const status = await raw(text)
      assert.match(status, /^HTTP\/1\.1 200 /, `${JSON.stringify(text)}: ${status}`)
    }
  })

  it('attack (nohost_token.py): HTTP/1.1 with the right token and no Host got a bare 400 from Node, no code (the docs say a request carrying the token is served without Host); required: served with the token, and without it a coded 400', async () => {
    const token = 'a-token-of-sixteen-chars'
    const tokened = await AdminServer.start(
      { id: 'a', readiness: () => ({ ready: true, joined: true, synced: true }), run: (r) => adminRun(node, r) },
      { at: { host: '127.0.0.1', port: 0 }, token, log: () => undefined },
    )
    const ask = (text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = net.connect(tokened.address().port, '127.0.0.1', () => s.write(text))
        let got = ''
        s.on('data', (b: Buffer) => (got += String(b)))
        s.on('error', reject)
        s.on('end', () => s.destroy())
        s.on('close', () => resolve(got))
      })
    try {
      for (const v of ['1.0', '1.1']) {
        const served = await ask(`GET /v1/status HTTP/${v}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
        assert.match(served, /^HTTP\/1\.1 200 /, `HTTP/${v} with the token: ${served.slice(0, 200)}`)
        const refused = await ask(`GET /v1/status HTTP/${v}\r\nConnection: close\r\n\r\n`)
        assert.match(refused, /^HTTP\/1\.1 400 [^]*"code":"bad_request"/, `HTTP/${v} without the token: ${refused.slice(0, 200)}`)
      }
    } finally {
      await tokened.close()
    }
  })
})

describe('adversarial: the CLI says how to name a key starting with "-" (issue 21, third outside red team)', () => {
  it('attack (clikeys.sh): `simple-scuttle get -dash` said only "unknown option -dash", and --help said nothing of "--"; required: both say that such a key goes after --', async () => {
    const said: string[] = []
    assert.strictEqual(await clientCommand('get', ['-dash', '--node', '127.0.0.1:1'], (s) => said.push(s), (s) => said.push(s)), 2)
    assert.match(said.join(''), /unknown option -dash.*after "--".*get -- -dash/)
    said.length = 0
    assert.strictEqual(await clientCommand('get', ['--help'], (s) => said.push(s), (s) => said.push(s)), 0)
    assert.match(said.join(''), /starting with "-".*--/)
  })
})
