/**
 * `simple-scuttle node`'s options (bin/node.ts).
 */
import * as assert from 'assert'
import { UsageError } from '../../bin/args'
import { parseArgs } from '../../bin/node'

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
})
