/**
 * `simple-scuttle node`'s options (bin/node.ts).
 */
import * as assert from 'assert'
import { parseArgs } from '../../bin/node'

describe('simple-scuttle node: options', () => {
  it('the command line takes --ws, --codec and --mtu-bytes, and refuses bad ones', () => {
    const a = parseArgs(['--id', 'a', '--ws', '127.0.0.1:7101', '--codec', 'ndjson', '--mtu-bytes', '65536'])
    assert.deepStrictEqual([a.ws, a.codec, a.mtuBytes], [{ host: '127.0.0.1', port: 7101 }, 'ndjson', 65536])
    assert.throws(() => parseArgs(['--id', 'a', '--codec', 'xml']), /--codec/)
    assert.throws(() => parseArgs(['--id', 'a', '--mtu-bytes', '1000']), /--mtu-bytes/)
    assert.throws(() => parseArgs(['--id', 'a', '--ws', 'nope']), /HOST:PORT/)
  })
})
