/**
 * `openGossip`: a node whose state lives in a directory, in one step:
 * the store opened, the node restored from it (or made new, or built on
 * the database's resolved view) and attached.
 *
 * Invariant: the node is attached before it is returned, so every update it
 * applies from then on is recorded; a failure on the way closes the store.
 */
import { Clock } from '../../clock'
import { Gossip } from '../../gossip'
import type { Config, Snapshot } from '../../types'
import { Store, type StoreOptions } from './store'

/** Options of {@link openGossip}: the store's, and how the node keeps its resolved view. */
export interface OpenGossipOptions extends StoreOptions {
  /**
   * Build the node on the database's resolved view (`new Gossip(id,
   * config, store.view)`, the original API's store object) instead of
   * restoring every mapping into memory (`Gossip.restore`, the default).
   */
  view?: boolean
}

/**
 * A node whose state lives in `dir`: restored from it if it holds any, and
 * recorded to it from now on. Await `store.flush()` before acknowledging a
 * write; `store.close()` when done. `T` types the node's values, as in
 * `Gossip<T>` (unknown by default; not checked at run time).
 */
export function openGossip<T = unknown>(id: string, config: Config, dir: string, options: OpenGossipOptions = {}): { gossip: Gossip<T>; store: Store } {
  const store = Store.open(dir, id, options)
  try {
    let gossip: Gossip<T>
    if (options.view === true) {
      // A damaged row shows only once read: a repair reads every row first.
      if (options.repair === true) void store.state
      // A repaired database lost its resolved flags: make them again once.
      if (store.wasRepaired) store.writeResolved(Gossip.restore(id, config, store.state as Snapshot).state)
      // The view knows no reservation: the clock starts above it all the same.
      const now = Clock.now
      Clock.now = () => Math.max(now(), store.reserved)
      try {
        gossip = new Gossip<T>(id, config, store.view)
      } finally {
        Clock.now = now
      }
    } else {
      const state = store.state
      gossip = state === undefined ? new Gossip<T>(id, config) : Gossip.restore<T>(id, config, state)
    }
    store.attach(gossip)
    return { gossip, store }
  } catch (err) {
    void store.close()
    throw err
  }
}
