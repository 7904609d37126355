/**
 * The resolved view of a node that keeps it in memory, as the object the
 * original API promises (`state[key].value`, `Object.keys(state)`,
 * `JSON.stringify(state)`), without a second copy of every key: a read-only
 * Proxy over the history's slots, which hold each key's resolved entry.
 */
import type { History } from './history'
import type { StateStore } from './types'

function readOnly(): never {
  throw new TypeError('gossip.state is read-only: write with gossip.set(key, value)')
}

/** `history`'s resolved view as a plain-looking object: enumerable, JSON-serialisable, no prototype. */
export function memoryView(history: History): StateStore {
  return new Proxy(Object.create(null) as StateStore, {
    get: (_target, key) => (typeof key === 'string' ? history._resolved(key) : undefined),
    has: (_target, key) => typeof key === 'string' && history._resolved(key) !== undefined,
    ownKeys: () => Array.from(history._resolvedEntries(), (u) => u.key),
    getOwnPropertyDescriptor: (_target, key) => {
      const value = typeof key === 'string' ? history._resolved(key) : undefined
      return value === undefined ? undefined : { value, writable: false, enumerable: true, configurable: true }
    },
    getPrototypeOf: () => null,
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
    setPrototypeOf: readOnly,
  })
}
