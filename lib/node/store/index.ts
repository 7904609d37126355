/**
 * The SQLite store, one job per module: `store.ts` composes them (see its
 * header for the directory's layout and what is durable when a write is
 * acknowledged).
 *
 * @packageDocumentation
 */
export { Store, StoreDamagedError, openGossip, rowCrc } from './store'
export type { OpenGossipOptions, StoreOptions } from './store'
