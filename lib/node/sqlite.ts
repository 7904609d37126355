/**
 * `simple-scuttle/sqlite`: durable state for a node in Node.js, in an
 * SQLite database (`Store`), and `openGossip`, a node restored from it.
 * Needs the package better-sqlite3 (an optional peer dependency, which
 * compiles SQLite when no prebuilt binary fits): opening a store without it
 * throws a {@link MissingPeerError} that names it.
 *
 * @packageDocumentation
 * @module simple-scuttle/sqlite
 */
export { Store, StoreDamagedError, StoreError, openGossip } from './store'
export type { OpenGossipOptions, StoreErrorCode, StoreOptions } from './store'
export { MissingPeerError } from './peer'
export type { OptionalPeer } from './peer'
