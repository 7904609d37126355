/**
 * The layers of lib/, and what each may import, checked here so the tree
 * keeps saying it:
 * - the protocol core: the modules at lib/ itself (the design card's
 *   gossip.ts, history.ts, base.ts, resolution.ts and the rest, one idea of
 *   the paper each); runs anywhere; imports only the core and the
 *   browser-safe packages (no Node built-in);
 * - wire/: byte encodings, runs anywhere; imports the core and wire/;
 * - sim/: the paper's simulator, runs anywhere; imports the core and sim/;
 * - node/: what needs Node (sockets, files, node:crypto); may import anything
 *   but browser/;
 * - browser/: what needs a browser; imports the core, wire/ and browser/;
 * - testing/: in-process clusters and a reference model for tests; imports
 *   the core and testing/ (and fast-check).
 * The main entry (index.ts) joins the layers that run anywhere; each
 * subpath entry lives in its layer (browser/index.ts for simple-scuttle/idb,
 * node/index.ts and node/sqlite.ts). And no import cycles between files:
 * static, type-only or dynamic.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as path from 'path'
import * as ts from 'typescript'

const LIB = path.join(__dirname, '..', '..', '..', 'lib')
const ENTRIES = new Set(['index.ts'])
const PORTABLE_PACKAGES = new Set(['events', 'readable-stream', 'sorted-array-functions'])
const ALLOWED: Record<string, string[]> = {
  core: ['core'],
  wire: ['core', 'wire'],
  sim: ['core', 'sim'],
  node: ['core', 'wire', 'node', 'sim'],
  browser: ['core', 'wire', 'browser'],
  testing: ['core', 'testing'],
}
const PACKAGES: Record<string, Set<string>> = { testing: new Set([...PORTABLE_PACKAGES, 'fast-check']) }

// The layer of a file (relative to lib/): its folder, 'core' for a module at
// lib/ itself, null for an entry.
function layerOf(rel: string): string | null {
  if (rel.includes(path.sep)) return rel.split(path.sep)[0]
  return ENTRIES.has(rel) ? null : 'core'
}

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

// What a file imports, as TypeScript reads it: static imports and
// re-exports, type-only ones (`import type`, `import('./x').T` in a type),
// dynamic `import()` and `require()`; never what a comment or a string
// holds. Type-only imports and dynamic ones make cycles too (lib/node/tcp.ts
// and metrics.ts once imported each other that way).
export function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName)
}

function imports(file: string): string[] {
  return importsOf(fs.readFileSync(file, 'utf8'))
}

// Every cycle of a graph (file -> the files it imports), each as a trail.
export function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[][] = []
  const visit = (f: string, trail: string[]): void => {
    const s = state.get(f)
    if (s === 'done') return
    if (s === 'open') {
      cycles.push([...trail.slice(trail.indexOf(f)), f])
      return
    }
    state.set(f, 'open')
    for (const g of graph.get(f) ?? []) visit(g, [...trail, f])
    state.set(f, 'done')
  }
  for (const f of graph.keys()) visit(f, [])
  return cycles
}

function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec)
  for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c
  throw new Error(`${from}: cannot resolve ${spec}`)
}

describe('layers of lib/', () => {
  const all = files(LIB)

  it('each layer imports only what it may', () => {
    const bad: string[] = []
    for (const f of all) {
      const rel = path.relative(LIB, f)
      const layer = layerOf(rel)
      if (layer === null) continue
      assert.ok(layer in ALLOWED, `${rel} is in an unknown layer`)
      for (const spec of imports(f)) {
        if (spec.startsWith('.')) {
          const target = layerOf(path.relative(LIB, resolve(f, spec)))
          if (target === null || !ALLOWED[layer].includes(target)) bad.push(`${rel} imports ${spec} (${target ?? 'an entry'})`)
        } else if (layer !== 'node' && !(PACKAGES[layer] ?? PORTABLE_PACKAGES).has(spec)) {
          bad.push(`${rel} imports ${spec}, which does not run everywhere`)
        }
      }
    }
    assert.deepStrictEqual(bad, [])
  })

  it("the design card's files hold the real modules at lib/", () => {
    const defines: Record<string, RegExp> = {
      'gossip.ts': /^export class Gossip\b/m,
      'history.ts': /^export class History\b/m,
      'base.ts': /^export const config\b/m,
      'resolution.ts': /^export function lww_vs_current_vers\b/m,
    }
    for (const [file, re] of Object.entries(defines)) {
      const text = fs.readFileSync(path.join(LIB, file), 'utf8')
      assert.match(text, re, `lib/${file} defines its module`)
    }
  })

  it('the main entry and simple-scuttle/idb reach no Node-only layer and no package that does not run everywhere', () => {
    const seen = new Set<string>()
    const packages = new Set<string>()
    const visit = (f: string): void => {
      if (seen.has(f)) return
      seen.add(f)
      for (const spec of imports(f)) {
        if (spec.startsWith('.')) visit(resolve(f, spec))
        else packages.add(spec)
      }
    }
    visit(path.join(LIB, 'index.ts'))
    visit(path.join(LIB, 'browser', 'index.ts'))
    const nodeOnly = [...seen].filter((f) => path.relative(LIB, f).startsWith(`node${path.sep}`))
    assert.deepStrictEqual(nodeOnly, [])
    assert.deepStrictEqual([...packages].filter((p) => !PORTABLE_PACKAGES.has(p)), [])
  })

  it('the optional peers are loaded only through node/peer.ts, when used', () => {
    const bad: string[] = []
    for (const f of all) {
      const text = fs.readFileSync(f, 'utf8')
      for (const m of text.matchAll(/^import\s+(type\s+)?[^'"]*?from\s+'(better-sqlite3|ws|prom-client)'/gm)) {
        if (m[1] === undefined) bad.push(`${path.relative(LIB, f)} imports ${m[2]} at load`)
      }
    }
    assert.deepStrictEqual(bad, [])
  })

  it('has no import cycles', () => {
    const graph = new Map(all.map((f) => [f, imports(f).filter((spec) => spec.startsWith('.')).map((spec) => resolve(f, spec))]))
    const cycles = cyclesOf(graph).map((c) => c.map((x) => path.relative(LIB, x)).join(' -> '))
    assert.deepStrictEqual(cycles, [])
  })

  it('sees type-only and dynamic imports, and cycles made of them; not imports in comments or strings', () => {
    const text = [
      "import type { A } from './a'",
      "import { type B } from './b'",
      "export type { C } from './c'",
      "const d = await import('./d')",
      "type E = typeof import('./e')",
      "let f: import('./f').F",
      "import {\n  G,\n} from './g'",
      "// import { x } from './comment'",
      "const s = \"import { y } from './string'\"",
    ].join('\n')
    assert.deepStrictEqual(importsOf(text), ['./a', './b', './c', './d', './e', './f', './g'])
    // tcp.ts and metrics.ts as they once were: a type import one way, a dynamic import the other.
    const name = (spec: string) => spec.replace(/^\.\//, '')
    const graph = new Map([
      ['tcp', importsOf("const m = await import('./metrics')").map(name)],
      ['metrics', importsOf("import type { ScuttleNode } from './tcp'").map(name)],
    ])
    assert.deepStrictEqual(cyclesOf(graph), [['tcp', 'metrics', 'tcp']])
    assert.deepStrictEqual(cyclesOf(new Map([['tcp', ['metrics']], ['metrics', ['types']]])), [])
  })
})
