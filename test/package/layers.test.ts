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
 * static, type-only or dynamic; no load by a computed name (which the graph
 * could not see) but the optional peers'. The exchange with a peer
 * (exchange.ts) reaches no stream: the stream drives it. The design card's
 * files declare its modules, as the TypeScript parser reads them, and every
 * module of the core is in docs/ALGORITHM.md's module map. No module of the
 * core keeps mutable state of its own between calls (a top-level `let` or
 * `var`, a static field that is not readonly): what a node keeps is its own.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import * as ts from 'typescript'

const ROOT = path.join(__dirname, '..', '..', '..')
const LIB = path.join(ROOT, 'lib')
const BIN = path.join(ROOT, 'bin')
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

// Loads the import graph is allowed not to see, each with why.
const HIDDEN_LOADS_ALLOWED: Record<string, string> = {
  // An optional peer (better-sqlite3, ws, prom-client), named by the type
  // OptionalPeer: a package, never a file of lib/, so no edge is lost.
  'node/peer.ts: require(name)': 'optional peers, loaded when first used',
}

// Module-level mutable state the core may keep, each with why.
const MODULE_STATE_ALLOWED: Record<string, string> = {
  // A coarse wall clock every Clock shares: one timer for the process, not
  // one per node; it only counts, and each Clock reads the wall clock itself.
  'clock.ts: wallEpoch': 'the coarse wall clock shared by every Clock',
  'clock.ts: ticker': 'its one timer',
  // Time as tests and simulated clusters set it (testing/cluster.ts).
  // Per-node time would take a `now` through config to incarnation.ts and
  // intake.ts as well.
  'clock.ts: Clock.now': 'the wall clock tests replace',
}

// The names a module's top level declares with `let` or `var`, and the
// static fields of its classes that are not readonly: state kept between
// calls, shared by every node of the process.
export function moduleStateOf(text: string): string[] {
  const source = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const found: string[] = []
  const has = (n: ts.Node, kind: ts.SyntaxKind): boolean => ts.canHaveModifiers(n) && (ts.getModifiers(n) ?? []).some((m) => m.kind === kind)
  for (const st of source.statements) {
    if (ts.isVariableStatement(st) && (st.declarationList.flags & (ts.NodeFlags.Const | ts.NodeFlags.Using)) === 0 && !has(st, ts.SyntaxKind.DeclareKeyword)) {
      for (const d of st.declarationList.declarations) found.push(d.name.getText(source))
    } else if (ts.isClassDeclaration(st)) {
      for (const m of st.members) {
        if (ts.isPropertyDeclaration(m) && has(m, ts.SyntaxKind.StaticKeyword) && !has(m, ts.SyntaxKind.ReadonlyKeyword)) found.push(`${st.name?.text ?? 'default'}.${m.name.getText(source)}`)
      }
    }
  }
  return found
}

const isLiteral = (n: ts.Node | undefined): boolean => n !== undefined && (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n))

// Whether `n` is the callee of a call whose first argument is a literal
// (`require('./x')`, `module.require('./x')`): a load the graph sees.
function calledWithLiteral(n: ts.Node): boolean {
  let callee: ts.Node = n
  if (ts.isPropertyAccessExpression(n.parent) && n.parent.name === n) callee = n.parent
  const call = callee.parent
  return ts.isCallExpression(call) && call.expression === callee && isLiteral(call.arguments[0])
}

// The loads in `text` that importsOf cannot follow, as TypeScript parses it
// (never in a comment or a string): `import(x)` of anything but a literal;
// `require` anywhere but called with a literal (an alias, `require(x)`,
// `module.require(x)`, `{ require }`); createRequire; eval; `Function(...)`
// and `new Function(...)`, which can reach require from a string.
export function hiddenLoadsOf(text: string): string[] {
  const file = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, true)
  const out: string[] = []
  const say = (n: ts.Node): void => {
    out.push(n.getText(file).replace(/\s+/g, ' '))
  }
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && !isLiteral(n.arguments[0])) say(n)
    else if ((ts.isCallExpression(n) || ts.isNewExpression(n)) && ts.isIdentifier(n.expression) && n.expression.text === 'Function') say(n)
    else if (ts.isIdentifier(n) && (n.text === 'eval' || n.text === 'createRequire')) say(n)
    else if (ts.isIdentifier(n) && n.text === 'require' && !calledWithLiteral(n)) {
      const call = ts.isPropertyAccessExpression(n.parent) && n.parent.name === n ? n.parent.parent : n.parent
      say(ts.isCallExpression(call) ? call : n)
    }
    ts.forEachChild(n, visit)
  }
  visit(file)
  return out
}

// What `text` declares and exports itself, as `class Gossip`, `function f`,
// `const c`: declarations TypeScript parses (exported where they stand or
// by a local `export { }`), not a re-export of another file's, an ambient
// `declare`, nor a comment or a string that looks like one.
export function declaredIn(text: string): string[] {
  const file = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, true)
  const local = new Map<string, string>()
  const exported = new Set<string>()
  for (const st of file.statements) {
    if (ts.isExportDeclaration(st) && st.moduleSpecifier === undefined && st.exportClause !== undefined && ts.isNamedExports(st.exportClause)) {
      for (const e of st.exportClause.elements) if (!e.isTypeOnly && !st.isTypeOnly) exported.add((e.propertyName ?? e.name).text)
      continue
    }
    const mods = ts.canHaveModifiers(st) ? (ts.getModifiers(st) ?? []) : []
    if (mods.some((m) => m.kind === ts.SyntaxKind.DeclareKeyword)) continue
    const names: string[] = []
    if (ts.isClassDeclaration(st) && st.name !== undefined) names.push(`class ${st.name.text}`)
    else if (ts.isFunctionDeclaration(st) && st.name !== undefined && st.body !== undefined) names.push(`function ${st.name.text}`)
    else if (ts.isVariableStatement(st) && (st.declarationList.flags & ts.NodeFlags.Const) !== 0) {
      for (const d of st.declarationList.declarations) if (ts.isIdentifier(d.name) && d.initializer !== undefined) names.push(`const ${d.name.text}`)
    }
    for (const n of names) {
      local.set(n.slice(n.indexOf(' ') + 1), n)
      if (mods.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) exported.add(n.slice(n.indexOf(' ') + 1))
    }
  }
  return [...local].filter(([name]) => exported.has(name)).map(([, what]) => what)
}

// Underscore members of History reached from outside it, allowed (none).
const INTERNALS_ALLOWED: string[] = []

// Every use, in `files`, of an underscore member of class `cls` declared in
// `home` from outside `home`, as `file: Class._member` (file relative to
// the repository), as the type checker resolves it (an alias or a destructuring of the
// object does not hide it).
export function internalsReached(files: string[], home: string, cls: string): string[] {
  const program = ts.createProgram(files, { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, skipLibCheck: true, noEmit: true, types: [] })
  const checker = program.getTypeChecker()
  const out: string[] = []
  for (const sf of program.getSourceFiles()) {
    if (!files.includes(sf.fileName) || path.resolve(sf.fileName) === path.resolve(home)) continue
    const visit = (n: ts.Node): void => {
      let name: ts.Identifier | ts.PrivateIdentifier | undefined
      if (ts.isPropertyAccessExpression(n)) name = n.name
      else if (ts.isBindingElement(n) && n.parent !== undefined && ts.isObjectBindingPattern(n.parent)) name = (n.propertyName ?? n.name) as ts.Identifier
      if (name !== undefined && ts.isIdentifier(name) && name.text.startsWith('_')) {
        const decl = checker.getSymbolAtLocation(name)?.declarations?.[0]
        const owner = decl?.parent
        if (decl !== undefined && owner !== undefined && ts.isClassDeclaration(owner) && owner.name?.text === cls && path.resolve(decl.getSourceFile().fileName) === path.resolve(home)) {
          out.push(`${path.relative(ROOT, sf.fileName)}: ${cls}.${name.text}`)
        }
      }
      ts.forEachChild(n, visit)
    }
    visit(sf)
  }
  return [...new Set(out)].sort()
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

// The files the given entries reach by relative imports, and the packages
// those import.
function closure(...entries: string[]): { seen: Set<string>; packages: Set<string> } {
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
  for (const e of entries) visit(e)
  return { seen, packages }
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
    const defines: Record<string, string> = {
      'gossip.ts': 'class Gossip',
      'history.ts': 'class History',
      'base.ts': 'const config',
      'resolution.ts': 'function lww_vs_current_vers',
    }
    for (const [file, what] of Object.entries(defines)) {
      assert.ok(declaredIn(fs.readFileSync(path.join(LIB, file), 'utf8')).includes(what), `lib/${file} declares export ${what}`)
    }
  })

  it("every module of the protocol core is in docs/ALGORITHM.md's module map", () => {
    const map = fs.readFileSync(path.join(LIB, '..', 'docs', 'ALGORITHM.md'), 'utf8')
    const core = all.map((f) => path.relative(LIB, f)).filter((rel) => !rel.includes(path.sep))
    assert.deepStrictEqual(
      core.filter((rel) => !map.includes(`\`lib/${rel}\``)),
      [],
    )
  })

  it('loads no module by a name computed at run time, which the import graph cannot see (but the allowed)', () => {
    const found: string[] = []
    for (const f of all) {
      const rel = path.relative(LIB, f).split(path.sep).join('/')
      for (const load of hiddenLoadsOf(fs.readFileSync(f, 'utf8'))) found.push(`${rel}: ${load}`)
    }
    // Kept exact, so that the list does not outlive what it allows.
    assert.deepStrictEqual(found, Object.keys(HIDDEN_LOADS_ALLOWED))
  })

  it("no module of lib/ or bin/ reaches History's internals (its underscore members): it uses History's API", function () {
    this.timeout(120_000)
    const found = internalsReached([...all, ...files(BIN)], path.join(LIB, 'history.ts'), 'History').map((x) => x.split(path.sep).join('/'))
    assert.deepStrictEqual(found, INTERNALS_ALLOWED)
  })

  it('the main entry and simple-scuttle/idb reach no Node-only layer and no package that does not run everywhere', () => {
    const { seen, packages } = closure(path.join(LIB, 'index.ts'), path.join(LIB, 'browser', 'index.ts'))
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

  it('the exchange with a peer runs without a stream: exchange.ts reaches neither readable-stream nor the Gossip stream (gossip.ts)', () => {
    const { seen, packages } = closure(path.join(LIB, 'exchange.ts'))
    assert.ok(seen.size > 5, 'the import closure of exchange.ts was walked')
    assert.deepStrictEqual([...seen].map((f) => path.relative(LIB, f)).filter((rel) => rel === 'gossip.ts'), [])
    assert.strictEqual(packages.has('readable-stream'), false)
  })

  it('no module of the core keeps mutable state between calls: no top-level let or var, no static field but readonly ones (but the allowed)', () => {
    const found = all
      .map((f) => path.relative(LIB, f))
      .filter((rel) => layerOf(rel) === 'core')
      .flatMap((rel) => moduleStateOf(fs.readFileSync(path.join(LIB, rel), 'utf8')).map((name) => `${rel}: ${name}`))
    assert.deepStrictEqual(
      found.filter((x) => !(x in MODULE_STATE_ALLOWED)),
      [],
    )
    // Each allowed one is still there: an entry no longer needed goes.
    assert.deepStrictEqual(Object.keys(MODULE_STATE_ALLOWED).filter((x) => !found.includes(x)), [])
  })

  it('sees module state as the parser reads it: let, var and mutable statics at the top level, not consts, locals, instance fields or strings', () => {
    const text = [
      'let a = 1',
      'export var b: number[] = []',
      'let [c, d] = [1, 2]',
      'const e = 1',
      'declare let f: number',
      'function g() { let h = 1; return h }',
      'class K { static s = 1; static readonly r = 2; i = 3; private static p: number }',
      'export class L { static readonly q = 1 }',
      '// let comment = 1',
      "const str = 'let inString = 1'",
      'for (let j = 0; j < 1; j++) {}',
    ].join('\n')
    assert.deepStrictEqual(moduleStateOf(text), ['a', 'b', '[c, d]', 'K.s', 'K.p'])
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

  it("sees only real declarations at the card's paths: not a re-export, a comment, a string, a type-only export or a declare", () => {
    assert.deepStrictEqual(declaredIn('export class Gossip<T = unknown> extends PeerStream {}\nexport function f() {}\nexport const config = {}'), ['class Gossip', 'function f', 'const config'])
    assert.deepStrictEqual(declaredIn('class Gossip {}\nexport { Gossip }'), ['class Gossip'])
    const fakes = [
      "export { Gossip } from './core/gossip'\n// export class Gossip extends PeerStream {",
      "export { Gossip as default, Gossip } from './core/gossip'\nconst s = `\nexport class Gossip {}\n`",
      "import { Gossip } from './core/gossip'\nexport { Gossip }",
      'class Gossip {}\nexport type { Gossip }',
      "export * from './core/gossip'\n/*\nexport class Gossip\n*/",
      'export declare class Gossip {}\nexport declare function lww_vs_current_vers(): void\nexport declare const config: object',
      'export let config = {}\nexport type Gossip = import("./core/gossip").Gossip',
    ]
    for (const text of fakes) assert.deepStrictEqual(declaredIn(text), [], text)
  })

  it('sees every load by a computed name: import(x), an aliased or computed require, createRequire, eval, Function', () => {
    const hidden = [
      'const m = await import(name)',
      'const m = await import(`./${name}`)',
      "const r = require\nr('./x')",
      'const m = require(name)',
      "const m = require('./' + name)",
      'const m = module.require(name)',
      "const { require: r } = module\nr('./x')",
      "const m = (0, require)('./x')",
      "const m = require.call(null, './x')",
      "const m = createRequire(__filename)('./x')",
      "const m = (0, eval)('require')('./x')",
      "const m = new Function('return require')()('./x')",
      "const m = Function('return require')()('./x')",
      'use({ require })',
    ]
    for (const text of hidden) assert.notDeepStrictEqual(hiddenLoadsOf(text), [], text)
    const seen = "const a = require('./a')\nconst b = await import('./b')\nconst c = import(`./c`)\nconst d = module.require('./d')\n// import(name), require(name)\nconst s = 'require(name)'\nlet f: Function\nlet g: typeof import('./g')"
    assert.deepStrictEqual(hiddenLoadsOf(seen), [])
    assert.deepStrictEqual(importsOf(seen), ['./a', './b', './c', './d', './g'])
  })

  it("sees a class's internals reached through an alias or a destructuring, not its API nor a like-named member of another class", function () {
    this.timeout(60_000)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layers-'))
    try {
      fs.writeFileSync(path.join(dir, 'home.ts'), 'export class History {\n  _put(): void {}\n  _slot = 1\n  put(): void {}\n}\nexport class Other {\n  _put(): void {}\n}\n')
      fs.writeFileSync(
        path.join(dir, 'user.ts'),
        "import { History, Other } from './home'\nconst h = new History()\nconst alias = h\nalias._put()\nconst { _slot: s } = h\nh.put()\nnew Other()._put()\nexport const x = s\n",
      )
      const found = internalsReached([path.join(dir, 'home.ts'), path.join(dir, 'user.ts')], path.join(dir, 'home.ts'), 'History')
      assert.deepStrictEqual(
        found.map((f) => f.replace(/^.*user\.ts/, 'user.ts')),
        ['user.ts: History._put', 'user.ts: History._slot'],
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
