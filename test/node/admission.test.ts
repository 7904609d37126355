/**
 * Admission (lib/node/admission.ts): who gets a connection slot of a TCP
 * node, and how refusals are counted and said. (Over real sockets:
 * node/tcp.test.ts, adversarial/squatters.test.ts.)
 */
import * as assert from 'assert'
import { Admission, idlest } from '../../lib/node/admission'
import type { Connection } from '../../lib/node/connection'

interface Fake {
  name: string
  direction: 'in' | 'out'
  opened: number
  answered: boolean
  claimsNothing: boolean
  unanswered: number
}
// A connection as idlest() reads it, opened `ago` ms before now.
function conn(name: string, ago: number, o: Partial<Fake> = {}): Connection {
  const fake: Fake = { name, direction: 'in', opened: Date.now() - ago, answered: true, claimsNothing: false, unanswered: 0, ...o }
  return fake as unknown as Connection
}
const nameOf = (c: Connection | true | null): string | null => (c === null || c === true ? null : (c as unknown as Fake).name)

describe('node: Admission', () => {
  it('idlest: the oldest that never answered, else the oldest that claims nothing, else the most unanswered (2 or more); none younger than a second, none outgoing', () => {
    assert.strictEqual(nameOf(idlest([conn('fine', 5000), conn('never', 3000, { answered: false }), conn('older-never', 4000, { answered: false })])), 'older-never')
    assert.strictEqual(nameOf(idlest([conn('empty', 2000, { claimsNothing: true }), conn('lapsed', 9000, { unanswered: 5 })])), 'empty')
    assert.strictEqual(nameOf(idlest([conn('one', 9000, { unanswered: 1 }), conn('three', 2000, { unanswered: 3 }), conn('two', 9000, { unanswered: 2 })])), 'three')
    assert.strictEqual(nameOf(idlest([conn('young', 10, { answered: false }), conn('mine', 9000, { direction: 'out', answered: false }), conn('one', 9000, { unanswered: 1 })])), null)
  })

  it('room: true while incoming connections and upgrades are below the bound, else the slot to take, or null', () => {
    const a = new Admission(2, {}, () => undefined)
    const squatter = conn('squatter', 5000, { answered: false })
    assert.strictEqual(a.room([conn('out', 5000, { direction: 'out' }), squatter], 0), true)
    assert.strictEqual(nameOf(a.room([conn('fine', 5000), squatter], 0)), 'squatter')
    assert.strictEqual(nameOf(a.room([squatter], 1)), 'squatter')
    assert.strictEqual(a.room([conn('fine', 5000), conn('good', 5000)], 0), null)
  })

  it('refuse: counted by code every time, said the first time and every 100th with the count', () => {
    const refused: Record<string, number> = {}
    const lines: string[] = []
    const a = new Admission(1, refused, (l, level) => lines.push(`${level}: ${l}`))
    for (let i = 0; i < 201; i++) a.refuse('full', 'connection refused: full')
    a.count('origin')
    assert.deepStrictEqual(refused, { full: 201, origin: 1 })
    assert.deepStrictEqual(lines, ['warn: connection refused: full [full]', 'warn: connection refused: full (101 times) [full]', 'warn: connection refused: full (201 times) [full]'])
  })

  it('said: how many times a key was said before; the memory of keys is bounded', () => {
    const a = new Admission(1, {}, () => undefined)
    assert.deepStrictEqual([a.said('x'), a.said('x'), a.said('y'), a.said('x')], [0, 1, 0, 2])
    for (let i = 0; i < 1000; i++) a.said(`k${i}`)
    // Past 1,000 keys it forgets them all and counts afresh.
    assert.strictEqual(a.said('x'), 0)
  })
})
