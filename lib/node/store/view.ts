/**
 * The resolved view in the database, as a store object (the original API's
 * `new Gossip(id, config, store.view)`): `view[key]` reads the key's entry
 * from state.db (checksum checked), and a write goes into the store's next
 * transaction.
 *
 * Invariants: a read sees every write made through the view, committed or
 * not (entries not yet committed are read from the overlay); the node's
 * record of deletes is read from the database and written by the store
 * itself (see Gossip.persisted), never through the view.
 */
import { checkedUpdate, RECORD_KEY } from '../../shape'
import type { StateStore, Update } from '../../types'
import { StoreError } from './damage'

/** What the view reads and writes: given by the store. */
export interface ViewSource {
  /** The store closed: reads find nothing, writes throw. */
  readonly closed: boolean
  /** Entries written through the view and not committed yet (null: removed). */
  readonly overlay: ReadonlyMap<string, Update | null>
  /** The key's entry in the database. */
  get(key: string): Update | undefined
  /** The keys with an entry in the database, in version order. */
  keys(): string[]
  /** Queue an entry written through the view (null: removed) for the next transaction, into the overlay first. */
  write(key: string, entry: Update | null): void
  /** The node's record of deletes as last written. */
  record(): string | undefined
}

/** A Proxy over `source`, the StateStore a Gossip is built on. */
export function makeView(source: ViewSource): StateStore {
  const read = (key: string | symbol): Update | undefined => {
    if (typeof key !== 'string' || source.closed) return undefined
    const o = source.overlay.get(key)
    if (o !== undefined) return o ?? undefined
    return source.get(key)
  }
  const write = (key: string, entry: Update | null): void => {
    if (source.closed) throw new StoreError('store_closed', 'store: closed')
    source.write(key, entry)
  }
  return new Proxy(Object.create(null) as StateStore, {
    // The node's record of deletes: the store keeps it itself (see
    // Gossip.persisted) and gives it back at start. The node's other
    // reserved keys (its mappings that are not entries) the database
    // holds already: every mapping is a row.
    get: (_t, key) => (key === RECORD_KEY ? source.record() : read(key)),
    has: (_t, key) => read(key) !== undefined,
    set: (_t, key, value: unknown) => {
      if (typeof key !== 'string') return false
      if (key.charCodeAt(0) === 0) return true
      let u: Update
      try {
        u = checkedUpdate(value, 'the entry')
      } catch (err) {
        throw new TypeError(`store: ${JSON.stringify(key)}: ${(err as Error).message}`)
      }
      if (u.key !== key) throw new TypeError(`store: ${JSON.stringify(key)} must be set to an update of that key`)
      write(key, u)
      return true
    },
    deleteProperty: (_t, key) => {
      if (typeof key === 'string' && key.charCodeAt(0) !== 0) write(key, null)
      return true
    },
    ownKeys: () => {
      const keys = new Set<string>(source.closed ? [] : source.keys())
      for (const [k, v] of source.overlay) {
        if (v === null) keys.delete(k)
        else keys.add(k)
      }
      return [...keys]
    },
    getOwnPropertyDescriptor: (_t, key) => {
      const value = read(key)
      return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true }
    },
    defineProperty: () => false,
    getPrototypeOf: () => null,
  })
}
