/**
 * Signed updates, as the original scuttlebutt offered them: with
 * `config.security`, a node signs each of its own writes and accepts an
 * update of source S only when it carries a valid signature by S. A relay
 * passes signatures on untouched, so it can neither forge nor alter another
 * source's values; what it sends wrong is refused and reported as
 * `'invalid'` on the stream that received it.
 *
 * {@link ed25519} is a ready implementation on `node:crypto`, keyed by
 * source id.
 *
 * @packageDocumentation
 */
import * as crypto from 'crypto'
import type { Security, Update } from '../types'
import type { HelloAuth } from '../wire/session'

export type { Security }

/**
 * The bytes a signature covers: the update's key, value, source and
 * version, as JSON (values are JSON-safe, see `jsonProblem`, so the text is
 * the same on every node), after a fixed prefix that keeps these signatures
 * from meaning anything elsewhere.
 */
export function signedBytes(update: Update): Buffer {
  // A copy issued again (R2) signs its first version too: a relay cannot
  // move its place among other sources' writes.
  const first = update.first
  if (first !== undefined) {
    const { first: _, ...plain } = update
    return Buffer.concat([Buffer.from(`simple-scuttle/first/1\n${JSON.stringify(first)}\n`), signedBytes(plain)])
  }
  // A delete and a withdrawal sign other bytes than a write of null: a relay
  // cannot turn one into another.
  if (update.deleted === true) {
    return Buffer.from(`simple-scuttle/delete/1\n${JSON.stringify([update.key, update.source_id, update.version])}`)
  }
  if (update.withdrawn === true) {
    // One naming the version it withdraws signs that too (R6): a relay
    // cannot aim it at another value.
    if (typeof update.value === 'number') {
      return Buffer.from(`simple-scuttle/withdraw/2\n${JSON.stringify([update.key, update.source_id, update.version, update.value])}`)
    }
    return Buffer.from(`simple-scuttle/withdraw/1\n${JSON.stringify([update.key, update.source_id, update.version])}`)
  }
  return Buffer.from(
    `simple-scuttle/update/1\n${JSON.stringify([update.key, update.value, update.source_id, update.version])}`,
  )
}

/** A public or private key: a `KeyObject`, or its PEM text. */
export type KeyInput = crypto.KeyObject | string

/** Options of {@link ed25519}. */
export interface Ed25519Options {
  /** Public key of every source whose updates are accepted, by source id. */
  publicKeys: Readonly<Record<string, KeyInput>> | ReadonlyMap<string, KeyInput>
  /** This node's id and private key, to sign its own writes; omit to only verify. */
  id?: string
  privateKey?: KeyInput
}

function publicKey(k: KeyInput, id: string): crypto.KeyObject {
  const key = typeof k === 'string' ? crypto.createPublicKey(k) : k
  if (key.type === 'private') return crypto.createPublicKey(key)
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`public key of "${id}" is not an Ed25519 key`)
  return key
}

/**
 * Ed25519 signatures keyed by source id. `verify` accepts an update only if
 * its source has a public key here and the signature (base64) is valid for
 * the update's key, value, source and version.
 *
 * @example
 * ```ts
 * const a = generateKeyPair(), b = generateKeyPair()
 * const publicKeys = { a: a.publicKey, b: b.publicKey }
 * const node = new Gossip('a', { resolve, security: ed25519({ id: 'a', privateKey: a.privateKey, publicKeys }) })
 * ```
 * @throws TypeError for keys that are not Ed25519 keys.
 */
export function ed25519(options: Ed25519Options): Security {
  if (options === null || typeof options !== 'object') throw new TypeError('ed25519 options must be an object')
  const keys = new Map<string, crypto.KeyObject>()
  const given = options.publicKeys
  if (given === null || typeof given !== 'object') throw new TypeError('ed25519: publicKeys must map source ids to keys')
  const entries = given instanceof Map ? [...given.entries()] : Object.entries(given)
  for (const [id, k] of entries) keys.set(id, publicKey(k, id))
  let signer: crypto.KeyObject | undefined
  const id = options.id
  if (options.privateKey !== undefined) {
    if (typeof id !== 'string') throw new TypeError('ed25519: a privateKey needs the id it signs for')
    signer = typeof options.privateKey === 'string' ? crypto.createPrivateKey(options.privateKey) : options.privateKey
    if (signer.type !== 'private' || signer.asymmetricKeyType !== 'ed25519') {
      throw new TypeError('ed25519: privateKey must be an Ed25519 private key')
    }
    if (!keys.has(id)) keys.set(id, crypto.createPublicKey(signer))
  }
  return {
    sign(update: Update): string {
      if (signer === undefined || update.source_id !== id) {
        throw new Error(`ed25519: no private key for source "${update.source_id}"`)
      }
      return crypto.sign(null, signedBytes(update), signer).toString('base64')
    },
    verify(update: Update): boolean {
      const key = keys.get(update.source_id)
      const signature = update.signature
      if (key === undefined || typeof signature !== 'string' || signature.length !== 88) return false
      return crypto.verify(null, signedBytes(update), key, Buffer.from(signature, 'base64'))
    },
  }
}

/** A fresh Ed25519 key pair, as PEM text. */
export function generateKeyPair(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
  return {
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
}

/**
 * Hello proofs (see `lib/wire/session.ts`) with the same keys as
 * {@link ed25519}: this node signs with `privateKey`, and checks a peer's
 * proof with the public key held for the id its hello claims.
 * @throws TypeError for keys that are not Ed25519 keys, or without a private key.
 */
export function helloAuth(options: Ed25519Options): HelloAuth {
  if (options.privateKey === undefined || typeof options.id !== 'string') {
    throw new TypeError('hello proofs need this node\'s id and private key (ID.key.pem in the keys directory)')
  }
  const signer = typeof options.privateKey === 'string' ? crypto.createPrivateKey(options.privateKey) : options.privateKey
  if (signer.type !== 'private' || signer.asymmetricKeyType !== 'ed25519') throw new TypeError('ed25519: privateKey must be an Ed25519 private key')
  const keys = new Map<string, crypto.KeyObject>()
  const given = options.publicKeys
  const entries = given instanceof Map ? [...given.entries()] : Object.entries(given)
  for (const [id, k] of entries) keys.set(id, publicKey(k, id))
  if (!keys.has(options.id)) keys.set(options.id, crypto.createPublicKey(signer))
  return {
    sign: (bytes) => crypto.sign(null, bytes, signer).toString('base64'),
    verify(id, bytes, signature) {
      const key = keys.get(id)
      if (key === undefined || signature.length !== 88) return false
      return crypto.verify(null, bytes, key, Buffer.from(signature, 'base64'))
    },
  }
}

/** A session nonce: 16 random bytes, base64. */
export function randomNonce(): string {
  return crypto.randomBytes(16).toString('base64')
}
