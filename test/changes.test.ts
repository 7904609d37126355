/**
 * The 'change' events (lib/changes.ts): in order, never nested, a listener
 * that throws reported and not thrown. (Through a node: watches.test.ts.)
 */
import * as assert from 'assert'
import { EventEmitter } from 'events'
import { Changes } from '../lib/changes'
import type { ResolutionContext, Update } from '../lib'

const u = (key: string, source_id: string, version: number, deleted?: true): Update => (deleted ? { key, value: null, source_id, version, deleted } : { key, value: version, source_id, version })

function host() {
  const node = new EventEmitter()
  const context = {} as ResolutionContext
  const invalid: unknown[][] = []
  node.on('invalid', (...args: unknown[]) => invalid.push(args))
  return { node, invalid, host: { context, emit: node.emit.bind(node), rawListeners: (e: 'change') => node.rawListeners(e) } }
}

describe('changes', () => {
  it('says local, remote or delete, and nothing for a key absent before and after', () => {
    const { node, host: h } = host()
    const changes = new Changes('a', h)
    const seen: unknown[] = []
    node.on('change', (key: string, now: Update | undefined, how: string) => seen.push([key, now?.version, how]))
    changes.changed('x', undefined, u('x', 'a', 1))
    changes.changed('x', u('x', 'a', 1), u('x', 'b', 2))
    changes.changed('x', u('x', 'b', 2), u('x', 'b', 3, true))
    changes.changed('x', u('x', 'b', 3, true), undefined)
    changes.changed('y', undefined, undefined)
    assert.deepStrictEqual(seen, [
      ['x', 1, 'local'],
      ['x', 2, 'remote'],
      ['x', undefined, 'delete'],
    ])
  })

  it('a change raised by a listener waits until the listeners return: never nested, in order', () => {
    const { node, host: h } = host()
    const changes = new Changes('a', h)
    const log: string[] = []
    node.on('change', (key: string) => {
      log.push(`begin ${key}`)
      if (key === 'x') changes.changed('y', undefined, u('y', 'a', 2))
      log.push(`end ${key}`)
    })
    node.on('change', (key: string) => log.push(`second ${key}`))
    changes.changed('x', undefined, u('x', 'a', 1))
    assert.deepStrictEqual(log, ['begin x', 'end x', 'second x', 'begin y', 'end y', 'second y'])
  })

  it("a listener that throws is reported as 'invalid' (node_error), and the others still hear", () => {
    const { node, invalid, host: h } = host()
    const changes = new Changes('a', h)
    const heard: string[] = []
    node.on('change', () => {
      throw new Error('oops')
    })
    node.on('change', (key: string) => heard.push(key))
    changes.changed('x', undefined, u('x', 'a', 1))
    assert.deepStrictEqual(heard, ['x'])
    assert.deepStrictEqual(invalid, [[{ key: 'x' }, "a 'change' listener threw: oops", 'node_error']])
  })

  it('at most CHAIN changes in one turn: a listener that writes forever leaves the event loop serving', async () => {
    const { node, host: h } = host()
    const changes = new Changes('a', h)
    let n = 0
    node.on('change', () => {
      n++
      if (n < Changes.CHAIN + 5) changes.changed(`k${n}`, undefined, u(`k${n}`, 'a', n))
    })
    changes.changed('k0', undefined, u('k0', 'a', 0))
    assert.strictEqual(n, Changes.CHAIN)
    // The rest go on in the next turn (a timer set before this one).
    await new Promise((r) => setTimeout(r, 0))
    assert.strictEqual(n, Changes.CHAIN + 5)
  })
})
