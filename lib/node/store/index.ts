/**
 * The SQLite store, one job per module: `store.ts` composes them (see its
 * header for the directory's layout and what is durable when a write is
 * acknowledged); `open-gossip.ts` opens a node on it in one step.
 *
 * @packageDocumentation
 */
export { Store } from './store'
export type { StoreOptions } from './store'
export { StoreDamagedError, StoreError } from './damage'
export type { StoreErrorCode } from './damage'
export { openGossip } from './open-gossip'
export type { OpenGossipOptions } from './open-gossip'
