/**
 * `simple-scuttle node`'s options (bin/node.ts).
 */
import * as assert from 'assert'
import { UsageError } from '../../bin/args'
import { operatorError, parseArgs } from '../../bin/node'
import { StoreDamagedError, StoreError } from '../../lib/node/store'
import { MissingPeerError } from '../../lib/node/peer'

describe('simple-scuttle node: options', () => {
  it('the command line takes --ws, --codec and --mtu-bytes, and refuses bad ones', () => {
    const a = parseArgs(['--id', 'a', '--ws', '127.0.0.1:7101', '--codec', 'ndjson', '--mtu-bytes', '65536'])
    assert.deepStrictEqual([a.ws, a.codec, a.mtuBytes], [{ host: '127.0.0.1', port: 7101 }, 'ndjson', 65536])
    assert.throws(() => parseArgs(['--id', 'a', '--codec', 'xml']), /--codec/)
    assert.throws(() => parseArgs(['--id', 'a', '--mtu-bytes', '1000']), /--mtu-bytes/)
    assert.throws(() => parseArgs(['--id', 'a', '--ws', 'nope']), /HOST:PORT/)
  })

  it('attack (issue 21, red team): --id "", --id __proto__ and --meta over 4,096 characters exited 1 ("cannot start"); required: usage errors (exit 2), saying what is wrong', () => {
    const usage = (args: string[], re: RegExp) =>
      assert.throws(
        () => parseArgs(args),
        (err: Error) => err instanceof UsageError && re.test(err.message),
        args.join(' '),
      )
    usage(['--id', ''], /--id must not be empty/)
    usage(['--id', '__proto__'], /--id "__proto__" is reserved/)
    usage(['--id', 'a\ud800'], /--id holds an unpaired/)
    usage(['--id', 'a', '--meta', JSON.stringify({ x: 'a'.repeat(5000) })], /--meta is 5008 characters of JSON: at most 4096/)
    assert.deepStrictEqual(parseArgs(['--id', 'a', '--meta', JSON.stringify({ x: 'a'.repeat(4000) })]).meta, { x: 'a'.repeat(4000) })
  })

  it('(found by the outside attack, red team 21j) --id a --id b kept b silently, and SCUTTLE_REPAIR=yes (or 1) was true where the file takes true or false only; required: a flag that takes one value given twice is a usage error, and a boolean variable takes true or false, as the file', () => {
    const usage = (args: string[], env: Record<string, string>, re: RegExp) =>
      assert.throws(
        () => parseArgs(args, env),
        (err: Error) => err instanceof UsageError && re.test(err.message),
        `${args.join(' ')} ${JSON.stringify(env)}`,
      )
    usage(['--id', 'a', '--id', 'b'], {}, /--id given twice \("a", then "b"\): it takes one value/)
    usage(['--id', 'a', '--interval=100', '--interval', '200'], {}, /--interval given twice/)
    for (const text of ['yes', 'no', '1', '0', 'on']) usage(['--id', 'a', '--data', '/tmp/x'], { SCUTTLE_REPAIR: text }, /SCUTTLE_REPAIR must be true or false/)
    assert.strictEqual(parseArgs(['--id', 'a', '--data', '/tmp/x'], { SCUTTLE_REPAIR: 'true' }).repair, true)
    assert.notStrictEqual(parseArgs(['--id', 'a', '--data', '/tmp/x'], { SCUTTLE_REPAIR: 'false' }).repair, true)
    // A list flag given twice is a list.
    assert.strictEqual(parseArgs(['--id', 'a', '--connect', '127.0.0.1:1', '--connect', '127.0.0.1:2'], {}).connect?.length, 2)
  })

  it('a usage error names its flag (UsageError.flag), by which a value set outside the command line is said where it was set', () => {
    const refusal = (args: string[], env: Record<string, string>): UsageError => {
      try {
        parseArgs(args, env)
      } catch (err) {
        if (err instanceof UsageError) return err
        throw err
      }
      assert.fail(`${args.join(' ')} ${JSON.stringify(env)}: no usage error`)
    }
    const byEnv = refusal(['--id', 'a'], { SCUTTLE_INTERVAL: '-5' })
    assert.deepStrictEqual([byEnv.code, byEnv.flag], ['usage', 'interval'])
    assert.match(byEnv.message, /^--interval must be .* \(set by SCUTTLE_INTERVAL\)$/)
    const onLine = refusal(['--id', 'a', '--interval', '-5'], {})
    assert.deepStrictEqual([onLine.flag, /\(set /.test(onLine.message)], ['interval', false])
    assert.strictEqual(refusal(['--id', 'a', '--id', 'b'], {}).flag, 'id')
    assert.strictEqual(refusal(['--id', 'a', '--listen'], {}).flag, 'listen')
    assert.strictEqual(refusal(['--id', 'a', '--nope'], {}).flag, undefined)
  })

  it("says a start's error by its class or code, not by the words of its message", () => {
    const args = parseArgs(['--id', 'a'])
    const said = (e: unknown) => operatorError(e, args)
    assert.strictEqual(said(new StoreError('store_in_use', 'store: /d is in use by another store')), 'store: /d is in use by another store')
    assert.match(said(new StoreDamagedError('/d/state.db', ['torn'])), /^store: \/d\/state\.db is damaged: torn\. .*--repair/)
    assert.strictEqual(said(new TypeError('--keys /k: a.key.pem is not\nan Ed25519 private key')), '--keys /k: a.key.pem is not an Ed25519 private key')
    assert.match(said(new MissingPeerError('ws', '--ws', new Error('nope'))), /run npm install ws \(beside simple-scuttle/)
    assert.strictEqual(said(Object.assign(new Error('listen'), { code: 'EADDRINUSE', address: '127.0.0.1', port: 7000 })).startsWith('cannot listen on 127.0.0.1:7000: the address is in use'), true)
    // A message that merely mentions a store or a key is not foreseen.
    assert.strictEqual(said(new Error('store: no such thing')), 'unexpected error: store: no such thing')
    assert.strictEqual(said(Object.assign(new Error('bad PEM key'), { code: 'ERR_X' })), 'unexpected error: ERR_X: bad PEM key')
  })
})
