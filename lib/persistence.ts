/**
 * The persistence contract: what a durable store does for a node so that a
 * crash loses nothing acknowledged and a restart continues the node exactly
 * (see docs/guide.md, "A durable store of your own"). The SQLite `Store`
 * (simple-scuttle/sqlite) and the browser's `IdbStore` (simple-scuttle/idb)
 * implement {@link PersistentStore}.
 */
import type { Transform } from 'readable-stream'
import type { Durable } from './barrier'
import type { Gossip } from './gossip'
import type { Persisted, Snapshot } from './types'

/**
 * A durable store of one node's state. Open it (each store has its own
 * `open`), restore the node from {@link state} (or make a new one when it
 * is undefined), {@link attach} the node, and from then on every mapping the
 * node records is kept; what `persisted()` returns is kept with each batch.
 */
export interface PersistentStore extends Durable {
  /** The id of the node whose state the store holds. */
  readonly id: string
  /**
   * What the store held when it opened, for `Gossip.restore(id, config,
   * state)`: every mapping kept (`updates`), `held` and the record's fields
   * (from `persisted()`), and `reserved`, a version above any the node may
   * have used, so that a restart never issues a version twice. Undefined
   * for a store that held nothing (a new node).
   */
  readonly state: Snapshot | undefined
  /**
   * Start recording `gossip` (whose id must be the store's): keep each
   * mapping its history reports with `'update'` `(update, resolved)`, drop
   * each one it reports with `'forget'` `(update)` (a delete covered it, or
   * it was a collected delete), and keep what `gossip.persisted()` returns
   * (read with each batch written: it is cheap). Once only; throws for a
   * second node or another id.
   */
  attach(gossip: Gossip): this
  /** True when everything recorded so far is durable. */
  readonly durable: boolean
  /**
   * Resolves once everything recorded so far is durable; rejects, for good,
   * once the store failed (with the reason).
   */
  flush(): Promise<void>
  /**
   * A pass-through for what the node sends a peer that holds each of the
   * node's own writes back until it is durable (see `barrier` in
   * lib/barrier.ts): `stream.pipe(store.barrier()).pipe(toPeer)`.
   */
  barrier(): Transform
  /** Flush, stop recording and release the store. Safe to call twice. */
  close(): Promise<void>
}
