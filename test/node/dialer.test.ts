/**
 * Dialing (lib/node/dialer.ts): one `--connect` address redialed with
 * backoff, its failures said once a run; one session dialed for an errand.
 * On 127.0.0.1. (A node's dialers at work: node/tcp.test.ts.)
 */
import * as assert from 'assert'
import * as net from 'net'
import { Gossip, base } from '../../lib'
import { Dialer, errand } from '../../lib/node/dialer'
import { addressOf, listen } from '../../lib/node/listener'

const until = async (check: () => boolean, what: string): Promise<void> => {
  const end = Date.now() + 5000
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

// A port that refuses: one a server held and let go.
async function closedPort(): Promise<number> {
  const s = net.createServer()
  await listen(s, {})
  return new Promise((r) => s.close(() => r((addressOf(s) ?? { port: 0 }).port)))
}

describe('node: Dialer', () => {
  const servers: net.Server[] = []
  const dialers: Dialer[] = []
  afterEach(async () => {
    for (const d of dialers.splice(0)) d.stop()
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  })

  it('redials a peer that hangs up; each connection is handed over; the first end is told once', async () => {
    let accepted = 0
    const server = net.createServer((s) => {
      accepted++
      s.destroy()
    })
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as net.AddressInfo).port
    let connected = 0
    let firstEnded = 0
    const d = new Dialer({ host: '127.0.0.1', port }, { min: 5, max: 20, random: () => 0, connected: () => (connected++, { answered: false }), log: () => undefined, firstEnded: () => firstEnded++ })
    dialers.push(d)
    d.dial()
    await until(() => accepted >= 3 && connected >= 3, 'three connections')
    assert.strictEqual(firstEnded, 1)
  })

  it('a refused address: retried, its failure said once for the run', async () => {
    const port = await closedPort()
    const lines: string[] = []
    // Each failed attempt draws once for its jitter.
    let attempts = 0
    const random = () => (attempts++, 0)
    const d = new Dialer({ host: '127.0.0.1', port }, { min: 5, max: 10, random, connected: () => ({ answered: false }), log: (l) => lines.push(l) })
    dialers.push(d)
    d.dial()
    await until(() => attempts >= 4, 'four failed attempts')
    assert.strictEqual(lines.length, 1)
    assert.match(lines[0], new RegExp(`^dial 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED .* \\(retrying with backoff\\)$`))
  })

  it('errand: why it ended without done(null): the socket error with its code, or no answer in time; null when done', async () => {
    const gossip = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
    const options = { cluster: 'default', codecs: ['ndjson' as const] }
    const refused = await errand(gossip, options, { host: '127.0.0.1', port: await closedPort() }, 1000, () => undefined)
    assert.strictEqual(refused?.code, 'ECONNREFUSED')
    const held: net.Socket[] = []
    const silent = net.createServer((s) => void held.push(s))
    servers.push(silent)
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const to = { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port }
    assert.deepStrictEqual(await errand(gossip, options, to, 50, () => undefined), { reason: 'no answer within 0.05 s' })
    assert.strictEqual(await errand(gossip, options, to, 1000, (_s, done) => done(null)), null)
    assert.deepStrictEqual(await errand(gossip, options, to, 1000, (_s, done) => done('refused', 'twin')), { reason: 'refused', code: 'twin' })
    for (const s of held) s.destroy()
  })
})
