/**
 * `simple-scuttle/idb`: the durable store of a web page, on IndexedDB
 * (`IdbStore`), and `openIdbGossip`, a node restored from it. Runs where
 * `indexedDB` exists (browsers, workers; in Node with an implementation
 * such as fake-indexeddb passed as an option).
 *
 * @packageDocumentation
 * @module simple-scuttle/idb
 */
export { IdbStore, openIdbGossip } from './idb-store'
export type { IdbStoreOptions } from './idb-store'
