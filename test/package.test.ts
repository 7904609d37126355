/**
 * The package as users load it: by name, with require and with import.
 */
import * as assert from 'assert'
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { consumer } from './consumer'

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

  it("installs from its tarball in an empty project, and loads there with require and with import", function () {
    this.timeout(120_000)
    const dir = consumer()
    const names = ['Gossip', 'PeerStream', 'History', 'base', 'Base', 'resolution', 'counter', 'serialize', 'parse', 'openGossip', 'startNode']
    fs.writeFileSync(
      path.join(dir, 'load.cjs'),
      `const p = require('simple-scuttle'); console.log(JSON.stringify(${JSON.stringify(names)}.filter((n) => p[n] === undefined)))`,
    )
    fs.writeFileSync(
      path.join(dir, 'load.mjs'),
      `import * as p from 'simple-scuttle'; import d from 'simple-scuttle'; console.log(JSON.stringify(${JSON.stringify(names)}.filter((n) => p[n] === undefined || d[n] !== p[n])))`,
    )
    for (const f of ['load.cjs', 'load.mjs']) {
      const out = execFileSync(process.execPath, [f], { cwd: dir, encoding: 'utf8' })
      assert.strictEqual(out.trim(), '[]', `${f}: missing exports`)
    }
    // The types a consumer needs are installed with it.
    for (const t of ['@types/readable-stream', '@types/node']) {
      assert.ok(fs.existsSync(path.join(dir, 'node_modules', t, 'package.json')), `${t} is installed`)
    }
  })
})
