/**
 * What a TCP node says of membership (lib/node/members.ts): members live,
 * dead, restarted, collected, and twins. Over a Membership's events.
 * (Whole nodes: node/metrics.test.ts, adversarial/membership.test.ts.)
 */
import * as assert from 'assert'
import { EventEmitter } from 'events'
import { Gossip, base } from '../../lib'
import { MEMBER_PREFIX, type Member, type Membership } from '../../lib/membership'
import { sayMembers, watchOwnRecord, type MembersHost } from '../../lib/node/members'
import type { NodeStats } from '../../lib/node/types'

function host(id = 'me') {
  const gossip = new Gossip(id, { resolve: base.resolution.lww_vs_current_vers })
  const twinned: string[] = []
  gossip.twinned = (source: string) => void twinned.push(source)
  const said: string[] = []
  const logged: string[] = []
  const h: MembersHost = {
    gossip,
    counters: { twins: 0 } as NodeStats,
    log: (l) => logged.push(l),
    say: (kind, l) => said.push(`${kind}: ${l}`),
  }
  return { h, gossip, twinned, said, logged }
}

const member = (o: Partial<Member>): Member => ({ id: 'b', address: '127.0.0.1:7', started: 2000, lastHeard: 5000, phi: 9.25, interval: 999.6, ...o }) as Member

describe('node: members', () => {
  it('sayMembers: one line per event, within the budget by kind; a record going back to an earlier start is a twin', () => {
    const { h, twinned, said, logged } = host()
    const m = Object.assign(new EventEmitter(), { threshold: 8, grace: 60_000 }) as unknown as Membership
    sayMembers(m, h)
    m.emit('live', member({}))
    m.emit('dead', member({ address: null }))
    m.emit('restart', member({}), 1000)
    m.emit('restart', member({ started: 500 }), 1000)
    m.emit('collected', member({}), true)
    m.emit('collected', member({}), false)
    assert.deepStrictEqual(said.slice(0, 3), [
      'member_live: member b is live at 127.0.0.1:7',
      'member_dead: member b is dead: no heartbeat for 5000 ms (phi 9.3 > 8; heartbeats came every 1000 ms)',
      'member_restarted: member b restarted (a new incarnation at 127.0.0.1:7)',
    ])
    assert.match(said[3], /^member_twin: twin: member b's record went back from a start at 1970-01-01T00:00:01\.000Z to 1970-01-01T00:00:00\.500Z at 127\.0\.0\.1:7/)
    assert.match(said[4], /^member_collected: member b collected: dead for 60000 ms or more/)
    assert.match(said[5], /^member_collected: member b collected early/)
    assert.deepStrictEqual(twinned, ['b'])
    assert.strictEqual(h.counters.twins, 1)
    for (let i = 0; i < 101; i++) m.emit('invalid', 'x', 'bad record', 'value')
    assert.deepStrictEqual(logged, ['member x: bad record (1 such reports so far) [value]', 'member x: bad record (101 such reports so far) [value]'])
  })

  it("watchOwnRecord: a record of our own id that started after we did is a twin, said once; an older one is our past", () => {
    const { h, gossip, twinned, logged } = host('me')
    const m = { member: (id: string) => (id === 'me' ? { started: 1000 } : undefined) } as unknown as Membership
    watchOwnRecord(h, () => m)
    gossip.history.write(`${MEMBER_PREFIX}me`, { address: 'x:1', started: 900 }, 'me', 1)
    assert.deepStrictEqual(twinned, [])
    gossip.history.write(`${MEMBER_PREFIX}me`, { address: 'x:1', started: 1500 }, 'me', 2)
    gossip.history.write(`${MEMBER_PREFIX}me`, { address: 'x:1', started: 1600 }, 'me', 3)
    assert.deepStrictEqual(twinned, ['me', 'me'])
    assert.strictEqual(h.counters.twins, 1)
    assert.strictEqual(logged.length, 1)
    assert.match(logged[0], /^twin: a record of this node's own id me, at "x:1", started 1970-01-01T00:00:01\.500Z, after this node/)
  })
})
