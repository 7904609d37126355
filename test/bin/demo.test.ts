/**
 * `simple-scuttle demo` (bin/demo.ts): six nodes in a ring, in one process.
 */
import * as assert from 'assert'
import { demo } from '../../bin/demo'

describe('simple-scuttle demo', () => {
  it('runs the ring until every node holds all 19 keys and one leader, and says so', async () => {
    const lines: string[] = []
    const rounds = await demo((l) => lines.push(l))
    assert.ok(rounds > 0 && rounds <= 50, `converged: ${lines.join('\n')}`)
    assert.match(lines[0], /^6 nodes in a ring, mtu 4/)
    assert.strictEqual(lines.length, rounds + 2, 'the first line, one per round, and the verdict')
    assert.match(lines[rounds], / keys held 19 19 19 19 19 19 \(of 19\); leader seen as node-\d$/)
    assert.match(lines[rounds + 1], new RegExp(`^converged after ${rounds} rounds: every node holds 19 keys and agrees leader = node-[024]$`))
  })
})
