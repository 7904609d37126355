/**
 * Codes: every refusal carries one, from a fixed list (lib/codes.ts, the
 * session's REFUSAL_CODES, the node's CLOSE_CODES); docs/operations.md
 * lists each in one table; logs and metrics read them, never the text.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as http from 'http'
import * as net from 'net'
import * as path from 'path'
import * as ts from 'typescript'
import { Clock, Gossip, INVALID_CODES, REFUSAL_CODES, base, parse, serialize } from '../lib'
import type { InvalidCode } from '../lib'
import { ADMIN_CODES, CLOSE_CODES, startNode } from '../lib/node'
import type { ScuttleNode } from '../lib/node'

const ROOT = path.join(__dirname, '..', '..')
const LIB = path.join(ROOT, 'lib')
const lww = base.resolution.lww_vs_current_vers

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

// The rows of the table under "## Codes" in docs/operations.md: code -> kind.
function table(): Map<string, string> {
  const text = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8')
  const start = text.indexOf('\n## Codes\n')
  assert.ok(start >= 0, 'docs/operations.md has a "## Codes" section')
  const section = text.slice(start + 1).split(/\n## /)[0]
  const rows = new Map<string, string>()
  for (const m of section.matchAll(/^\| `([a-z_]+)` \| (\w+) \|/gm)) {
    assert.ok(!rows.has(m[1]), `${m[1]} is listed once`)
    rows.set(m[1], m[2])
  }
  return rows
}

// Calls in lib/ (file, callee text, arguments), as TypeScript parses them.
function calls(): { file: string; callee: string; args: ts.NodeArray<ts.Expression> }[] {
  const out: { file: string; callee: string; args: ts.NodeArray<ts.Expression> }[] = []
  for (const file of files(LIB)) {
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
    const visit = (n: ts.Node): void => {
      if (ts.isCallExpression(n) || ts.isNewExpression(n)) {
        const callee = n.expression
        const name = ts.isPropertyAccessExpression(callee) ? callee.name.text : ts.isIdentifier(callee) ? callee.text : ''
        out.push({ file: path.relative(LIB, file), callee: name, args: n.arguments ?? ts.factory.createNodeArray() })
      }
      ts.forEachChild(n, visit)
    }
    visit(source)
  }
  return out
}

const literal = (e: ts.Expression | undefined): string | null => (e !== undefined && ts.isStringLiteralLike(e) ? e.text : null)

describe('codes', () => {
  it('docs/operations.md lists every code in one table, by kind, and nothing else', () => {
    const rows = table()
    const kinds: [string, readonly string[]][] = [
      ['invalid', INVALID_CODES],
      ['refused', REFUSAL_CODES],
      ['closed', CLOSE_CODES],
      ['admin', ADMIN_CODES],
    ]
    for (const [kind, codes] of kinds) {
      const listed = [...rows].filter(([, k]) => k === kind).map(([c]) => c)
      assert.deepStrictEqual([...listed].sort(), [...codes].sort(), `the table's codes of kind ${kind}`)
    }
    assert.strictEqual(rows.size, INVALID_CODES.length + REFUSAL_CODES.length + CLOSE_CODES.length + ADMIN_CODES.length)
  })

  it("every 'invalid' report in lib/ goes through reportInvalid (a code is typed); every code written out is in the lists", () => {
    const known = new Set<string>([...INVALID_CODES, ...REFUSAL_CODES, ...CLOSE_CODES, ...ADMIN_CODES])
    const raw: string[] = []
    const unknown: string[] = []
    let reports = 0
    for (const c of calls()) {
      if (c.callee === 'emit' && literal(c.args[0]) === 'invalid' && c.file !== 'codes.ts') raw.push(c.file)
      // Where a code is written out: a report, a refusal, a count, a close.
      const at =
        c.callee === 'reportInvalid' ? 3 : c.callee === 'SessionError' ? 0 : c.callee === 'count' || c.callee === 'countRefusal' ? 0 : c.callee === 'drop' ? 1 : -1
      if (at < 0) continue
      if (c.callee === 'reportInvalid') reports++
      const code = literal(c.args[at])
      if (code !== null && !known.has(code)) unknown.push(`${c.file}: ${c.callee}(... '${code}')`)
    }
    assert.deepStrictEqual(raw, [], "emit('invalid', ...) outside lib/codes.ts: use reportInvalid")
    assert.deepStrictEqual(unknown, [])
    assert.ok(reports >= 40, `${reports} reports found: the scan sees them`)
  })

  it('each refusal of the core and the codecs carries its code', async () => {
    const seen: [string, unknown][] = []
    const on = (label: string) => (_o: unknown, _reason: string, code: unknown) => seen.push([label, code])
    const g = new Gossip('a', { resolve: lww })
    g.on('invalid', on('gossip'))
    const cases: [unknown, InvalidCode][] = [
      [[1], 'shape'],
      [{ digest: 'yes' }, 'shape'],
      [{ key: '', value: 1, source_id: 'x', version: 1 }, 'key'],
      [{ key: 'k', source_id: 'x', version: 1 }, 'value'],
      [{ key: 'k', value: 1, source_id: 7, version: 1 }, 'source_id'],
      [{ key: 'k', value: 1, source_id: 'x', version: -1 }, 'version'],
      [{ digest: true, source_id: 'x', version: -1 }, 'digest'],
      [{ key: 'k', value: 1, source_id: 'x', version: Clock.now() + 2 * Clock.AHEAD }, 'ahead'],
    ]
    for (const [o] of cases) g.write(o)
    const oneWay = g.createStream({ writable: false })
    oneWay.on('invalid', on('one_way'))
    oneWay.write({ key: 'k', value: 1, source_id: 'x', version: 1 })
    const local = g.createStream({ local_writes: false })
    local.on('invalid', on('local'))
    local.write({ key: 'k', value: 1 })
    const thrower = new Gossip('t', {
      resolve: () => {
        throw new Error('boom')
      },
    })
    thrower.on('invalid', on('thrower'))
    thrower.write({ key: 'k', value: 1, source_id: 'x', version: 1 })
    const ndjson = parse({ format: 'ndjson', maxLineLength: 10 })
    ndjson.on('invalid', on('ndjson'))
    ndjson.on('data', () => undefined)
    ndjson.write('nope\n')
    ndjson.write(`"${'x'.repeat(20)}"\n`)
    ndjson.end('{"cut')
    const binary = parse({ format: 'binary' })
    binary.on('invalid', on('binary'))
    binary.on('data', () => undefined)
    binary.end(new Uint8Array([0, 0, 0, 2, 0xff, 0xff]))
    const cut = parse({ format: 'binary' })
    cut.on('invalid', on('binary'))
    cut.on('data', () => undefined)
    cut.end(new Uint8Array([0, 0, 0, 9, 1]))
    const out = serialize({ format: 'ndjson' })
    out.on('invalid', on('serialize'))
    out.on('data', () => undefined)
    out.write({ key: 'k', value: 10n })
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepStrictEqual(seen, [
      ...cases.map(([, code]) => ['gossip', code]),
      ['one_way', 'one_way'],
      ['local', 'local_write'],
      ['thrower', 'node_error'],
      ['ndjson', 'not_json'],
      ['ndjson', 'line_too_long'],
      ['ndjson', 'truncated'],
      ['binary', 'frame'],
      ['binary', 'truncated'],
      ['serialize', 'unencodable'],
    ])
  })

  describe('a node counts and logs by code', () => {
    let node: ScuttleNode | null = null
    const lines: [string, string][] = []
    afterEach(async () => {
      await node?.close()
      node = null
    })

    const get = (port: number): Promise<string> =>
      new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
          let body = ''
          res.on('data', (d: Buffer) => (body += d))
          res.on('end', () => resolve(body))
        }).on('error', reject)
      })

    async function send(port: number, text: string): Promise<void> {
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => undefined)
      socket.resume()
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      socket.write(text)
      await closed
    }

    it('metrics labels are the codes; each closing line ends with its code, as a warning', async () => {
      node = await startNode({ id: 'a', resolve: lww, metrics: {}, log: (line, level) => lines.push([line, level]) })
      const port = node.address().port
      // A node before sessions (no nonce) that then sends garbage; one of another cluster.
      await send(port, '{"hello":"simple-scuttle","protocol":2,"id":"mallory"}\nthis is not json\n')
      await send(port, '{"hello":"simple-scuttle","protocol":2,"id":"red","cluster":"red","nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}\n')
      const text = await get(node.metricsAddress()?.port as number)
      assert.match(text, /^scuttle_invalid_total\{reason="not_json"\} 1$/m)
      assert.match(text, /^scuttle_refused_total\{code="other_cluster"\} 1$/m)
      assert.match(text, /^scuttle_connections_closed_total\{code="not_json"\} 1$/m)
      assert.match(text, /^scuttle_connections_closed_total\{code="other_cluster"\} 1$/m)
      const known = new Set<string>([...INVALID_CODES, ...REFUSAL_CODES, ...CLOSE_CODES])
      const labels = [...text.matchAll(/^scuttle_(?:invalid|refused|connections_closed)_total\{(?:reason|code)="([^"]*)"\}/gm)].map((m) => m[1])
      assert.ok(labels.length >= 4)
      for (const l of labels) assert.ok(known.has(l), `label ${l} is a code`)
      const closing = lines.filter(([l]) => l.startsWith('closing connection'))
      assert.deepStrictEqual(
        closing.map(([l, level]) => [l.match(/\[([a-z_]+)\]$/)?.[1], level]),
        [
          ['not_json', 'warn'],
          ['other_cluster', 'warn'],
        ],
      )
      assert.ok(lines.some(([l, level]) => l.includes('listening on') && level === 'info'))
    })
  })
})
