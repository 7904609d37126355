/**
 * The README's examples, as a stranger would meet them: in an empty project
 * that installed the packed tarball, the TypeScript ones compiled with
 * `tsc --strict` (with and without skipLibCheck) and run, the JavaScript
 * ones run with node; each prints what the README says it prints.
 */
import * as assert from 'assert'
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { ROOT, consumer, tsc } from './consumer'

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const examples = [...readme.matchAll(/```(ts|js)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], code: m[2] }))

// What each example must print, in README order; a new example needs a line here.
const expected: RegExp[] = [
  /b applied color = blue[\s\S]*large blue[\s\S]*"key":"color","value":"blue","source_id":"a"/,
  /client got motd = "hello from the server" from server/,
  /persist \{"key":"greeting","value":"hello","source_id":"peer","version":\d+\}\n[\s\S]*state\.greeting\.value = hello/,
  /update of \d+ bytes on the wire is over half of mtu_bytes \(8192 of 16384\)/,
  /table holds \[ 'motd' \][\s\S]*restarted with stored true/,
  /visits 3 3/,
  /after delete: false -Infinity\ncollected: 0 0\nset again: again/,
  /a had 5 updates b lacked[\s\S]*b is in sync with every peer: 5 keys/,
  /replica has \{ replicas: 3 \} ; primary has scratch: false/,
  /b holds \[ 'public\/motd' \]/,
  /^local users\/ann \{ role: 'admin' \}\nremote users\/bob \{ role: 'dev' \}\ndelete users\/ann undefined\n$/,
  /longest converges/,
  /true false[\s\S]*admitted: 2/,
  /after a restart: v/,
  /a sees b live at b\.example:7002 \{ zone: 'west' \}[\s\S]*a sees b dead after \d+ ms without a heartbeat\na: live, b: dead/,
  /refused: signature of a missing or invalid[\s\S]*b holds by a with a signature: string/,
  /node got hi \/ page got hello via server/,
]

describe('README examples, from the packed tarball', function () {
  this.timeout(120_000)
  let dir = ''
  const file = (i: number) => `example${i + 1}.${examples[i].lang}`

  before(() => {
    dir = consumer()
    examples.forEach((e, i) => fs.writeFileSync(path.join(dir, file(i)), e.code))
  })

  it('has an expectation for every example', () => {
    assert.strictEqual(examples.length, expected.length)
  })

  it('compiles every TypeScript example with tsc --strict, with and without skipLibCheck', () => {
    const ts = examples.map((e, i) => (e.lang === 'ts' ? file(i) : null)).filter((f): f is string => f !== null)
    assert.ok(ts.length >= 5)
    tsc(dir, ts, false)
    tsc(dir, ts, true)
  })

  examples.forEach((e, i) => {
    const first = e.code.split('\n').find((l) => l.trim() !== '' && !/^(import|const|var|\/\/)/.test(l.trim())) ?? ''
    it(`example ${i + 1} (${e.lang}) runs: ${first.trim().slice(0, 50)}`, () => {
      const script = e.lang === 'ts' ? path.join('out', file(i).replace(/\.ts$/, '.js')) : file(i)
      const cwd = fs.mkdtempSync(path.join(dir, 'run-'))
      const out = execFileSync(process.execPath, [path.join(dir, script)], { cwd, timeout: 30_000, encoding: 'utf8' })
      assert.match(out, expected[i] ?? /^$/)
    })
  })
})
