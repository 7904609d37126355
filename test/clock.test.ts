/**
 * The clock (lib/clock.ts) under poisoning and twins. No input from a peer
 * may leave a node unable to write, replicate or restart. Each attack here
 * was a defect: a digest entry or an update at MAX_VERSION moved a node's
 * clock to where every peer refused its writes; digest lines naming a node
 * just above its clock made it issue all its writes again, per line; two
 * live nodes with one id re-issued writes forever without a word.
 */
import * as assert from 'assert'
import { Clock, Gossip, MAX_VERSION, base } from '../lib'
import type { InvalidCode, Message, PeerStream, Update } from '../lib'

const resolve = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

function collect(s: PeerStream): Message[] {
  const out: Message[] = []
  for (let m = s.read() as Message | null; m !== null; m = s.read() as Message | null) out.push(m)
  return out
}

// What `s` reported, as `code: reason` (tests read the code; the reason is for people).
function invalids(s: PeerStream): string[] {
  const out: string[] = []
  s.on('invalid', (_o: unknown, r: string, code: InvalidCode) => out.push(`${code}: ${r}`))
  return out
}
const coded = (code: InvalidCode) => (said: string): boolean => said.startsWith(`${code}: `)

async function exchange(a: PeerStream, b: PeerStream, rounds = 3): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    a.gossip()
    for (let i = 0; i < 6; i++) await turn()
    b.gossip()
    for (let i = 0; i < 6; i++) await turn()
  }
}

describe('clock poisoning', () => {
  it('refuses a digest naming the node at MAX_VERSION; its writes stay acceptable to peers', async () => {
    const victim = new Gossip('v', { resolve })
    const said = invalids(victim)
    victim.write({ digest: true, source_id: 'v', version: MAX_VERSION })
    victim.write({ digest: true, done: true, protocol: 2 })
    await turn()
    assert.ok(said.some(coded('ahead')), said.join('; '))
    assert.ok(victim.version < Clock.now() + Clock.AHEAD)
    victim.set('k', 'still writing')
    const peer = new Gossip('p', { resolve })
    const peerSaid = invalids(peer)
    victim.pipe(peer).pipe(victim)
    await exchange(victim, peer)
    assert.deepStrictEqual(peerSaid, [])
    assert.strictEqual(peer.get('k').value, 'still writing')
  })

  it('refuses an update at MAX_VERSION (unsigned mode): not stored, not relayed, the clock unmoved', async () => {
    const victim = new Gossip('v', { resolve })
    const said = invalids(victim)
    const before = victim.version
    victim.write({ key: 'poison', value: 1, source_id: 'evil', version: MAX_VERSION })
    await turn()
    assert.strictEqual(said.length, 1)
    assert.strictEqual(victim.version, before)
    assert.strictEqual(victim.get('poison').version, -Infinity)
    assert.deepStrictEqual(victim.sources('poison'), [])
  })

  it('a version an hour ahead at most is taken, but moves the clock only half that, so the next write is accepted', async () => {
    const victim = new Gossip('v', { resolve })
    const far = Clock.now() + Clock.AHEAD - 1_000_000
    victim.write({ key: 'future', value: 1, source_id: 'skewed', version: far })
    await turn()
    assert.strictEqual(victim.get('future').version, far)
    assert.ok(victim.version <= Clock.now() + Clock.AHEAD / 2 + 1)
    victim.set('k', 1)
    const peer = new Gossip('p', { resolve })
    const peerSaid = invalids(peer)
    victim.pipe(peer).pipe(victim)
    await exchange(victim, peer)
    assert.deepStrictEqual(peerSaid, [])
    assert.strictEqual(peer.get('k').value, 1)
  })

  it('digest lines naming the node just above its clock burn a bounded number of versions, then are reported', async () => {
    const victim = new Gossip('v', { resolve })
    for (let i = 0; i < 20; i++) victim.set(`k${i}`, i)
    const attacker = victim.createStream()
    const said = invalids(attacker)
    const start = victim.version
    // An attacker that reads the victim's clock and names it + 1, line after
    // line, digest after digest.
    for (let line = 0; line < 200; line++) {
      attacker.write({ digest: true, source_id: 'v', version: victim.version + 1 })
      if (line % 5 === 4) attacker.write({ digest: true, done: true, protocol: 2 })
      await turn()
      collect(attacker)
    }
    const burned = victim.version - start
    assert.strictEqual(said.filter(coded('twin_writes')).length, 1, said.join('; '))
    assert.strictEqual(attacker.destroyed, false, 'the stream stays open: its peer may be an honest relay')
    // at most TWIN_LIMIT rounds of re-issuing 20 writes (and the lines' own +1s)
    assert.ok(burned <= (Clock.TWIN_LIMIT + 1) * 21, `burned ${burned} versions`)
    // and the node still writes and replicates with an honest peer
    victim.set('after', 'ok')
    const peer = new Gossip('p', { resolve })
    const vs = victim.createStream()
    const ps = peer.createStream()
    vs.pipe(ps).pipe(vs)
    await exchange(vs, ps)
    assert.strictEqual(peer.get('after').value, 'ok')
  })
})

describe('twin ids', () => {
  it('two live nodes with one id are reported within a bounded number of exchanges, and stop re-issuing', async () => {
    const a1 = new Gossip('a', { resolve })
    const a2 = new Gossip('a', { resolve })
    const errors: string[] = []
    const s1 = a1.createStream()
    const s2 = a2.createStream()
    s1.on('invalid', (_o: unknown, r: string, code: InvalidCode) => errors.push(`${code}: a1: ${r}`))
    s2.on('invalid', (_o: unknown, r: string, code: InvalidCode) => errors.push(`${code}: a2: ${r}`))
    s1.pipe(s2).pipe(s1)
    a1.set('x', 1)
    a2.set('y', 2)
    let exchanges = 0
    while (errors.length === 0 && exchanges < 100) {
      if (!s1.destroyed) s1.gossip()
      if (!s2.destroyed) s2.gossip()
      for (let i = 0; i < 6; i++) await turn()
      exchanges++
      if (exchanges % 3 === 0) {
        a1.set('x', exchanges)
        a2.set('y', exchanges)
      }
    }
    assert.ok(errors.length > 0, 'a twin was reported')
    assert.ok(exchanges <= 2 * Clock.TWIN_LIMIT + 4, `reported after ${exchanges} exchanges`)
    assert.ok(coded('twin_writes')(errors[0]), errors[0])
    // no endless re-issuing once reported
    const before = [a1.version, a2.version]
    for (let i = 0; i < 10; i++) await turn()
    assert.deepStrictEqual([a1.version, a2.version], before)
  })

  it('a restart without saved state is not a twin', async () => {
    const a = new Gossip('a', { resolve, mtu: 2 })
    const b = new Gossip('b', { resolve, mtu: 2 })
    const ab = a.createStream()
    const ba = b.createStream()
    ab.pipe(ba).pipe(ab)
    for (let i = 0; i < 10; i++) a.set(`k${i}`, i)
    await exchange(ab, ba, 8)
    ab.unpipe(ba)
    ba.unpipe(ab)
    const a2 = new Gossip('a', { resolve, mtu: 2 })
    a2.set('fresh', 1)
    const s = a2.createStream()
    const t = b.createStream()
    let error: unknown = null
    s.on('error', (e: unknown) => (error = e))
    s.pipe(t).pipe(s)
    await exchange(s, t, 12)
    assert.strictEqual(error, null)
    assert.strictEqual(b.get('fresh').value, 1)
    assert.strictEqual((a2.get('k9') as Update).value, 9, 'the past came back')
  })

  it('a peer that keeps naming the node above its clock is reported, never thrown: the node wired as one stream lives on', async () => {
    // The README's wiring: the Gossip itself is the stream, with no 'error'
    // listener; an unhandled 'error' would end the process.
    const client = new Gossip('client', { resolve })
    client.set('x', 1)
    const said = invalids(client)
    for (let i = 1; i <= 2 * Clock.TWIN_LIMIT; i++) {
      client.write({ digest: true, source_id: 'client', version: client.version + i * 60e6 })
      await turn()
      collect(client)
    }
    assert.ok(said.some(coded('twin_writes')), said.join('; '))
    assert.strictEqual(client.destroyed, false)
    client.set('y', 2)
    assert.strictEqual(client.get('y').value, 2)
  })

  it("a liar that tripped the twin limit does not keep the node's past from coming back through honest peers", async () => {
    const b = new Gossip('b', { resolve })
    let a = new Gossip('a', { resolve })
    let ab = a.createStream()
    let ba = b.createStream()
    ab.pipe(ba).pipe(ab)
    for (let i = 0; i < 5; i++) a.set(`past${i}`, i)
    await exchange(ab, ba)
    ab.unpipe(ba)
    ba.unpipe(ab)
    // a restarts without state; a liar speaks first
    a = new Gossip('a', { resolve })
    a.set('fresh', 1)
    const liar = a.createStream()
    const said = invalids(liar)
    for (let i = 1; i <= 2 * Clock.TWIN_LIMIT; i++) {
      liar.write({ digest: true, source_id: 'a', version: a.version + i * 1000 })
      await turn()
      collect(liar)
    }
    assert.ok(said.some(coded('twin_writes')), 'the liar was reported')
    // and its digests no longer move a's clock (a digest burns nothing);
    // an update of a's id it sends is taken by version, as every other
    // node takes it (docs/twins.md R7: a survivor of twins must end holding
    // the other's writes; without keys a forgery is one too), and the clock
    // follows it so that a's next writes pass it
    const held = a.version
    liar.write({ digest: true, source_id: 'a', version: held + 5_000_000 })
    liar.write({ digest: true, done: true, protocol: 2 })
    await turn()
    collect(liar)
    assert.strictEqual(a.version, held)
    liar.write({ key: 'fresh', value: 'forged', source_id: 'a', version: held + 5_000_001 })
    await turn()
    collect(liar)
    assert.strictEqual(a.get('fresh').value, 'forged')
    a.set('fresh', 2)
    assert.ok(a.get('fresh').version > held + 5_000_001, "a's next write passes the forgery")
    assert.strictEqual(liar.destroyed, false)
    ab = a.createStream()
    ba = b.createStream()
    ab.pipe(ba).pipe(ab)
    await exchange(ab, ba, 6)
    assert.deepStrictEqual(Object.keys(a.state).sort(), ['fresh', 'past0', 'past1', 'past2', 'past3', 'past4'])
  })
})
