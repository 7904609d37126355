/**
 * The resolved view of a node that keeps it in memory, as the object the
 * original API promises (`state[key].value`, `Object.keys(state)`,
 * `JSON.stringify(state)`), without a second copy of every key: a read-only
 * Proxy over the history's slots, which hold each key's resolved entry.
 */
import type { History } from './history'
import type { StateStore, Update } from './types'

function readOnly(): never {
  throw new TypeError('gossip.state is read-only: write with gossip.set(key, value)')
}

/** `history`'s resolved view as a plain-looking object: enumerable, JSON-serialisable, no prototype. */
export function memoryView(history: History): StateStore {
  // A key's entry, unless it is a delete (a deleted key is absent).
  const entry = (key: string | symbol): Update | undefined => {
    if (typeof key !== 'string') return undefined
    const u = history._resolved(key)
    return u === undefined || u.deleted === true ? undefined : u
  }
  return new Proxy(Object.create(null) as StateStore, {
    get: (_target, key) => entry(key),
    has: (_target, key) => entry(key) !== undefined,
    ownKeys: () => {
      const keys: string[] = []
      for (const u of history._resolvedEntries()) if (u.deleted !== true) keys.push(u.key)
      return keys
    },
    getOwnPropertyDescriptor: (_target, key) => {
      const value = entry(key)
      return value === undefined ? undefined : { value, writable: false, enumerable: true, configurable: true }
    },
    getPrototypeOf: () => null,
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
    setPrototypeOf: readOnly,
  })
}
