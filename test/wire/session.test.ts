/**
 * The session (lib/wire/session.ts): every refusal by its code, proofs
 * under keys, and the formats agreed, over an in-memory pair of byte
 * streams.
 */
import * as assert from 'assert'
import * as crypto from 'crypto'
import { Duplex } from 'readable-stream'
import { Gossip, base } from '../../lib'
import { generateKeyPair } from '../../lib/node'
import { helloAuth, randomNonce } from '../../lib/node/security'
import { proofBytes, Session, SessionError, type HelloAuth, type SessionOptions } from '../../lib/wire/session'

const resolve = base.resolution.lww_vs_current_vers

// Two ends of a byte pipe.
function pair(): [Duplex, Duplex] {
  let a: Duplex, b: Duplex
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        other().push(chunk)
        cb()
      },
      final(cb) {
        other().push(null)
        cb()
      },
    })
  a = make(() => b)
  b = make(() => a)
  return [a, b]
}

type Outcome = { open: boolean; refused: SessionError | null; ours: boolean }

function outcome(s: Session): Promise<Outcome> {
  return new Promise((done) => {
    s.once('open', () => done({ open: true, refused: null, ours: false }))
    s.once('refused', (err: SessionError, ours: boolean) => done({ open: false, refused: err, ours }))
  })
}

function connect(a: Partial<SessionOptions> & { id?: string } = {}, b: Partial<SessionOptions> & { id?: string } = {}) {
  const [ta, tb] = pair()
  const ga = new Gossip(a.id ?? 'a', { resolve })
  const gb = new Gossip(b.id ?? 'b', { resolve })
  const sa = new Session(ga, ta, { cluster: 'c', codecs: ['binary', 'ndjson'], nonce: randomNonce, ...a })
  const sb = new Session(gb, tb, { cluster: 'c', codecs: ['binary', 'ndjson'], nonce: randomNonce, ...b })
  return { sa, sb, ga, gb, ta, tb, oa: outcome(sa), ob: outcome(sb) }
}

// One end speaking raw lines to a session.
function raw(options: Partial<SessionOptions> = {}) {
  const [ta, tb] = pair()
  const s = new Session(new Gossip('a', { resolve }), ta, { cluster: 'c', codecs: ['ndjson'], nonce: randomNonce, ...options })
  const lines: Record<string, unknown>[] = []
  let text = ''
  tb.on('data', (b: Buffer) => {
    text += String(b)
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      lines.push(JSON.parse(text.slice(0, nl)))
      text = text.slice(nl + 1)
    }
  })
  return { s, out: outcome(s), send: (t: string) => tb.write(t), lines }
}

function keysFor(ids: string[]): Record<string, { publicKey: string; privateKey: string }> {
  return Object.fromEntries(ids.map((id) => [id, generateKeyPair()]))
}

function authOf(id: string, keys: Record<string, { publicKey: string; privateKey: string }>, trusted = Object.keys(keys)): HelloAuth {
  return helloAuth({ id, privateKey: keys[id].privateKey, publicKeys: Object.fromEntries(trusted.map((t) => [t, keys[t].publicKey])) })
}

describe('session', () => {
  it('opens both ways, agrees on the formats, and gossip flows', async () => {
    const { sa, sb, oa, ob, ga, gb } = connect({}, { codecs: ['ndjson'] })
    assert.deepStrictEqual([(await oa).open, (await ob).open], [true, true])
    assert.deepStrictEqual([sa.writing, sa.reading, sb.peerId], ['ndjson', 'ndjson', 'a'])
    ga.set('k', 1)
    sa.stream.gossip()
    for (let i = 0; i < 50 && gb.get('k').value !== 1; i++) await new Promise((r) => setImmediate(r))
    assert.strictEqual(gb.get('k').value, 1)
    assert.strictEqual(sa.authenticated, false)
    // Unauthenticated: the gossip stream is bound to no peer.
    assert.strictEqual(sa.stream.peer, undefined)
  })

  it('a handover session (hello with handover: true) opens on both ends without gossip, carries JSON lines each way, and refuses a line past maxLineLength', async () => {
    const { sa, sb, ga, gb } = connect({ handover: true }, { maxLineLength: 64 })
    const opened = (s: Session) => new Promise<void>((done) => s.once('handover', done))
    await Promise.all([opened(sa), opened(sb)])
    assert.strictEqual(sb.peerHello?.handover, true)
    assert.strictEqual(sa.isOpen || sb.isOpen, false, 'gossip flows on a handover session')
    const got: unknown[] = []
    sb.on('message', (m: unknown) => got.push(m))
    const back: unknown[] = []
    sa.on('message', (m: unknown) => back.push(m))
    ga.set('k', 1)
    sa.send({ key: 'k', value: 1 })
    sa.send({ end: true })
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setImmediate(r))
    assert.deepStrictEqual(got, [{ key: 'k', value: 1 }, { end: true }])
    assert.strictEqual(gb.get('k').value, null, 'a handover session gossiped')
    sb.send({ handed: 1 })
    for (let i = 0; i < 50 && back.length < 1; i++) await new Promise((r) => setImmediate(r))
    assert.deepStrictEqual(back, [{ handed: 1 }])
    const refused = new Promise<SessionError>((done) => sb.once('refused', done))
    sa.send({ key: 'x'.repeat(100) })
    assert.strictEqual((await refused).code, 'bad_hello')
  })

  it('a handover line is bounded in characters, as NDJSON lines are (fourth outside red team, issue 21: the longest value, in 3-byte characters, was refused as a handover line over 1 MiB of bytes, and a refused twin could never hand it over)', async () => {
    const { sa, sb } = connect({ handover: true }, { maxLineLength: 64 })
    await Promise.all([sa, sb].map((s) => new Promise<void>((done) => s.once('handover', done))))
    const got: unknown[] = []
    sb.on('message', (m: unknown) => got.push(m))
    // 64 characters, 150 bytes.
    const m = { key: 'k', value: '€'.repeat(64 - 22) }
    assert.strictEqual(JSON.stringify(m).length, 64)
    sa.send(m)
    for (let i = 0; i < 50 && got.length < 1; i++) await new Promise((r) => setImmediate(r))
    assert.deepStrictEqual(got, [m])
    const refused = new Promise<SessionError>((done) => sb.once('refused', done))
    sa.send({ key: 'k', value: '€'.repeat(64 - 21) })
    const err = await refused
    assert.strictEqual(err.code, 'bad_hello')
    assert.match(err.message, /longer than 64 characters/)
  })

  it('a hello whose handover flag is not true is refused (bad_hello)', async () => {
    const { out, send } = raw()
    send(`${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, id: 'b', codecs: ['ndjson'], cluster: 'c', nonce: 'QUFBQUFBQUFBQUFBQUFBQQ==', handover: 'yes' })}\n`)
    assert.strictEqual((await out).refused?.code, 'bad_hello')
  })

  it('under keys, both ends prove their ids; the peer id is authenticated, and the gossip stream bound to it', async () => {
    const keys = keysFor(['a', 'b'])
    const { sa, sb, oa, ob } = connect({ auth: authOf('a', keys) }, { auth: authOf('b', keys) })
    assert.deepStrictEqual([(await oa).open, (await ob).open], [true, true])
    assert.deepStrictEqual([sa.peerId, sa.authenticated, sb.peerId, sb.authenticated], ['b', true, 'a', true])
    // Notices on the stream are then taken only from that peer (docs/deletes.md).
    assert.deepStrictEqual([sa.stream.peer, sb.stream.peer], ['b', 'a'])
    assert.throws(() => sa.stream.authenticate('x'), /peer is b, not x/)
  })

  it('refuses by code: a key not held (bad_proof), no key (unauthenticated), another cluster, no format in common, itself, a policy', async () => {
    const keys = keysFor(['a', 'b', 'x'])
    // x has a key, but a does not hold x's.
    let r = connect({ auth: authOf('a', keys, ['a', 'b']) }, { id: 'x', auth: authOf('x', keys) })
    assert.strictEqual((await r.oa).refused?.code, 'bad_proof')
    assert.strictEqual((await r.ob).refused?.peerCode, 'bad_proof')
    r = connect({ auth: authOf('a', keys) }, {})
    const ra = await r.oa
    assert.strictEqual(ra.refused?.code, 'unauthenticated', 'a peer whose accept carries no proof')
    r = connect({}, { cluster: 'd' })
    assert.strictEqual((await r.oa).refused?.code, 'other_cluster')
    r = connect({ codecs: ['binary'] }, { codecs: ['ndjson'] })
    assert.strictEqual((await r.oa).refused?.code, 'no_codec')
    r = connect({}, { admit: () => new SessionError('twin', 'no') })
    assert.strictEqual((await r.ob).refused?.code, 'twin')
    assert.strictEqual((await r.oa).refused?.peerCode, 'twin')
    const self = new Gossip('a', { resolve })
    const [t] = pair()
    const s = new Session(self, t, { cluster: 'c', codecs: ['ndjson'], nonce: () => 'AAAAAAAAAAAAAAAAAAAAAA==' })
    const o = outcome(s)
    t.push(`${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, id: 'a', cluster: 'c', nonce: 'AAAAAAAAAAAAAAAAAAAAAA==' })}\n`)
    assert.strictEqual((await o).refused?.code, 'self')
  })

  it('attack (issue 21, red team): a hello with a bad id (control, bidi, zero-width characters) or a bad cluster name was closed with nothing said; required: the peer is told {"refused":"bad_hello",...}', async () => {
    const hellos = [{ id: 'x\u0007y' }, { id: 'a\u202eb' }, { id: 'a\u200bb' }, { id: 'ok', cluster: 'a\u202eb' }, { id: 'ok', started: -1 }]
    for (const h of hellos) {
      const r = raw()
      r.send(`${JSON.stringify({ hello: 'simple-scuttle', protocol: 2, cluster: 'c', nonce: randomNonce(), ...h })}\n`)
      const o = await r.out
      assert.strictEqual(o.refused?.code, 'bad_hello', JSON.stringify(h))
      for (let i = 0; i < 50 && r.lines.length < 2; i++) await new Promise((resolve) => setImmediate(resolve))
      assert.strictEqual(r.lines[1]?.refused, 'bad_hello', `${JSON.stringify(h)}: ${JSON.stringify(r.lines)}`)
      assert.match(String(r.lines[1]?.reason), /hello with a bad/)
    }
  })

  it('a policy that waits holds the open line until it decides, keeping what the peer sends meanwhile; then opens, or refuses with the peer told', async () => {
    for (const verdict of [null, new SessionError('twin', 'no')]) {
      let decide: (v: SessionError | null) => void = () => undefined
      let asked = false
      const admit = () => {
        asked = true
        return new Promise<SessionError | null>((r) => (decide = r))
      }
      const { sa, ga, gb, oa, ob } = connect({}, { admit })
      let settled = false
      void Promise.race([oa, ob]).then(() => (settled = true))
      for (let i = 0; i < 50 && !asked; i++) await new Promise((r) => setImmediate(r))
      // (Turns of the event loop in which the hellos, accepts and a's open line pass.)
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
      assert.deepStrictEqual([asked, settled], [true, false], 'the session waits on its policy')
      decide(verdict)
      if (verdict !== null) {
        assert.strictEqual((await ob).refused?.code, 'twin')
        assert.strictEqual((await oa).refused?.peerCode, 'twin')
        continue
      }
      assert.deepStrictEqual([(await oa).open, (await ob).open], [true, true])
      // The open line of a's, kept while b decided, was read: gossip flows.
      ga.set('k', 1)
      sa.stream.gossip()
      for (let i = 0; i < 50 && gb.get('k').value !== 1; i++) await new Promise((r) => setImmediate(r))
      assert.strictEqual(gb.get('k').value, 1)
    }
    // A peer may not pile bytes up while the policy decides: past a line's worth, refused.
    const r = raw({ admit: () => new Promise<SessionError | null>(() => undefined) })
    r.send('{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","codecs":["ndjson"]}\n{"accept":true}\n')
    r.send(`{"open":true}\n${'x'.repeat(5000)}`)
    const o = await r.out
    assert.deepStrictEqual([o.refused?.code, r.lines[r.lines.length - 1]?.refused], ['no_hello', 'no_hello'])
  })

  it('refuses malformed hellos and lines by code, and a keyless hello where keys are checked', async () => {
    const keys = keysFor(['a'])
    const cases: [string, string, Partial<SessionOptions>?][] = [
      ['not json\n', 'no_hello'],
      ['{"hello":"other","id":"b"}\n', 'no_hello'],
      ['x'.repeat(5000), 'no_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","codecs":"ndjson"}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"short"}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","started":-1}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","address":"a\\nb"}\n', 'bad_hello'],
      // The heartbeat interval (docs/twins.md, R3): a positive integer of ms, an hour at most.
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","beats":0}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","beats":"1000"}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","beats":3600001}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":""}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b\\ud800"}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c\\u0007"}\n', 'bad_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c"}\n', 'unauthenticated', { auth: authOf('a', keys) }],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","codecs":["ndjson"]}\n{"accept":false}\n', 'no_hello'],
      ['{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","codecs":["ndjson"]}\n{"accept":true}\n{"open":false}\n', 'no_hello'],
    ]
    for (const [text, code, options] of cases) {
      const r = raw(options)
      r.send(text)
      const o = await r.out
      assert.strictEqual(o.refused?.code, code, text.slice(0, 80))
      assert.strictEqual(o.ours, true)
    }
  })

  it('tells a peer that speaks sessions why it was refused, and reads why it was', async () => {
    const r = raw({ cluster: 'other' })
    r.send('{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","codecs":["ndjson"]}\n')
    await r.out
    assert.strictEqual(r.lines[1].refused, 'other_cluster')
    const q = raw()
    q.send('{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c","nonce":"AAAAAAAAAAAAAAAAAAAAAA==","codecs":["ndjson"]}\n{"refused":"twin","reason":"r","twin":"127.0.0.1:1","started":5}\n')
    const o = await q.out
    assert.deepStrictEqual([o.refused?.code, o.refused?.peerCode, o.refused?.twinAddress, o.refused?.twinStarted, o.ours], ['refused_by_peer', 'twin', '127.0.0.1:1', 5, false])
  })

  it('opens with a node before sessions (a hello without nonce): no further lines', async () => {
    const r = raw()
    r.send('{"hello":"simple-scuttle","protocol":2,"id":"b","cluster":"c"}\n{"digest":true,"done":true}\n')
    assert.strictEqual((await r.out).open, true)
    assert.strictEqual(r.lines.length, 1, 'only the hello was sent')
  })

  it('a proof signs both nonces: one made for another session does not verify', () => {
    const keys = keysFor(['a'])
    const auth = authOf('a', keys)
    const n1 = crypto.randomBytes(16).toString('base64')
    const n2 = crypto.randomBytes(16).toString('base64')
    const sig = auth.sign(proofBytes('a', n1, n2, 'c'))
    assert.strictEqual(auth.verify('a', proofBytes('a', n1, n2, 'c'), sig), true)
    assert.strictEqual(auth.verify('a', proofBytes('a', n1, crypto.randomBytes(16).toString('base64'), 'c'), sig), false)
    assert.strictEqual(auth.verify('nobody', proofBytes('nobody', n1, n2, 'c'), sig), false)
    assert.throws(() => helloAuth({ publicKeys: {} }), /private key/)
  })
})
