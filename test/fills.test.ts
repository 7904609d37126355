/**
 * Gap fills (lib/fills.ts): mappings a peer may lack though its digest
 * names their source at or above them, offered to it once each; twinned
 * sources; our own rebuilt log. Over a History. (Through nodes:
 * adversarial/twins.test.ts, adversarial/identity.test.ts.)
 */
import * as assert from 'assert'
import { History } from '../lib'
import type { Update } from '../lib'
import { GapFills, type FillCursor, type RebuiltLog } from '../lib/fills'

const cursor = (): FillCursor => ({ fillAt: 0, fillWait: null, pastAt: -Infinity })
const none: RebuiltLog = { rebuiltTo: -Infinity, rebuiltFrom: -Infinity, settled: true }

describe('fills', () => {
  it('a mapping taken below its max is offered once to a peer whose digest names its source at or above it', () => {
    const history = new History(Infinity)
    const fills = new GapFills('me', history, none)
    const u = history.write('k', 1, 's', 3)
    fills.took(u, true)
    fills.took(history.write('j', 1, 's', 9), false)
    const at = cursor()
    // The peer names s below u: it is not behind on it yet, so it waits.
    assert.strictEqual(fills.fillsFor(at, new Map([['s', 2]]), null, 10), null)
    assert.deepStrictEqual(at.fillWait, [u])
    assert.deepStrictEqual(fills.fillsFor(at, new Map([['s', 5]]), null, 10), [u])
    assert.strictEqual(fills.fillsFor(at, new Map([['s', 5]]), null, 10), null, 'once per peer')
    // Another peer gets it too; a filter that leaves it out does not.
    assert.deepStrictEqual(fills.fillsFor(cursor(), new Map([['s', 9]]), null, 10), [u])
    assert.strictEqual(fills.fillsFor(cursor(), new Map([['s', 9]]), (source) => source !== 's', 10), null)
  })

  it('at most mtu at once; a fill no longer current is not offered', () => {
    const history = new History(Infinity)
    const fills = new GapFills('me', history, none)
    const us = [1, 2, 3].map((v) => history.write(`k${v}`, v, 's', v))
    for (const u of us) fills.took(u, true)
    history.write('k1', 'newer', 's', 4)
    const at = cursor()
    const heard = new Map([['s', 9]])
    assert.deepStrictEqual(fills.fillsFor(at, heard, null, 1), [us[1]])
    assert.deepStrictEqual(fills.fillsFor(at, heard, null, 1), [us[2]])
    assert.strictEqual(fills.fillsFor(at, heard, null, 1), null)
  })

  it('a twinned source: its mappings are offered as fills, and told to peers with the whole seconds it stays so', () => {
    const history = new History(Infinity)
    const fills = new GapFills('me', history, none)
    const held = history.write('k', 1, 't', 1)
    assert.strictEqual(fills.twinsToTell(), undefined)
    fills.twinned('t', 5500)
    const later = history.write('j', 2, 't', 2)
    fills.took(later, false)
    // Whole seconds, rounded down: 5 s unless this test lags by half a second.
    const told = (): Record<string, number> => fills.twinsToTell() ?? {}
    const t = told().t
    assert.ok(t % 1000 === 0 && t > 0 && t <= 5000, String(t))
    assert.deepStrictEqual(fills.fillsFor(cursor(), new Map([['t', 2]]), null, 10), [held, later])
    fills.twinned('u', 0)
    assert.deepStrictEqual(Object.keys(told()), ['t'], 'a twin whose time is up is not told')
  })

  it('our own rebuilt log, once our past is settled: offered in version order up to where the peer names us', () => {
    const history = new History(Infinity)
    const own = [1, 2, 3, 4].map((v) => history.write(`k${v}`, v, 'me', v))
    const life = { rebuiltTo: 3, rebuiltFrom: 0, settled: false }
    const fills = new GapFills('me', history, life)
    const at = cursor()
    assert.strictEqual(fills.fillsFor(at, new Map([['me', 9]]), null, 10), null, 'not before our past is settled')
    life.settled = true
    assert.deepStrictEqual(fills.fillsFor(at, new Map([['me', 2]]), null, 10), own.slice(0, 2))
    assert.deepStrictEqual(fills.fillsFor(at, new Map([['me', 9]]), null, 10), [own[2]], 'up to rebuiltTo, each once')
    assert.strictEqual(fills.fillsFor(at, new Map([['me', 9]]), null, 10), null)
  })
})
