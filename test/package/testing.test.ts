/**
 * simple-scuttle/testing from the packed tarball: a strict TypeScript
 * consumer, and plain JavaScript with require and import.
 * docs/testing.md's example is test/package/readme.test.ts's.
 */
import * as assert from 'assert'
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { consumer, tsc } from '../consumer'

// TypeScript compiles import() to require() under CommonJS; keep a real one.
const importESM = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Record<string, unknown>>

describe('simple-scuttle/testing', function () {
  this.timeout(120_000)

  describe('from the packed tarball', () => {
    let dir = ''
    before(() => {
      dir = consumer()
    })

    it('a strict TypeScript consumer imports simple-scuttle/testing and runs checkPolicy and checkConvergence', () => {
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.ts'),
        [
          "import fc from 'fast-check'",
          "import { base } from 'simple-scuttle'",
          "import type { Resolve } from 'simple-scuttle'",
          "import { checkConvergence, checkPolicy, PolicyError, type ConvergenceOptions } from 'simple-scuttle/testing'",
          'const latest: Resolve = () => true',
          'const options: ConvergenceOptions<string> = { values: fc.string(), runs: 10 }',
          'async function main(): Promise<void> {',
          '  const { runs } = checkPolicy(base.resolution.lww_vs_current_vers, fc.integer())',
          '  try {',
          '    checkPolicy(latest, fc.integer())',
          '  } catch (err) {',
          "    if (err instanceof PolicyError) console.log('caught', err.property, err.counterexample.updates.length)",
          '  }',
          '  const report = await checkConvergence({ resolve: base.resolution.lww_vs_current_vers }, options)',
          "  console.log('passed', runs, report.runs)",
          '}',
          'void main()',
        ].join('\n'),
      )
      // The same as an ES module (.mts): its fast-check is fast-check's ESM
      // copy, whose classes TypeScript tells apart from the CommonJS one's
      // (a stranger's strict ESM project failed on it).
      fs.copyFileSync(path.join(dir, 'testing-consumer.ts'), path.join(dir, 'testing-consumer.mts'))
      tsc(dir, ['testing-consumer.ts', 'testing-consumer.mts'], false)
      tsc(dir, ['testing-consumer.ts', 'testing-consumer.mts'], true)
      for (const file of ['testing-consumer.js', 'testing-consumer.mjs']) {
        const out = execFileSync(process.execPath, [path.join(dir, 'out', file)], { cwd: dir, encoding: 'utf8' })
        assert.match(out, /^caught order independence [1-6]\npassed 100 10\n$/, file)
      }
    })

    it('plain JavaScript consumers require and import it, and run checkPolicy', () => {
      const body = [
        "const ok = checkPolicy(base.resolution.strictly_order_values, fc.integer()).runs",
        'let caught = null',
        'try { checkPolicy(() => true, fc.integer()) } catch (err) { caught = err.name }',
        'console.log(ok, caught)',
      ]
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.cjs'),
        ["const fc = require('fast-check')", "const { base } = require('simple-scuttle')", "const { checkPolicy } = require('simple-scuttle/testing')", ...body].join('\n'),
      )
      fs.writeFileSync(
        path.join(dir, 'testing-consumer.mjs'),
        ["import fc from 'fast-check'", "import { base } from 'simple-scuttle'", "import { checkPolicy } from 'simple-scuttle/testing'", ...body].join('\n'),
      )
      for (const f of ['testing-consumer.cjs', 'testing-consumer.mjs']) {
        const out = execFileSync(process.execPath, [f], { cwd: dir, encoding: 'utf8' })
        assert.strictEqual(out, '100 PolicyError\n', f)
      }
    })
  })

  it('the ESM entry exports every name of the CommonJS one, the same objects', async () => {
    const esm = await importESM('simple-scuttle/testing')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cjs = require('simple-scuttle/testing') as Record<string, unknown>
    for (const name of Object.keys(cjs)) assert.strictEqual(esm[name], cjs[name], `import exports ${name}`)
    assert.strictEqual(esm.default, cjs)
  })
})
