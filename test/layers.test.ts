/**
 * The folders of lib/ are layers, and what a layer may import is checked
 * here, so the tree keeps saying it:
 * - core/: the protocol, runs anywhere; imports only core/ and the browser-safe
 *   packages (no Node built-in);
 * - wire/: byte encodings, runs anywhere; imports core/ and wire/;
 * - sim/: the paper's simulator, runs anywhere; imports core/ and sim/;
 * - node/: what needs Node (sockets, files, node:crypto); may import anything
 *   but browser/;
 * - browser/: what needs a browser; imports core/, wire/ and browser/;
 * - testing/: in-process clusters, a reference model and the property
 *   checks of `simple-scuttle/testing`; imports core/ and testing/, and
 *   fast-check (the entry's peer dependency).
 * And no import cycles between files, static or dynamic.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as path from 'path'

const LIB = path.join(__dirname, '..', '..', 'lib')
const PORTABLE_PACKAGES = new Set(['events', 'readable-stream', 'sorted-array-functions'])
// Packages a layer may import besides the portable ones.
const LAYER_PACKAGES: Record<string, string[]> = { testing: ['fast-check'] }
const ALLOWED: Record<string, string[]> = {
  core: ['core'],
  wire: ['core', 'wire'],
  sim: ['core', 'sim'],
  node: ['core', 'wire', 'node', 'sim'],
  browser: ['core', 'wire', 'browser'],
  testing: ['core', 'testing'],
}

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  return [
    ...text.matchAll(/^(?:import|export)[^'"]*?from\s+'([^']+)'/gm),
    ...text.matchAll(/^import\s+'([^']+)'/gm),
    // Dynamic imports make cycles too (lib/node/tcp.ts and metrics.ts once did).
    ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1])
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
      const layer = rel.includes(path.sep) ? rel.split(path.sep)[0] : null
      if (layer === null) continue // the entries (index.ts, browser.ts) join the layers
      assert.ok(layer in ALLOWED, `${rel} is in an unknown layer`)
      for (const spec of imports(f)) {
        if (spec.startsWith('.')) {
          const target = path.relative(LIB, resolve(f, spec)).split(path.sep)[0]
          if (!ALLOWED[layer].includes(target)) bad.push(`${rel} imports ${spec} (${target}/)`)
        } else if (layer !== 'node' && !PORTABLE_PACKAGES.has(spec) && !(LAYER_PACKAGES[layer] ?? []).includes(spec)) {
          bad.push(`${rel} imports ${spec}, which does not run everywhere`)
        }
      }
    }
    assert.deepStrictEqual(bad, [])
  })

  it('the browser entry reaches no Node-only layer', () => {
    const seen = new Set<string>()
    const visit = (f: string): void => {
      if (seen.has(f)) return
      seen.add(f)
      for (const spec of imports(f)) if (spec.startsWith('.')) visit(resolve(f, spec))
    }
    visit(path.join(LIB, 'browser.ts'))
    const nodeOnly = [...seen].filter((f) => path.relative(LIB, f).startsWith(`node${path.sep}`))
    assert.deepStrictEqual(nodeOnly, [])
  })

  it('has no import cycles', () => {
    const state = new Map<string, 'open' | 'done'>()
    const cycles: string[] = []
    const visit = (f: string, trail: string[]): void => {
      const s = state.get(f)
      if (s === 'done') return
      if (s === 'open') {
        cycles.push([...trail.slice(trail.indexOf(f)), f].map((x) => path.relative(LIB, x)).join(' -> '))
        return
      }
      state.set(f, 'open')
      for (const spec of imports(f)) if (spec.startsWith('.')) visit(resolve(f, spec), [...trail, f])
      state.set(f, 'done')
    }
    for (const f of all) visit(f, [])
    assert.deepStrictEqual(cycles, [])
  })
})
