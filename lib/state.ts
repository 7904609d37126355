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
    const u = history.entry(key)
    return u === undefined || u.deleted === true ? undefined : u
  }
  // util.inspect shows a Proxy's target, not what its traps say: the target
  // tells it to show the view instead (a symbol, so no key ever hides it).
  const target = Object.create(null) as StateStore
  Object.defineProperty(target, Symbol.for('nodejs.util.inspect.custom'), {
    value: (_depth: number, options: object, inspect: (v: unknown, o: object) => string) => {
      const copy: Record<string, Update> = {}
      for (const u of history.entries()) if (u.deleted !== true) copy[u.key] = u
      return inspect(copy, options)
    },
    configurable: true,
  })
  return new Proxy(target, {
    get: (_target, key) => entry(key),
    has: (_target, key) => entry(key) !== undefined,
    ownKeys: () => {
      const keys: string[] = []
      for (const u of history.entries()) if (u.deleted !== true) keys.push(u.key)
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
    // A live view cannot be frozen (it changes with every write): freeze a copy.
    preventExtensions: () => {
      throw new TypeError('gossip.state is live and read-only: freeze a copy ({ ...gossip.state }) instead')
    },
  })
}

/**
 * `state` over a store object: the store's keys but the node's own (those
 * starting with "\u0000": its record and the mappings that are not
 * entries) and deleted ones (a tombstone is the key's entry in the store,
 * so a restart knows it deleted; `state` leaves it out, as over memory),
 * read-only like the view over memory.
 */
export function storeView(store: StateStore): StateStore {
  const mine = (key: string | symbol): boolean => typeof key === 'string' && key.charCodeAt(0) === 0
  const deleted = (target: StateStore, key: string | symbol): boolean => (Reflect.get(target, key) as Update | undefined)?.deleted === true
  const hidden = (target: StateStore, key: string | symbol): boolean => mine(key) || deleted(target, key)
  return new Proxy(store, {
    get: (target, key) => {
      const u = mine(key) ? undefined : (Reflect.get(target, key) as Update | undefined)
      return u?.deleted === true ? undefined : u
    },
    has: (target, key) => !hidden(target, key) && Reflect.has(target, key),
    ownKeys: (target) => Reflect.ownKeys(target).filter((k) => !hidden(target, k)),
    getOwnPropertyDescriptor: (target, key) => (hidden(target, key) ? undefined : Reflect.getOwnPropertyDescriptor(target, key)),
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
    setPrototypeOf: readOnly,
  })
}
