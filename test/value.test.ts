/**
 * What a value must be to travel (lib/value.ts): JSON-safe, one set of
 * limits on every path, and nobody can change it once held.
 * Each attack here was a defect: a value nested 5,000 deep from a peer
 * crashed a node; a 2 MB write was acknowledged and then refused by the
 * wire forever; a caller's object, mutated after `set`, split replicas.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Clock, Gossip, History, MAX_DEPTH, MAX_ID_LENGTH, MAX_KEY_LENGTH, MAX_LINE_LENGTH, MAX_VALUE_LENGTH, MAX_VERSION, base, jsonProblem, parse, serialize } from '../lib'
import { openGossip } from '../lib/node/sqlite'
import type { Message, PeerStream, Update } from '../lib'
import Database from 'better-sqlite3'
import { rowCrc } from '../lib/node/store/checksum'

const resolve = base.resolution.lww_vs_current_vers
const turn = () => new Promise((r) => setImmediate(r))

function nested(depth: number): unknown {
  let v: unknown = 0
  for (let i = 0; i < depth; i++) v = { v }
  return v
}

function reasons(s: PeerStream): string[] {
  const out: string[] = []
  s.on('invalid', (_o: unknown, r: string) => out.push(r))
  return out
}

async function sync(a: Gossip, b: Gossip): Promise<void> {
  a.pipe(b).pipe(a)
  for (let i = 0; i < 3; i++) {
    b.gossip()
    for (let j = 0; j < 5; j++) await turn()
  }
}

// The same over NDJSON lines, as two processes would.
async function syncOverNdjson(a: Gossip, b: Gossip): Promise<void> {
  const as = a.createStream()
  as.pipe(serialize({ format: 'ndjson' })).pipe(parse({ format: 'ndjson' })).pipe(b).pipe(serialize({ format: 'ndjson' })).pipe(parse({ format: 'ndjson' })).pipe(as)
  for (let i = 0; i < 3; i++) {
    b.gossip()
    for (let j = 0; j < 5; j++) await turn()
  }
}

describe('limits: the same on every path', () => {
  it('a peer value nested past MAX_DEPTH is refused with a report; the node keeps working', async () => {
    const g = new Gossip('n', { resolve })
    const said = reasons(g)
    g.write({ key: 'deep', value: nested(5000), source_id: 'p', version: 1 })
    g.write({ key: 'ok', value: nested(MAX_DEPTH - 1), source_id: 'p', version: 2 })
    await turn()
    assert.strictEqual(said.length, 1)
    assert.match(said[0], new RegExp(`nested more than ${MAX_DEPTH} levels`))
    assert.strictEqual(g.get('deep').version, -Infinity)
    assert.strictEqual(g.get('ok').version, 2)
    // and what it holds still serialises: relaying it cannot fail
    assert.doesNotThrow(() => JSON.stringify(g.state))
  })

  it('set refuses what the wire would refuse: too long, too deep, too long a key', () => {
    const g = new Gossip('n', { resolve })
    assert.throws(() => g.set('big', 'x'.repeat(2 * 1024 * 1024)), /longer than \d+ characters as JSON/)
    assert.throws(() => g.set('big', ['x'.repeat(MAX_VALUE_LENGTH)]), /longer than/)
    // escaping counts: 200k control characters are 1.2M characters of JSON
    assert.throws(() => g.set('esc', '\u0001'.repeat(200_000)), /longer than/)
    assert.throws(() => g.set('deep', nested(MAX_DEPTH + 1)), /nested more than/)
    assert.throws(() => g.set('k'.repeat(MAX_KEY_LENGTH + 1), 1), /key is longer than/)
    assert.throws(() => new Gossip('i'.repeat(MAX_ID_LENGTH + 1), { resolve }), /id is longer than/)
    assert.strictEqual(g.get('big').version, -Infinity)
  })

  it('the largest value set accepts crosses the wire in one line', async () => {
    const a = new Gossip('a', { resolve })
    const b = new Gossip('b', { resolve })
    const value = 'y'.repeat(MAX_VALUE_LENGTH - 2)
    a.set('k'.repeat(MAX_KEY_LENGTH), value)
    const lines: string[] = []
    const out = serialize({ format: 'ndjson' })
    out.on('data', (chunk: Buffer) => lines.push(...String(chunk).split(/(?<=\n)/)))
    const input = parse({ format: 'ndjson' })
    const refused: string[] = []
    input.on('invalid', (_x: unknown, r: string) => refused.push(r))
    a.pipe(out).pipe(input).pipe(b)
    b.pipe(a)
    b.gossip()
    for (let i = 0; i < 20 && b.get('k'.repeat(MAX_KEY_LENGTH)).version === -Infinity; i++) await turn()
    assert.deepStrictEqual(refused, [])
    assert.strictEqual(b.get('k'.repeat(MAX_KEY_LENGTH)).value, value)
    assert.ok(Math.max(...lines.map((l) => l.length)) <= MAX_LINE_LENGTH + 1)
  })

  it("a node's history.write admits only what a peer's update would be admitted for; a history of its own takes any value, as the original's", () => {
    const g = new Gossip('a', { resolve })
    const bad: [string, unknown, string, number][] = [
      ['k', 1, 'x', Infinity],
      ['k', 1, 'x', '5' as unknown as number],
      ['k', undefined, 'x', 5],
      ['k', () => 1, 'x', 5],
      ['__proto__', { polluted: true }, 'x', 5],
      ['k', 1, 'x', 2 ** 60],
    ]
    for (const args of bad) assert.throws(() => g.history.write(...args), TypeError, JSON.stringify(args))
    assert.deepStrictEqual(Object.keys(g.state), [])
    assert.strictEqual(g.history.write('k', { ok: 1 }, 'x', 5).version, 5)
    const own = new History(3)
    assert.strictEqual(own.write('k', Infinity, 'x', 0).value, Infinity)
  })

  it('a saved clock past MAX_VERSION is refused; a node restored that high says so at set instead of reusing versions', () => {
    for (const field of ['version', 'reserved'] as const) {
      assert.throws(() => Gossip.restore('n', { resolve }, { version: 0, updates: [], [field]: Number.MAX_SAFE_INTEGER }), new RegExp(`state.${field} must be an integer up to MAX_VERSION`))
    }
    const u = { key: 'k', value: 1, source_id: 'b', version: MAX_VERSION }
    for (const g of [Gossip.restore('n', { resolve }, { version: 0, updates: [u] }), new Gossip('n', { resolve }, { k: u } as never)]) {
      assert.throws(() => g.set('x', 1), /clock passed MAX_VERSION/)
    }
    // a clock that went back: what was saved ahead of it restores, and writes go on above it
    const g = new Gossip('n', { resolve })
    g.set('k', 1)
    const saved = g.snapshot()
    const now = Clock.now
    Clock.now = () => 0
    try {
      const back = Gossip.restore('n', { resolve }, saved)
      back.set('k', 2)
      assert.ok(back.version > g.version)
    } finally {
      Clock.now = now
    }
  })

  it('a snapshot, a store object and a data directory holding a value past the limits are refused', () => {
    const bad = { key: 'k', value: nested(MAX_DEPTH + 5), source_id: 'p', version: 1 }
    assert.throws(() => Gossip.restore('n', { resolve }, { version: 1, updates: [bad] }), /nested more than/)
    assert.throws(() => new Gossip('n', { resolve }, { k: bad } as never), /store entry "k".*nested more than/)
    // A data directory: a row that passes its checksum but not the limits.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'limits-'))
    const { gossip, store } = openGossip('n', { resolve }, dir)
    gossip.set('k', 1)
    return store.close().then(() => {
      const db = new Database(path.join(dir, 'state.db'))
      const value = JSON.stringify(bad.value)
      db.prepare('UPDATE mappings SET value = ?, crc = ? WHERE key = ?').run(value, rowCrc('k', 'n', (gossip.get('k') as Update).version, value, null), 'k')
      db.close()
      assert.throws(() => openGossip('n', { resolve }, dir), /nested more than/)
    })
  })
})

describe('values a node holds are immutable', () => {
  it("mutating the caller's object after set changes nothing, here or at a peer", async () => {
    const p = new Gossip('p', { resolve })
    const q = new Gossip('q', { resolve })
    const v = { w: 3, h: 4, inner: { list: [1, 2] } }
    p.set('size', v)
    await sync(p, q)
    v.w = 7
    v.inner.list.push(3)
    assert.deepStrictEqual(p.get('size').value, { w: 3, h: 4, inner: { list: [1, 2] } })
    assert.deepStrictEqual(q.get('size').value, p.get('size').value)
  })

  it('a value or update read back cannot be changed (strict code throws), so replicas cannot split', async () => {
    const p = new Gossip('p', { resolve })
    const q = new Gossip('q', { resolve })
    p.set('size', { w: 3, inner: { x: 1 } })
    await sync(p, q)
    const held = p.get('size') as Update<{ w: number; inner: { x: number } }>
    assert.throws(() => {
      ;(held.value as { w: number }).w = 99
    }, TypeError)
    assert.throws(() => {
      held.value.inner.x = 2
    }, TypeError)
    assert.throws(() => {
      ;(held as { version: number }).version = 1
    }, TypeError)
    assert.deepStrictEqual(q.get('size').value, { w: 3, inner: { x: 1 } })
    assert.strictEqual(q.get('size').version, held.version)
  })

  it('a value with a getter is refused through a stream (kept as it is, it would change on every read); set copies the data', () => {
    const g = new Gossip('a', { resolve })
    const reasons: string[] = []
    g.on('invalid', (_o: unknown, r: string) => reasons.push(r))
    let n = 0
    const live = Object.defineProperty({}, 'count', { get: () => ++n, enumerable: true })
    g.write({ key: 'live', value: { inner: live }, source_id: 'p', version: Clock.now() })
    assert.strictEqual(g.get('live').version, -Infinity)
    assert.match(reasons[0], /getter.*at \.inner/)
    g.set('copied', live)
    const held = g.get('copied').value
    assert.strictEqual(JSON.stringify(held), JSON.stringify(held))
    assert.strictEqual(Object.getOwnPropertyDescriptor(held, 'count')?.get, undefined)
  })

  it("a value that arrives through a stream is frozen where it is, and the writer's later change is refused", async () => {
    const g = new Gossip('n', { resolve })
    const value = { a: [1, { b: 2 }] }
    g.write({ key: 'k', value, source_id: 'p', version: 1 } as Message)
    await turn()
    assert.ok(Object.isFrozen(value) && Object.isFrozen(value.a) && Object.isFrozen(value.a[1]))
    assert.throws(() => {
      ;(value.a[1] as { b: number }).b = 3
    }, TypeError)
    assert.deepStrictEqual(g.get('k').value, { a: [1, { b: 2 }] })
  })

  it('keeps "__proto__" inside a value as plain data, never as a prototype', () => {
    const g = new Gossip('n', { resolve })
    const v = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}')
    g.set('k', v)
    const held = g.get('k').value as Record<string, unknown>
    assert.strictEqual(Object.getPrototypeOf(held), Object.prototype)
    assert.deepStrictEqual(Object.keys(held), ['__proto__', 'x'])
    assert.strictEqual(({} as Record<string, unknown>).polluted, undefined)
  })
})

describe('a value is admitted by one walk of its own, whatever runs during it', () => {
  // A getter (or a proxy trap) may call back into the library while its
  // value is being checked; the outer check must not lose its own state to
  // the inner one (a re-entrant set once admitted a value past the length
  // limit, that an in-process peer took and an NDJSON peer refused).
  it('set refuses an over-long value whose getter calls set, as it refuses it without the getter', async () => {
    const g = new Gossip('a', { resolve })
    let inner = 0
    const big = 'x'.repeat(MAX_VALUE_LENGTH + 100)
    const v = {
      a: big,
      get b() {
        inner++
        g.set('inner', { z: 1 })
        return 1
      },
    }
    assert.throws(() => g.set('k', v), (e: Error) => e instanceof TypeError && /longer than \d+ characters as JSON/.test(e.message))
    assert.strictEqual(inner, 1)
    assert.strictEqual(g.get('k').version, -Infinity)
    assert.deepStrictEqual(g.get('inner').value, { z: 1 })
    // What set took, every peer takes: an in-process one and one over NDJSON.
    const p = new Gossip('p', { resolve })
    const q = new Gossip('q', { resolve })
    const said = [...reasons(p), ...reasons(q)]
    await sync(g, p)
    await syncOverNdjson(g, q)
    assert.deepStrictEqual(said, [])
    assert.deepStrictEqual(Object.keys(p.state), ['inner'])
    assert.deepStrictEqual(Object.keys(q.state), ['inner'])
  })

  it('set names the cycle of a value whose getter calls set and returns the value itself', () => {
    const g = new Gossip('a', { resolve })
    let inner = 0
    const v: Record<string, unknown> = { a: 1 }
    Object.defineProperty(v, 'b', {
      enumerable: true,
      get() {
        inner++
        g.set('inner', { z: inner })
        return v
      },
    })
    assert.throws(() => g.set('k', v), /has a cycle at \.b$/)
    assert.strictEqual(inner, 1)
  })

  it('a value from a stream whose proxy trap calls set is refused as it is without the trap', () => {
    const g = new Gossip('a', { resolve })
    const said = reasons(g)
    const target = { a: 'x'.repeat(MAX_VALUE_LENGTH + 100), b: 1 }
    let inner = 0
    const value = new Proxy(target, {
      get(t, k, r) {
        if (k === 'b') {
          inner++
          g.set('inner', [inner])
        }
        return Reflect.get(t, k, r)
      },
    })
    g.write({ key: 'k', value, source_id: 'p', version: Clock.now() })
    assert.strictEqual(g.get('k').version, -Infinity)
    assert.strictEqual(inner, 1)
    assert.strictEqual(said.length, 1)
    assert.match(said[0], /longer than/)
  })

  it('a value from a stream is checked as what it will be read as once held: a proxy cannot show the check one value and hold another', async () => {
    const g = new Gossip('a', { resolve })
    const said = reasons(g)
    // The trap shows a number; once frozen, reads must give the target's function.
    const value = new Proxy({ a: (): number => 1 }, { get: (t, k) => (k === 'a' ? 1 : Reflect.get(t, k)) })
    g.write({ key: 'k', value, source_id: 'p', version: Clock.now() })
    assert.strictEqual(g.get('k').version, -Infinity)
    assert.strictEqual(said.length, 1)
    assert.doesNotThrow(() => JSON.stringify(g.state))
  })

  it('a value from a stream whose JSON would differ from its data (a hidden toJSON) is refused', () => {
    const g = new Gossip('a', { resolve })
    const said = reasons(g)
    const value = Object.defineProperty({ a: 1 }, 'toJSON', { value: () => 'other', enumerable: false })
    g.write({ key: 'k', value, source_id: 'p', version: Clock.now() })
    const list = Object.defineProperty([1], 'toJSON', { value: () => 'other', enumerable: false })
    g.write({ key: 'l', value: { list }, source_id: 'p', version: Clock.now() })
    assert.strictEqual(g.get('k').version, -Infinity)
    assert.strictEqual(g.get('l').version, -Infinity)
    assert.strictEqual(said.length, 2)
    assert.match(said[0], /toJSON/)
    assert.match(said[1], /toJSON method.* at \.list$/)
  })

  it('set takes a snapshot: each member is read once, and every replica holds what was read', async () => {
    const g = new Gossip('a', { resolve })
    let reads = 0
    const v = Object.defineProperty({ fixed: 'x' }, 'n', { enumerable: true, get: () => ++reads })
    g.set('k', v)
    assert.strictEqual(reads, 1)
    assert.deepStrictEqual(g.get('k').value, { fixed: 'x', n: 1 })
    const p = new Gossip('p', { resolve })
    const q = new Gossip('q', { resolve })
    await sync(g, p)
    await syncOverNdjson(g, q)
    assert.strictEqual(reads, 1)
    assert.deepStrictEqual(p.get('k').value, { fixed: 'x', n: 1 })
    assert.deepStrictEqual(q.get('k').value, { fixed: 'x', n: 1 })
  })
})

describe('values JSON can carry', () => {
  it('refuses at set, with a clear TypeError, values JSON cannot carry', () => {
    const g = new Gossip('a', { resolve })
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const sparse = [1, , 3] // eslint-disable-line no-sparse-arrays
    const bad: unknown[] = [
      () => 1,
      Symbol('s'),
      BigInt(1),
      NaN,
      Infinity,
      { a: undefined },
      [undefined],
      sparse,
      cyclic,
      new Date(0),
      new Map(),
      { [Symbol('k')]: 1 },
      { deep: { fn: () => 1 } },
    ]
    for (const v of bad) assert.throws(() => g.set('k', v), TypeError, `accepted ${String(v)}`)
    assert.strictEqual(Object.keys(g.state).length, 0)
    const shared = { x: 1 }
    for (const v of [0, -1.5, 'x', true, null, [], {}, { a: [1, { b: null }] }, [shared, shared], Object.create(null)]) {
      g.set('k', v)
    }
    assert.strictEqual(Object.keys(g.state).length, 1)
    let nested: unknown = 1
    for (let i = 0; i < 600; i++) nested = [nested]
    assert.match(String(jsonProblem(nested)), /nested/)
    const hostile = {
      get boom() {
        throw new Error('no')
      },
    }
    assert.match(String(jsonProblem(hostile)), /has a getter/)
    const unreadable = new Proxy({}, { ownKeys: () => { throw new Error('no') } })
    assert.match(String(jsonProblem(unreadable)), /could not be read/)
  })

  it('reports a local write through the stream whose value JSON cannot carry', () => {
    const g = new Gossip('a', { resolve })
    const bad = reasons(g)
    g.write({ key: 'k', value: () => 1 })
    g.write({ key: 'k', value: 1 })
    assert.strictEqual(bad.length, 1)
    assert.strictEqual(g.get('k').value, 1)
  })
})
