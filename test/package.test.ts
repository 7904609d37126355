/**
 * The package as users load it: by name, with require and with import.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as path from 'path'

// TypeScript compiles import() to require() under CommonJS; keep a real one.
const importESM = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Record<string, unknown>>

describe('package', () => {
  it('loads by name with require', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pkg = require('simple-scuttle')
    for (const name of ['Gossip', 'PeerStream', 'History', 'base', 'Base', 'resolution']) {
      assert.ok(pkg[name] !== undefined, `require exports ${name}`)
    }
    const g = new pkg.Gossip('a', { resolve: pkg.base.resolution.lww_vs_current_vers })
    g.set('k', 1)
    assert.strictEqual(g.get('k').value, 1)
  })

  it('loads by name with import, exporting the same objects', async () => {
    const esm = await importESM('simple-scuttle')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cjs = require('simple-scuttle')
    for (const name of Object.keys(cjs)) assert.strictEqual(esm[name], cjs[name], `import exports ${name}`)
    assert.strictEqual(esm.default, cjs)
  })

  it('ships the compiled library, its types, the CLI and the ESM entry', () => {
    const root = path.join(__dirname, '..', '..')
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    assert.ok(fs.existsSync(path.join(root, pkg.main)))
    assert.ok(fs.existsSync(path.join(root, pkg.types)))
    assert.ok(fs.existsSync(path.join(root, pkg.exports['.'].import)))
    assert.ok(fs.existsSync(path.join(root, pkg.bin['simple-scuttle'])))
    for (const f of ['dist/lib', 'dist/bin', 'index.mjs']) assert.ok(pkg.files.includes(f), `files includes ${f}`)
  })
})
