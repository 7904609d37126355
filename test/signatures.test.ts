/**
 * Updates as they are made (lib/signatures.ts): our own writes, markers and
 * signed ones, and a peer's update checked against its signature.
 */
import * as assert from 'assert'
import { ownUpdate, peerUpdate, signed, verified } from '../lib/signatures'
import type { Security, Update } from '../lib'

// Signs with the update's fields; `seen` keeps what sign was shown.
function security(seen: Update[] = []): Security {
  const text = (u: Update) => `${u.source_id}/${u.key}/${JSON.stringify(u.value)}/${u.version}/${u.deleted === true ? 'd' : ''}${u.withdrawn === true ? 'w' : ''}`
  return {
    sign: (u) => {
      seen.push({ ...u })
      return `sig:${text(u)}`
    },
    verify: (u) => u.signature === `sig:${text(u)}`,
  }
}

describe('signatures', () => {
  it('ownUpdate: a write, a tombstone (value null) or a withdrawal (value: the version it takes back), frozen', () => {
    const w = ownUpdate(undefined, 'a', 'k', 5, 10, null, null)
    assert.deepStrictEqual(w, { key: 'k', value: 5, source_id: 'a', version: 10 })
    assert.ok(Object.isFrozen(w))
    assert.deepStrictEqual(ownUpdate(undefined, 'a', 'k', 5, 11, 'deleted', null), { key: 'k', value: null, source_id: 'a', version: 11, deleted: true })
    assert.deepStrictEqual(ownUpdate(undefined, 'a', 'k', 5, 12, 'withdrawn', 10), { key: 'k', value: 10, source_id: 'a', version: 12, withdrawn: true })
  })

  it('ownUpdate under security: signed over what is sent, sign shown an empty signature', () => {
    const seen: Update[] = []
    const s = security(seen)
    const w = ownUpdate(s, 'a', 'k', 5, 10, null, null)
    assert.deepStrictEqual(w, { key: 'k', value: 5, source_id: 'a', version: 10, signature: 'sig:a/k/5/10/' })
    assert.ok(Object.isFrozen(w))
    assert.strictEqual(seen[0].signature, '')
    assert.deepStrictEqual(ownUpdate(s, 'a', 'k', 5, 11, 'deleted', null), { key: 'k', value: null, source_id: 'a', version: 11, signature: 'sig:a/k/null/11/d', deleted: true })
    assert.deepStrictEqual(signed(s, 'a', 'k', 10, 12, 'withdrawn'), { key: 'k', value: 10, source_id: 'a', version: 12, signature: 'sig:a/k/10/12/w', withdrawn: true })
  })

  it("verified: the signature when verify accepts the update as given, else undefined (a missing signature, a forgery, a verify that throws)", () => {
    const s = security()
    const ok = signed(s, 'b', 'k', 1, 3, 'deleted')
    assert.strictEqual(verified(s, ok, 'k', 1, 'b', 3, 'deleted'), ok.signature)
    // The same signature over another value, version or marker is a forgery.
    assert.strictEqual(verified(s, ok, 'k', 2, 'b', 3, 'deleted'), undefined)
    assert.strictEqual(verified(s, ok, 'k', 1, 'b', 4, 'deleted'), undefined)
    assert.strictEqual(verified(s, ok, 'k', 1, 'b', 3, null), undefined)
    assert.strictEqual(verified(s, { ...ok, signature: 7 }, 'k', 1, 'b', 3, 'deleted'), undefined)
    assert.strictEqual(verified(s, null, 'k', 1, 'b', 3, 'deleted'), undefined)
    const throwing: Security = { sign: () => '', verify: () => { throw new Error('boom') } }
    assert.strictEqual(verified(throwing, ok, 'k', 1, 'b', 3, 'deleted'), undefined)
  })

  it('peerUpdate: the shape taken, with the signature only when there is one, frozen', () => {
    const cases: [string | undefined, boolean, boolean, object][] = [
      [undefined, false, false, { key: 'k', value: 1, source_id: 'b', version: 3 }],
      [undefined, true, false, { key: 'k', value: 1, source_id: 'b', version: 3, deleted: true }],
      [undefined, false, true, { key: 'k', value: 1, source_id: 'b', version: 3, withdrawn: true }],
      ['s', false, false, { key: 'k', value: 1, source_id: 'b', version: 3, signature: 's' }],
      ['s', true, false, { key: 'k', value: 1, source_id: 'b', version: 3, signature: 's', deleted: true }],
      ['s', false, true, { key: 'k', value: 1, source_id: 'b', version: 3, signature: 's', withdrawn: true }],
    ]
    for (const [signature, deleted, withdrawn, want] of cases) {
      const u = peerUpdate('k', 1, 'b', 3, signature, deleted, withdrawn)
      assert.deepStrictEqual(u, want)
      assert.ok(Object.isFrozen(u))
    }
  })
})
