/**
 * `simple-scuttle/node`: what needs Node.js besides the store: the TCP node
 * that `simple-scuttle node` runs (`startNode`), its admin endpoint and
 * Ed25519 signing. Loads with no optional package; a node started with
 * `data` needs better-sqlite3, with `ws` (WebSockets) the package ws, with
 * `metrics` prom-client, and each throws a {@link MissingPeerError} naming
 * the package when it is not installed.
 *
 * @packageDocumentation
 * @module simple-scuttle/node
 */
export { ed25519, generateKeyPair, signedBytes, helloAuth } from './security'
export type { Ed25519Options, KeyInput } from './security'
export { startNode, ScuttleNode, DEFAULT_CLUSTER, DEFAULT_PORT, DEFAULT_ADMIN_PORT, StoreFailedError, TwinError } from './tcp'
export type { Address, CloseCode, LogLevel, NodeOptions, NodeStats, PeerInfo, TwinReport } from './tcp'
export { CLOSE_CODES } from './types'
export { AdminServer, FailureLimiter } from './admin'
export type { AdminCode, AdminOptions, AdminRequest, AdminTarget, Lockout } from './admin'
export { ADMIN_CODES } from '../codes'
export { MissingPeerError } from './peer'
export type { OptionalPeer } from './peer'
