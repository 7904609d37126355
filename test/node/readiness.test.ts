/**
 * A node's readiness pieces (lib/node/readiness.ts): how stale each peer
 * is. (`/ready` and in sync over TCP: node/tcp.test.ts; staleness scraped:
 * node/metrics.test.ts.)
 */
import * as assert from 'assert'
import { Gossip, base } from '../../lib'
import type { Connection } from '../../lib/node/connection'
import { Staleness } from '../../lib/node/readiness'

// A connection as Staleness reads it.
const peer = (id: string | null, ownHeld: number, digested = true): Connection => ({ peer: id, ownHeld, digested }) as unknown as Connection

describe('node: Staleness', () => {
  it("a peer's staleness: how long ago we wrote the oldest of our updates its last digest did not hold; none before its first digest", async () => {
    const g = new Gossip('a', { resolve: base.resolution.lww_vs_current_vers })
    const s = new Staleness(g)
    g.set('x', 1)
    const first = g.get('x').version
    const t0 = Date.now()
    while (Date.now() - t0 < 30) await new Promise((r) => setTimeout(r, 5))
    g.set('y', 2)
    const second = g.get('y').version
    // Another source's writes are not ours: they change nothing.
    g.history.write('z', 3, 'b', second + 10)
    const [behindBoth, behindOne, holdsAll, silent, anonymous] = s.of([peer('p', first - 1), peer('q', first), peer('r', second), peer('s', -Infinity, false), peer(null, -Infinity)])
    assert.strictEqual(behindBoth.id, 'p')
    assert.ok(behindBoth.ms >= 30, String(behindBoth.ms))
    assert.ok(behindOne.ms < behindBoth.ms, `${behindOne.ms} < ${behindBoth.ms}`)
    assert.deepStrictEqual(holdsAll, { id: 'r', ms: 0 })
    assert.strictEqual(silent, undefined)
    assert.strictEqual(anonymous, undefined)
  })
})
