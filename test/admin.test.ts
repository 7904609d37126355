/**
 * The admin endpoint (lib/node/admin.ts) in process, against a target that
 * records what it is asked: routes, refusals by code, the token, bounds.
 */
import * as assert from 'assert'
import * as http from 'http'
import { AdminServer, type AdminRequest } from '../lib/node/admin'

function request(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = ''
      res.on('data', (b: Buffer) => (text += String(b)))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
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
    assert.strictEqual((await request(port, 'POST', '/v1/kv/k', '1')).status, 200)
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
      ['PATCH', '/v1/kv/k', 404, 'not_found'],
      ['GET', '/v1/kv/%E0%A4%A', 400, 'bad_request'],
    ] as const) {
      const r = await request(port, method, path)
      assert.deepStrictEqual([r.status, JSON.parse(r.body).code], [status, code], `${method} ${path}`)
    }
    const utf8 = await request(port, 'PUT', '/v1/kv/k', Buffer.from([0x22, 0xff, 0x22]))
    assert.deepStrictEqual([utf8.status, JSON.parse(utf8.body).code], [400, 'bad_request'])
    const big = await request(port, 'PUT', '/v1/kv/k', 'x'.repeat((1 << 20) + 1)).catch((e: Error) => ({ status: 0, body: e.message }))
    assert.strictEqual(big.status, 413, big.body)
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
})
