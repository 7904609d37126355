/**
 * LogBudget (lib/node/log-budget.ts): the log lines a peer can cause once
 * per connection, bounded per kind and window. (A node's logUnsaid under
 * floods: adversarial/squatters.test.ts.)
 */
import * as assert from 'assert'
import { LogBudget } from '../../lib/node/log-budget'
import { until } from '../adversarial/harness'

describe('node: LogBudget', () => {
  it('per-connection log lines: the first of a kind in a window are said, then one line with how many were not', async () => {
    const said: string[] = []
    const unsaid: Record<string, number> = {}
    const budget = new LogBudget((l) => said.push(l), unsaid, 2, 50)
    for (let i = 0; i < 5; i++) budget.say('connected', `peer p${i} connected`)
    budget.say('disconnected', 'peer p0 disconnected')
    assert.deepStrictEqual(said, ['peer p0 connected', 'peer p1 connected', 'peer p0 disconnected'])
    assert.deepStrictEqual(unsaid, { connected: 3 })
    await until(() => said.length === 4, 5000, 'the window to end')
    assert.match(said[3], /^3 more "connected" lines .* not said/)
    budget.say('connected', 'peer p9 connected')
    assert.strictEqual(said[4], 'peer p9 connected')
    budget.close()
  })
})
