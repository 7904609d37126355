/**
 * The optional peers (lib/node/peer.ts): loaded when first used, a clear
 * error when not installed. (From the packed tarball, without them:
 * package/package.test.ts.)
 */
import * as assert from 'assert'
import { MissingPeerError, loadPeer, type OptionalPeer } from '../../lib/node/peer'

describe('node: optional peers', () => {
  it('loads an installed peer', () => {
    const ws = loadPeer<{ WebSocketServer: unknown }>('ws', 'WebSocket')
    assert.strictEqual(typeof ws.WebSocketServer, 'function')
  })

  it('a peer not installed: MissingPeerError saying what to install, with code missing_peer and the cause', () => {
    const name = 'simple-scuttle-no-such-peer' as OptionalPeer
    let err: unknown
    try {
      loadPeer(name, '--metrics')
    } catch (e) {
      err = e
    }
    assert.ok(err instanceof MissingPeerError)
    assert.strictEqual(err.code, 'missing_peer')
    assert.strictEqual(err.peer, name)
    assert.strictEqual(err.feature, '--metrics')
    assert.strictEqual(err.message, `--metrics needs the package ${name}, which is not installed: run npm install ${name}`)
    assert.strictEqual((err.cause as NodeJS.ErrnoException).code, 'MODULE_NOT_FOUND')
  })
})
