/**
 * What a TCP node makes of its peers' reports (lib/node/reports.ts):
 * counted by code, said within bounds, and what each costs the peer. Over
 * a recording host and connections as the reports read them. (Over TCP:
 * node/tcp.test.ts, adversarial/wire.test.ts.)
 */
import * as assert from 'assert'
import { Admission } from '../../lib/node/admission'
import type { Connection } from '../../lib/node/connection'
import { Reports, type ReportsHost } from '../../lib/node/reports'
import type { Twins } from '../../lib/node/twins'
import type { NodeStats } from '../../lib/node/types'
import { SessionError } from '../../lib/wire/session'

function host(maxInvalid = 2) {
  const said: string[] = []
  const dropped: [string | null, string | null][] = []
  const stale: string[] = []
  const counters = { invalid: {}, refused: {}, twins: 0 } as unknown as NodeStats
  const h: ReportsHost = {
    id: 'me',
    counters,
    admission: new Admission(8, counters.refused, () => undefined),
    twins: {} as Twins,
    maxInvalid,
    log: (l) => said.push(l),
    say: (kind, l) => said.push(`${kind}: ${l}`),
    drop: (_c, code, reason) => void dropped.push([code, reason]),
    restoredStale: (r) => void stale.push(r),
  }
  return { h, said, dropped, stale, counters, reports: new Reports(h) }
}

type Fake = { closed: boolean; peer: string | null; address: string; direction: 'in' | 'out'; invalid: number; lateSaid: boolean; aheadSaid: boolean; aheadOf?: Set<string> }
const conn = (o: Partial<Fake> = {}): Connection & Fake =>
  ({ closed: false, peer: 'p', address: '127.0.0.1:9', direction: 'in', invalid: 0, lateSaid: false, aheadSaid: false, dialer: null, ...o }) as unknown as Connection & Fake

describe('node: Reports', () => {
  it('invalid input: counted by code; said, then the peer dropped past maxInvalid', () => {
    const { reports, said, dropped, counters } = host(2)
    const c = conn()
    for (let i = 0; i < 3; i++) reports.invalid(c, 'a bad key', 'key')
    assert.deepStrictEqual(counters.invalid, { key: 3 })
    assert.deepStrictEqual(said, ['invalid:key: peer p: invalid input dropped: a bad key [key]', 'invalid:key: peer p: invalid input dropped: a bad key [key]'])
    assert.deepStrictEqual(dropped, [['key', 'sent invalid input: a bad key']])
    reports.invalid(conn({ closed: true }), 'x', 'key')
    assert.deepStrictEqual(counters.invalid, { key: 3 }, 'a closed connection reports nothing')
  })

  it("what is no fault of the peer keeps it: late and ahead said once per connection, twin writes counted, a stale restore handed to the node", () => {
    const { reports, said, dropped, stale, counters } = host(0)
    const c = conn()
    for (let i = 0; i < 2; i++) {
      reports.invalid(c, 'v1', 'late')
      reports.invalid(c, 'v2', 'ahead')
    }
    reports.invalid(c, 'twice', 'twin_writes')
    reports.invalid(c, 'older', 'restored_stale')
    assert.deepStrictEqual(dropped, [])
    assert.deepStrictEqual(said.map((l) => l.split(':')[0]), ['late', 'ahead', 'twin_writes'])
    assert.strictEqual(counters.twins, 1)
    assert.deepStrictEqual(stale, ['older'])
  })

  it('ahead: said once per connection and source, for at most 16 sources', () => {
    const { reports, said } = host()
    const c = conn()
    const later = Date.now() * 1000 + 30 * 60e6
    reports.ahead(c, 'me', later)
    reports.ahead(c, 'me', later)
    for (let i = 0; i < 20; i++) reports.ahead(c, `s${i}`, later)
    assert.strictEqual(said.length, 16)
    assert.match(said[0], /^ahead: clock: peer p holds this node's own id me at a version 30\.0 minutes ahead/)
    assert.match(said[1], /^ahead: peer p: sent an update of s0 30\.0 minutes ahead/)
  })

  it("refused: counted; of incoming peers each reason said the first time, then every 100th of the code", () => {
    const { reports, dropped, counters } = host()
    for (let i = 0; i < 101; i++) reports.refused(conn(), new SessionError('other_cluster', 'another cluster: "red"'), true)
    reports.refused(conn(), new SessionError('other_cluster', 'another cluster: "blue"'), true)
    assert.deepStrictEqual(counters.refused, { other_cluster: 102 })
    const spoken = dropped.filter(([, reason]) => reason !== null)
    assert.deepStrictEqual(spoken, [
      ['other_cluster', 'another cluster: "red"'],
      ['other_cluster', 'another cluster: "red" (101 times)'],
      ['other_cluster', 'another cluster: "blue"'],
    ])
  })
})
