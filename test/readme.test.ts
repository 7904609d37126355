/**
 * The README's JavaScript examples run, as written, against the built
 * package, and print what they say they print.
 */
import * as assert from 'assert'
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'

const root = path.join(__dirname, '..', '..')
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const examples = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])

// What each example must print, in README order; a new example needs a line here.
const expected: RegExp[] = [
  /b applied color = blue[\s\S]*large blue/,
  /client got motd = "hello from the server" from server/,
  /longest converges/,
]

describe('README examples', function () {
  this.timeout(60_000)

  it('has an expectation for every example', () => {
    assert.strictEqual(examples.length, expected.length)
  })

  examples.forEach((code, i) => {
    const first = code.split('\n').find((l) => l.trim() !== '' && !l.startsWith('const')) ?? ''
    it(`example ${i + 1} runs: ${first.slice(0, 50)}`, () => {
      const out = execFileSync(process.execPath, ['-e', code], { cwd: root, timeout: 30_000, encoding: 'utf8' })
      assert.match(out, expected[i] ?? /^$/)
    })
  })
})
