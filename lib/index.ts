/**
 * simple-scuttle: Scuttlebutt anti-entropy replication (van Renesse et al.,
 * "Efficient Reconciliation and Flow Control for Anti-Entropy Protocols",
 * 2008) as object-mode streams.
 *
 * This entry adds the Node-only pieces to the browser-safe ones of
 * `./browser`: the durable `Store` (SQLite), the TCP node and Ed25519 signing.
 *
 * @packageDocumentation
 */
export * from './browser'
export { Store, StoreDamagedError, openGossip } from './node/store'
export type { OpenGossipOptions, StoreOptions } from './node/store'
export { ed25519, generateKeyPair, signedBytes, helloAuth } from './node/security'
export type { Ed25519Options, KeyInput } from './node/security'
export { startNode, ScuttleNode, DEFAULT_CLUSTER, DEFAULT_PORT, DEFAULT_ADMIN_PORT, StoreFailedError, TwinError } from './node/tcp'
export type { Address, NodeOptions, NodeStats, PeerInfo, TwinReport } from './node/tcp'
export { AdminServer } from './node/admin'
export type { AdminOptions, AdminRequest, AdminTarget } from './node/admin'
