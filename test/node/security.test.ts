/**
 * Signed updates (lib/node/security.ts): Ed25519 by source id. Forged,
 * altered and unsigned updates are refused as 'invalid' before they move
 * anything; honest relaying converges; with security off, updates carry no
 * signature.
 */
import * as assert from 'assert'
import * as crypto from 'crypto'
import { Clock, Gossip } from '../../lib'
import { ed25519, generateKeyPair, signedBytes } from '../../lib/node'
import type { InvalidCode, Security, Update } from '../../lib'
import { Net, lww, stateOf } from '../net'

const ids = ['a', 'b', 'c']
const pairs = Object.fromEntries(ids.map((id) => [id, generateKeyPair()]))
const publicKeys = Object.fromEntries(ids.map((id) => [id, pairs[id].publicKey]))
const securityOf = (id: string): Security => ed25519({ id, privateKey: pairs[id].privateKey, publicKeys })

// The codes of what `stream` reported (the reasons are for people, and may change).
function invalids(stream: Gossip | ReturnType<Gossip['createStream']>): InvalidCode[] {
  const out: InvalidCode[] = []
  stream.on('invalid', (_o: unknown, _reason: string, code: InvalidCode) => out.push(code))
  return out
}

describe('security', () => {
  it('signs local writes and relays them so that a chain of nodes converges', async () => {
    // a - b - c: c hears a only through b.
    const net = new Net(ids, (id) => lww({ security: securityOf(id), mtu: 3 }))
    net.connect(0, 1)
    net.connect(1, 2)
    for (const g of net.nodes) for (let i = 0; i < 5; i++) g.set(`${g.id}${i}`, { by: g.id, i })
    net.nodes[0].set('shared', 'a')
    net.nodes[2].set('shared', 'c')
    for (let round = 0; round < 20; round++) {
      for (const l of net.links) (round % 2 ? l.sa : l.sb).gossip()
      await net.settle()
    }
    const [a, b, c] = net.nodes
    assert.deepStrictEqual(stateOf(a), stateOf(c))
    assert.deepStrictEqual(stateOf(b), stateOf(c))
    assert.strictEqual(Object.keys(c.state).length, 16)
    const u = c.get('a0') as Update
    assert.strictEqual(typeof u.signature, 'string')
    assert.ok(crypto.verify(null, signedBytes(u), pairs.a.publicKey, Buffer.from(u.signature as string, 'base64')))
  })

  it('refuses forged, altered, unsigned and unknown-source updates before they move the clock', () => {
    const a = new Gossip('a', lww({ security: securityOf('a') }))
    a.set('x', 1)
    const genuine = a.get('x') as Update
    const c = new Gossip('c', lww({ security: securityOf('c') }))
    const bad = invalids(c)
    const clock = c.version
    // b (a relay) tries to alter a's value, keeping a's signature.
    c.write({ ...genuine, value: 2 })
    // ... or to move it to a higher version.
    c.write({ ...genuine, version: genuine.version + 1e9 })
    // ... or to sign a's update with its own key.
    const forged = { key: 'x', value: 3, source_id: 'a', version: genuine.version + 1 }
    c.write({ ...forged, signature: crypto.sign(null, signedBytes(forged), pairs.b.privateKey).toString('base64') })
    // ... or to drop the signature, or send garbage in its place.
    c.write({ key: 'x', value: 1, source_id: 'a', version: genuine.version })
    c.write({ ...genuine, signature: 42 })
    c.write({ ...genuine, signature: 'short' })
    // A source nobody has a key for.
    c.write({ key: 'x', value: 1, source_id: 'mallory', version: 5, signature: genuine.signature })
    // A hostile object whose signature getter throws.
    c.write({
      ...genuine,
      get signature(): string {
        throw new Error('boom')
      },
    })
    assert.deepStrictEqual(bad, new Array(8).fill('signature'))
    assert.strictEqual(Object.keys(c.state).length, 0)
    assert.strictEqual(c.version, clock, 'a refused update moved the clock')
    assert.strictEqual(c.history.sources.get('a')?.max ?? -Infinity, -Infinity)
    c.write(genuine)
    assert.strictEqual(c.get('x').value, 1)
    assert.strictEqual(bad.length, 8)
  })

  it('a node with only public keys verifies but cannot write', () => {
    const v = new Gossip('v', lww({ security: ed25519({ publicKeys }) }))
    assert.throws(() => v.set('x', 1), /no private key/)
    const a = new Gossip('a', lww({ security: securityOf('a') }))
    a.set('x', 1)
    v.write(a.get('x'))
    assert.strictEqual(v.get('x').value, 1)
  })

  it('keeps updates unsigned and unchanged with security off', () => {
    const a = new Gossip('a', lww())
    a.set('x', 1)
    const b = new Gossip('b', lww())
    b.write({ ...a.get('x'), signature: 'ignored' })
    assert.deepStrictEqual(Object.keys(a.get('x')), ['key', 'value', 'source_id', 'version'])
    assert.deepStrictEqual(Object.keys(b.get('x')), ['key', 'value', 'source_id', 'version'])
  })

  it('reissues a restarted node’s writes signed', () => {
    const a = new Gossip('a', lww({ security: securityOf('a') }))
    // a's clock ran ten minutes ahead of the wall clock (a peer's update
    // moved it), and a wrote x there
    const ahead = { key: 'z', value: 0, source_id: 'b', version: Clock.now() + 600_000_000 }
    a.write({ ...ahead, signature: securityOf('b').sign(ahead) })
    a.set('x', 1)
    const old = a.get('x') as Update
    // a restarts without state: its new clock is below its past; a peer tells it.
    const a2 = new Gossip('a', lww({ security: securityOf('a') }))
    a2.set('y', 2)
    assert.ok(a2.get('y').version < old.version)
    a2.write(old) // its own past, genuinely signed
    assert.ok(a2.get('y').version > old.version, 'y was issued again above the past')
    for (const u of Object.values(a2.state)) assert.ok(securityOf('c').verify(u), `${u.key} unsigned`)
    // The copy carries its first version, signed (docs/deletes.md R2): a
    // relay can neither move its place nor strip it.
    const y = a2.get('y') as Update
    assert.ok(y.first !== undefined && y.first < old.version, 'y carries the version first issued')
    const c = new Gossip('c', lww({ security: securityOf('c') }))
    const bad = invalids(c)
    c.write({ ...y, first: y.first - 1 })
    const { first: _first, ...stripped } = y
    c.write(stripped)
    assert.deepStrictEqual(bad, ['signature', 'signature'])
    c.write(y)
    assert.strictEqual((c.get('y') as Update).first, y.first)
  })

  it('validates the option and the keys', () => {
    assert.throws(() => new Gossip('a', lww({ security: {} as Security })), /config.security/)
    assert.throws(() => new Gossip('a', lww({ security: null as unknown as Security })), /config.security/)
    assert.throws(() => ed25519(null as never), TypeError)
    assert.throws(() => ed25519({ publicKeys: null as never }), TypeError)
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 })
    assert.throws(() => ed25519({ publicKeys: { a: rsa.publicKey } }), /not an Ed25519 key/)
    assert.throws(() => ed25519({ publicKeys, privateKey: pairs.a.privateKey }), /needs the id/)
    assert.throws(() => ed25519({ publicKeys, id: 'a', privateKey: rsa.privateKey }), /Ed25519 private key/)
    // Maps, KeyObjects, and a private key given as the public one all work.
    const s = ed25519({
      publicKeys: new Map([['a', crypto.createPrivateKey(pairs.a.privateKey)]]),
      id: 'a',
      privateKey: crypto.createPrivateKey(pairs.a.privateKey),
    })
    const u = { key: 'k', value: [1], source_id: 'a', version: 3 }
    assert.ok(s.verify({ ...u, signature: s.sign(u) }))
    assert.throws(() => s.sign({ ...u, source_id: 'b' }), /no private key/)
  })

  describe('local writes through a stream', () => {
    const write = { key: 'as-me', value: 'written by a peer' }

    it('are refused on every stream of a signing node unless it says otherwise: a peer never writes as the node', async () => {
      const g = new Gossip('a', lww({ security: securityOf('a') }))
      const own = invalids(g)
      const s = g.createStream()
      const other = invalids(s)
      g.write(write)
      s.write(write)
      await new Promise((r) => setImmediate(r))
      assert.strictEqual(g.get('as-me').version, -Infinity)
      assert.deepStrictEqual(own, ['local_write'])
      assert.deepStrictEqual(other, own)
      // an application that means it can say so, per stream
      const trusted = g.createStream({ local_writes: true })
      trusted.write(write)
      await new Promise((r) => setImmediate(r))
      assert.strictEqual(g.get('as-me').value, 'written by a peer')
      assert.strictEqual(typeof (g.get('as-me') as Update).signature, 'string')
    })

    it('are taken without signing, as the original did, unless the node or the stream refuses them', async () => {
      const g = new Gossip('a', lww())
      g.write(write)
      const closed = g.createStream({ local_writes: false })
      const said = invalids(closed)
      closed.write({ key: 'other', value: 1 })
      await new Promise((r) => setImmediate(r))
      assert.strictEqual(g.get('as-me').value, 'written by a peer')
      assert.strictEqual(g.get('other').version, -Infinity)
      assert.strictEqual(said.length, 1)
      const strict = new Gossip('b', lww({ local_writes: false }))
      const s2 = invalids(strict)
      strict.write(write)
      await new Promise((r) => setImmediate(r))
      assert.strictEqual(strict.get('as-me').version, -Infinity)
      assert.strictEqual(s2.length, 1)
      assert.throws(() => g.createStream({ local_writes: 'yes' as never }), /local_writes must be a boolean/)
      assert.throws(() => new Gossip('c', lww({ local_writes: 1 as never })), /local_writes/)
    })
  })
})
