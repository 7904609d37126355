/**
 * Hostile bytes and shapes on a node's TCP port (beyond the reported list):
 * garbage, invalid UTF-8, lines just under and over 1 MiB, a line that never
 * ends, non-objects, reserved names, impossible versions, floods, a slow
 * writer, hellos that lie.
 *
 * For each attack the required outcome is the same: the node process stays
 * alive, keeps answering its stdin commands, never drops its honest peer,
 * and converges with it (both ways) within 5 s after the attack. One pair of
 * nodes (a attacked, b honest) serves the whole file; a pair that died is
 * replaced before the next test, so one crash fails one test.
 */
import * as assert from 'assert'
import { Attacker, Cluster, DONE, HELLO, NodeProc, adversarialHooks, figure, line, stillServes, until } from './harness'

describe('adversarial: hostile bytes and shapes on the wire', function () {
  this.timeout(30_000)
  const cluster = new Cluster()
  const shared = new Cluster()
  let a: NodeProc
  let b: NodeProc

  async function pair(): Promise<void> {
    await shared.cleanup()
    a = await shared.node('a')
    b = await shared.node('b', [], { connect: [a] })
    await until(async () => (await a.peers()).length === 1, 5000, 'b to connect to a')
  }

  before(pair)
  beforeEach(async () => {
    if (!a.alive || !b.alive) await pair()
  })
  after(() => shared.cleanup())
  adversarialHooks(cluster, 'wire')

  let seq = 0
  /** Run `attack`, then require a alive, answering, b never dropped, and a and b converging both ways. */
  async function survives(attack: () => Promise<void>, onlyFromB = false): Promise<void> {
    const tag = `t${++seq}`
    const closedBefore = a.count(/closing connection to/)
    // (onlyFromB: the attacker calls itself b, so a's log cannot tell the two apart; b's side still can.)
    const honestDrops = () => (onlyFromB ? 0 : a.count(/closing connection to b\b/)) + b.count(/closing connection to a\b|peer a disconnected/)
    const honestBefore = honestDrops()
    a.sample()
    const rssBefore = a.peakKB
    await attack()
    assert.ok(a.alive, `a died: code ${a.exitCode}, signal ${a.exitSignal}:\n${a.tail()}`)
    figure('converge_after_attack_ms', await stillServes(a, b, tag, 5000))
    a.sample()
    figure('a_connections_closed', a.count(/closing connection to/) - closedBefore)
    figure('a_peak_rss_mb', Math.round(a.peakKB / 1024))
    figure('a_peak_rss_growth_mb', Math.round((a.peakKB - rssBefore) / 1024))
    const honest = honestDrops() - honestBefore
    assert.strictEqual(honest, 0, `the honest link a-b was dropped during the attack:\n${a.tail(500)}\n${b.tail(500)}`)
  }

  /** A fresh attacker connection that says hello as `id` (null: no hello). */
  const open = (id: string | null = 'mallory'): Promise<Attacker> => cluster.attacker(a.port, id)

  /** Send, then wait until a answers (a digest end) or closes the connection. */
  async function hit(payload: string | Buffer, id: string | null = 'mallory'): Promise<string> {
    const m = await open(id)
    await m.send(payload)
    if (!m.isClosed) await m.send(DONE)
    await until(() => m.replies > 0 || m.isClosed, 5000, 'a to answer or close the connection')
    return m.isClosed ? 'closed' : 'answered'
  }

  it('attack: 64 kB of random bytes (with newlines) after a hello', async () => {
    await survives(async () => {
      const bytes = Buffer.alloc(65536)
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + (i >> 3) * 104729) & 0xff
      figure('outcome', await hit(bytes))
    })
  })

  it('attack: random bytes instead of a hello', async () => {
    await survives(async () => {
      figure('outcome', await hit(Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0xc0, 0xaf, 0x0a]), null))
    })
  })

  it('attack: invalid UTF-8 inside JSON strings (lone continuation bytes, overlong "/", CESU surrogate, a truncated sequence); required as well: what a holds is valid text that b holds identically', async () => {
    await survives(async () => {
      const parts = [
        Buffer.from('{"key":"utf8-bad-'),
        Buffer.from([0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x80]),
        Buffer.from('","value":"v'),
        Buffer.from([0xe2, 0x82]),
        Buffer.from('","source_id":"m","version":1}\n'),
      ]
      figure('outcome', await hit(Buffer.concat(parts)))
      const state = await a.state()
      const keys = Object.keys(state).filter((k) => k.startsWith('utf8-bad-'))
      for (const k of keys) {
        assert.ok(!/[\ud800-\udfff]/.test(k), 'a holds a key with a lone surrogate')
        await until(async () => (await b.state())[k] !== undefined, 5000, `b to get ${JSON.stringify(k)}, which a holds`)
      }
      figure('held_keys', keys)
    })
  })

  it('attack: raw control characters (NUL, ESC, CR alone) inside a JSON string', async () => {
    await survives(async () => {
      figure('outcome', await hit(Buffer.from('{"key":"ctl\u0000\u001b[2J\rk","value":1,"source_id":"m","version":1}\n')))
    })
  })

  it('attack: a valid update on a line just under 1 MiB; required: either refused, or held by a and relayed to b (never held by a alone)', async () => {
    await survives(async () => {
      const skeleton = line({ key: 'under', value: '', source_id: 'mallory', version: 1 })
      const value = 'u'.repeat((1 << 20) - skeleton.length) // the line without its newline is 1 MiB - 1 characters
      const text = line({ key: 'under', value, source_id: 'mallory', version: 1 })
      assert.strictEqual(text.length - 1, (1 << 20) - 1)
      figure('outcome', await hit(text))
      const held = (await a.get('under', 20_000)).value === value
      figure('held_by_a', held)
      if (held) {
        const ms = await until(async () => (await b.get('under', 20_000)).value === value, 8000, 'b to get the update a accepted', 200).catch(
          (e: Error) => e,
        )
        assert.ok(typeof ms === 'number', 'a accepted an update on a line just under 1 MiB that it then could not relay to b')
      }
    })
  })

  it('attack: an update on a line just over 1 MiB; required: refused (a does not hold it)', async () => {
    await survives(async () => {
      const value = 'o'.repeat(1 << 20)
      figure('outcome', await hit(line({ key: 'over', value, source_id: 'mallory', version: 1 })))
      assert.strictEqual((await a.get('over')).value, null)
    })
  })

  it('attack: a line that never ends (16 MB without a newline); required as well: a drops it with bounded memory (peak RSS growth under 64 MB)', async () => {
    await survives(async () => {
      a.sample()
      const before = a.peakKB
      const m = await open()
      const chunk = '{"key":"' + 'n'.repeat(65536)
      let sent = 0
      while (sent < 16 << 20 && !m.isClosed) {
        await m.send(chunk)
        sent += chunk.length
      }
      await until(() => m.isClosed, 5000, 'a to close a connection whose line never ends')
      a.sample()
      figure('sent_before_close_mb', Math.round(sent / 2 ** 20))
      assert.ok(a.peakKB - before < 64 * 1024, `a's peak RSS grew by ${Math.round((a.peakKB - before) / 1024)} MB`)
    })
  })

  it('attack: lines that are not objects (null, arrays, strings, numbers, booleans, {}), each on its own connection', async () => {
    await survives(async () => {
      const outcomes: Record<string, string> = {}
      for (const text of ['null', '[1,2,3]', '[{"key":"k","value":1}]', '"update"', '42', 'true', '{}', '{"":""}']) {
        outcomes[text] = await hit(`${text}\n`)
        assert.ok(a.alive, `a died on ${text}`)
      }
      figure('outcomes', outcomes)
    })
  })

  it('attack: reserved names (__proto__, constructor, prototype) as key, source_id and digest source, and inside hellos; required as well: none is held, and `get` of them answers null', async () => {
    await survives(async () => {
      const outcomes: Record<string, string> = {}
      for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
        const cases = [
          line({ key: name, value: { polluted: true }, source_id: 'mallory', version: 1 }),
          line({ key: `by-${name}`, value: 1, source_id: name, version: 1 }),
          line({ digest: true, source_id: name, version: 1 }),
          `{"key":"k-${name}","value":1,"source_id":"mallory","version":1,"__proto__":{"digest":true,"done":true}}\n`,
        ]
        for (const text of cases) outcomes[text.slice(0, 70)] = await hit(text)
        outcomes[`hello as ${name}`] = await hit(line({ key: `hello-${name}`, value: 1, source_id: 'mallory', version: 1 }), name)
      }
      figure('outcomes', outcomes)
      for (const name of ['__proto__', 'constructor', 'prototype']) {
        const got = await a.get(name)
        assert.strictEqual(got.value, null, `get ${name} answered ${JSON.stringify(got)}`)
        const by = await a.get(`by-${name}`)
        assert.strictEqual(by.value, null, `a holds an update whose source_id is "${name}"`)
      }
      const state = await a.state()
      for (const name of ['__proto__', 'constructor', 'prototype']) assert.ok(!Object.prototype.hasOwnProperty.call(state, name), `state lists ${name}`)
    })
  })

  it('attack: impossible versions (-1, 1.5, 1e400, "5", null, 2^53, 1e300, true, [], {}) in updates and digests; required as well: none is held', async () => {
    await survives(async () => {
      const outcomes: Record<string, string> = {}
      const versions = ['-1', '1.5', '1e400', '-1e400', '"5"', 'null', String(2 ** 53), '1e300', 'true', '[]', '{}', '9007199254740993']
      for (const [i, v] of versions.entries()) {
        outcomes[`update@${v}`] = await hit(`{"key":"bad-version-${i}","value":1,"source_id":"mallory","version":${v}}\n`)
        outcomes[`digest@${v}`] = await hit(`{"digest":true,"source_id":"a","version":${v}}\n`)
      }
      figure('outcomes', outcomes)
      const state = await a.state()
      const held = Object.keys(state).filter((k) => k.startsWith('bad-version-'))
      assert.deepStrictEqual(held, [], `a holds updates with impossible versions: ${held.join(', ')}`)
    })
  })

  it('attack: malformed fields (empty, object and array keys, digest: "true" or 1, a digest with neither source nor end, done: "yes", a missing value)', async () => {
    await survives(async () => {
      const outcomes: Record<string, string> = {}
      for (const text of [
        '{"key":"","value":1,"source_id":"m","version":1}',
        '{"key":{"k":1},"value":1,"source_id":"m","version":1}',
        '{"key":["k"],"value":1,"source_id":"m","version":1}',
        '{"key":"k","value":1,"source_id":"","version":1}',
        '{"key":"k","value":1,"source_id":7,"version":1}',
        '{"key":"k","source_id":"m","version":1}',
        '{"digest":"true","source_id":"m","version":1}',
        '{"digest":1,"done":true}',
        '{"digest":true}',
        '{"digest":true,"done":"yes"}',
        '{"key":"k","value":1,"source_id":"m"}',
        '{"key":"k","value":1,"version":1}',
      ]) {
        outcomes[text] = await hit(`${text}\n`)
      }
      figure('outcomes', outcomes)
    })
  })

  it('attack: a hello twice, then normal traffic', async () => {
    await survives(async () => {
      figure('outcome', await hit(HELLO('mallory') + line({ key: 'after-second-hello', value: 1, source_id: 'mallory', version: 1 })))
    })
  })

  it("attack: a hello with the node's own id, then updates", async () => {
    await survives(async () => {
      figure('outcome', await hit(line({ key: 'as-itself', value: 1, source_id: 'a', version: 1 }), 'a'))
      assert.strictEqual((await a.get('as-itself')).value, null)
    })
  })

  it("attack: a hello impersonating the honest peer b's id, with ordinary traffic, while b is connected", async () => {
    await survives(async () => {
      figure('outcome', await hit(line({ key: 'impostor', value: 1, source_id: 'mallory', version: 1 }), 'b'))
    }, true)
  })

  it('attack: a flood of 5,000 updates without a digest', async () => {
    await survives(async () => {
      let text = ''
      for (let i = 0; i < 5000; i++) text += line({ key: `flood${i}`, value: i, source_id: 'flooder', version: i + 1 })
      const m = await open()
      await m.send(text)
      await until(() => m.isClosed, 5000, 'a to close a flooding peer')
    })
  })

  it('attack: a digest that never ends (200,000 entries, no end marker)', async () => {
    await survives(async () => {
      const m = await open()
      m.keep = false
      for (let i = 0; i < 200_000 && !m.isClosed; i += 5000) {
        let text = ''
        for (let j = i; j < i + 5000; j++) text += line({ digest: true, source_id: `s${j}`, version: j })
        await m.send(text)
      }
      await until(() => m.isClosed, 5000, 'a to close a digest that never ends')
    })
  })

  it('attack: a digest whose entries name 1 MB source ids, never ended (120 MB in all); required as well: peak RSS growth under 60 MB', async () => {
    await survives(async () => {
      a.sample()
      const before = a.peakKB
      const m = await open()
      m.keep = false
      const id = 'i'.repeat(1_000_000 - 16)
      let sent = 0
      for (let i = 0; i < 120 && !m.isClosed; i++) {
        await m.send(`{"digest":true,"source_id":"${i}-${id}","version":1}\n`)
        sent++
      }
      // a has read everything sent once it answers a cheap question on another connection.
      await (await open('probe')).exchange(DONE)
      a.sample()
      const growth = Math.round((a.peakKB - before) / 1024)
      figure('entries_sent', sent)
      figure('rss_growth_mb', growth)
      assert.ok(growth < 60, `one peer's unfinished digest of ${sent} MB of source ids grew a's peak RSS by ${growth} MB`)
    })
  })

  it('attack: a slow writer (hello and an update one byte every 5 ms); required as well: the update is applied, and b is served meanwhile', async () => {
    await survives(async () => {
      const m = await open(null)
      const text = HELLO('slowpoke') + line({ key: 'slow', value: 'byte by byte', source_id: 'slowpoke', version: 1 }) + DONE
      let i = 0
      const timer = setInterval(() => {
        if (i < text.length && !m.isClosed) void m.send(text[i++])
      }, 5)
      try {
        await a.write('during-slow', 1)
        await until(async () => (await b.get('during-slow')).value === 1, 5000, 'b to be served while a slow writer trickles')
        await until(() => i >= text.length || m.isClosed, 10_000, 'the slow write to finish')
      } finally {
        clearInterval(timer)
      }
      await until(async () => (await a.get('slow')).value === 'byte by byte', 5000, 'a to apply the slowly written update')
    })
  })

  it('attack: 200 connections opened and reset at once, some mid-line', async () => {
    await survives(async () => {
      const all = await Promise.all(Array.from({ length: 200 }, (_, i) => open(i % 2 === 0 ? `burst${i}` : null)))
      for (const [i, m] of all.entries()) {
        if (i % 3 === 0) await m.send('{"key":"half')
        m.destroy()
      }
    })
  })
})
