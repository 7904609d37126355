/**
 * Durable state for a node in a web page, on IndexedDB: the same records
 * and the same interface as the Node store (`lib/node/store.ts`), so that a
 * page keeps its state across reloads.
 *
 * Database `name` (version 1) holds two object stores:
 * - `mappings`: every source's newest mapping of each key (the paper's mu),
 *   `{key, source_id, version, value, signature?, deleted?, withdrawn?}`
 *   keyed by `[key, source_id]`, with an index `by_source` on
 *   `[source_id, version]`; a mapping the node forgets (a collected marker,
 *   or one a refetch found dead) is deleted from it;
 * - `meta`: one record `{id, reserved, held, seq, deletes}`, `deletes` being
 *   what the node keeps of deletes besides its mappings (docs/deletes.md).
 *
 * Every update written to the node's history is queued and written, with
 * whatever else is queued, in one `readwrite` transaction (durability
 * `'strict'` where the browser offers it); `flush()` resolves once every
 * transaction so far has completed.
 *
 * Versions: IndexedDB cannot be written synchronously, so the store
 * reserves versions when it opens (`reserve` above the wall clock and above
 * the last reservation, committed before the node exists), and again in the
 * transaction of any write that goes past the reservation. `barrier()`
 * holds the node's own writes back from peers until they (and so their
 * reservation) are durable; a digest naming a version a crash took back is
 * caught by the protocol (see docs/ALGORITHM.md, "Versions, clocks and restarts").
 *
 * In use by another tab: where the Web Locks API exists, the store holds an
 * exclusive lock named after the database for as long as it is open, and a
 * second store on it is refused.
 *
 * @packageDocumentation
 */
import type { Transform } from 'readable-stream'
import { barrier } from '../barrier'
import { Clock } from '../clock'
import { Gossip } from '../gossip'
import { checkedUpdate } from '../shape'
import { recordFields, type RecordFields } from '../snapshot'
import type { Config, Snapshot, Update } from '../types'
import type { PersistentStore } from '../persistence'

/** Options of {@link IdbStore.open}. */
export interface IdbStoreOptions {
  /** Versions reserved ahead of use. Default 1000000. */
  reserve?: number
  /** The IndexedDB to use. Default `globalThis.indexedDB`. */
  indexedDB?: IDBFactory
  /** The Web Locks API to use. Default `navigator.locks` where it exists; `null`: none. */
  locks?: LockManager | null
}

interface Meta {
  id: string
  reserved: number
  held: number | null
  seq: number
  /** The node's record (`Persisted.record`, from gossip.persisted()), JSON text; absent in databases written before it. */
  deletes?: string | null
}

const MAPPINGS = 'mappings'
const META = 'meta'

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
  })
}

function writeTx(db: IDBDatabase): IDBTransaction {
  try {
    return db.transaction([MAPPINGS, META], 'readwrite', { durability: 'strict' })
  } catch {
    return db.transaction([MAPPINGS, META], 'readwrite')
  }
}

/**
 * The durable state of one node in IndexedDB. `IdbStore.open(name, id)`,
 * then `store.attach(Gossip.restore(id, config, store.state))` (or `new
 * Gossip` when `state` is undefined); or in one step {@link openIdbGossip}.
 */
export class IdbStore implements PersistentStore {
  /** What the database held: pass it to `Gossip.restore` (undefined for a new one). */
  readonly state: Snapshot | undefined
  /** Highest version reserved in the database. */
  reserved: number

  private gossip: Gossip | null = null
  // What to write: mappings to put, and (forget) mappings to delete.
  private queue: { u: Update; forget: boolean }[] = []
  private deletes: string | null
  private scheduled = false
  private seq: number
  private committed: number
  private synced: number
  private held: number | null
  private closed = false
  private failure: Error | null = null
  private waiters: { target: number; resolve: () => void; reject: (err: Error) => void }[] = []
  private ownUnsynced: number[] = []
  private ownSynced = -Infinity
  private readonly onUpdate = (u: Update): void => this.record(u, false)
  private readonly onForget = (u: Update): void => this.record(u, true)

  private constructor(
    private readonly db: IDBDatabase,
    /** The database's name. */
    readonly name: string,
    /** The node id whose state it holds. */
    readonly id: string,
    meta: Meta,
    state: Snapshot | undefined,
    private readonly reserveAhead: number,
    private readonly release: () => void,
  ) {
    this.state = state
    this.reserved = meta.reserved
    this.seq = this.committed = this.synced = meta.seq
    this.held = meta.held
    this.deletes = meta.deletes ?? null
  }

  /**
   * Open (creating if needed) the database `name` for node `id`, read what
   * it holds, and reserve versions before the node exists.
   * @throws Error if it belongs to another id, is in use by another store,
   *   or holds records that are not updates (naming the database and the record).
   */
  static async open(name: string, id: string, options: IdbStoreOptions = {}): Promise<IdbStore> {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('idb store: name must be a non-empty string')
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('idb store: id must be a non-empty string')
    const reserve = options.reserve ?? 1_000_000
    if (!(Number.isSafeInteger(reserve) && reserve >= 1)) throw new TypeError('idb store: reserve must be a positive integer')
    const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB
    if (factory === undefined) throw new Error('idb store: this environment has no IndexedDB')
    const release = await lock(name, options.locks === undefined ? (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks : options.locks)
    let db: IDBDatabase | undefined
    try {
      const open = factory.open(name, 1)
      open.onupgradeneeded = () => {
        const d = open.result
        const mappings = d.createObjectStore(MAPPINGS, { keyPath: ['key', 'source_id'] })
        mappings.createIndex('by_source', ['source_id', 'version'])
        d.createObjectStore(META)
      }
      db = await request(open)
      const read = db.transaction([MAPPINGS, META], 'readonly')
      const [meta, records] = await Promise.all([
        request(read.objectStore(META).get(META)) as Promise<Meta | undefined>,
        request(read.objectStore(MAPPINGS).getAll()) as Promise<unknown[]>,
      ])
      if (meta !== undefined && meta.id !== id) throw new Error(`idb store: database "${name}" holds node "${meta.id}", not "${id}"`)
      let state: Snapshot | undefined
      if (meta !== undefined) {
        const updates: Update[] = []
        let version = 0
        for (const r of records) {
          const u = checked(r, name)
          updates.push(u)
          if (u.version > version) version = u.version
        }
        state = { version, reserved: meta.reserved, updates, held: meta.held === null ? undefined : Math.min(meta.held, version), ...deletesOf(meta.deletes) }
      }
      // Versions the node may use before its next transaction: reserved now.
      const next: Meta = {
        id,
        reserved: Math.max(meta?.reserved ?? 0, Clock.now(), state?.version ?? 0) + reserve,
        held: meta?.held ?? null,
        seq: meta?.seq ?? 0,
        deletes: meta?.deletes ?? null,
      }
      const tx = writeTx(db)
      tx.objectStore(META).put(next, META)
      await done(tx)
      return new IdbStore(db, name, id, next, state, reserve, release)
    } catch (err) {
      db?.close()
      release()
      throw err
    }
  }

  /** Start recording `gossip`'s applied updates. Its id must be the store's. */
  attach(gossip: Gossip): this {
    if (this.closed) throw new Error('idb store: closed')
    if (this.gossip !== null) throw new Error('idb store: already attached')
    if (gossip.id !== this.id) throw new Error(`idb store: database of "${this.id}" cannot hold "${gossip.id}"`)
    this.gossip = gossip
    gossip.history.on('update', this.onUpdate)
    gossip.history.on('forget', this.onForget)
    return this
  }

  /** True when every update applied so far is in the database. */
  get durable(): boolean {
    return this.queue.length === 0 && this.synced >= this.committed
  }

  /** Resolves once every update applied so far is in the database; rejects once a transaction failed. */
  flush(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.closed) return Promise.resolve()
    this.commit()
    if (this.failure !== null) return Promise.reject(this.failure)
    const target = this.committed
    if (this.synced >= target) return Promise.resolve()
    return new Promise((resolve, reject) => this.waiters.push({ target, resolve, reject }))
  }

  /**
   * A pass-through for what the node sends a peer that holds each of the
   * node's own writes back until it is in the database; everything else
   * passes at once. `stream.pipe(store.barrier()).pipe(toPeer)`.
   */
  barrier(): Transform {
    return barrier(this)
  }

  /** @internal The highest own version already durable (see barrier). */
  get durableTo(): number {
    return this.ownSynced
  }

  /** Flush, detach and close the database. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    await this.flush().catch(() => undefined)
    this.closed = true
    this.gossip?.history.off('update', this.onUpdate)
    this.gossip?.history.off('forget', this.onForget)
    this.db.close()
    this.release()
  }

  private record(u: Update, forget: boolean): void {
    if (this.closed) return
    this.queue.push({ u, forget })
    if (!forget && u.source_id === this.id) this.ownUnsynced.push(this.seq + 1, u.version)
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.commit()
    })
  }

  // Write everything queued in one transaction.
  private commit(): void {
    const queue = this.queue
    const kept = this.gossip === null ? null : this.gossip.persisted()
    const held = kept === null ? this.held : kept.held
    const deletes = kept === null ? this.deletes : kept.record
    if ((queue.length === 0 && held === this.held && deletes === this.deletes) || this.closed || this.failure !== null) return
    this.queue = []
    const seq = ++this.seq
    this.committed = seq
    this.held = held
    this.deletes = deletes
    let own = -Infinity
    for (const { u, forget } of queue) if (!forget && u.source_id === this.id && u.version > own) own = u.version
    if (own > this.reserved) this.reserved = own + this.reserveAhead
    let tx: IDBTransaction
    try {
      tx = writeTx(this.db)
      const mappings = tx.objectStore(MAPPINGS)
      // The last word on each key and source: a forgotten mapping was its
      // source's current one, so nothing newer of them is in the database.
      const last = new Map<string, { u: Update; forget: boolean }>()
      for (const op of queue) last.set(`${op.u.key}\u0000${op.u.source_id}`, op)
      for (const { u, forget } of last.values()) {
        if (forget) mappings.delete([u.key, u.source_id])
        else mappings.put({ ...u })
      }
      tx.objectStore(META).put({ id: this.id, reserved: this.reserved, held, seq, deletes } satisfies Meta, META)
    } catch (err) {
      this.fail(err as Error)
      return
    }
    done(tx).then(
      () => {
        if (seq > this.synced) this.synced = seq
        const list = this.ownUnsynced
        let i = 0
        while (i < list.length && list[i] <= seq) {
          this.ownSynced = list[i + 1]
          i += 2
        }
        if (i > 0) list.splice(0, i)
        const still: typeof this.waiters = []
        for (const w of this.waiters) {
          if (w.target <= this.synced) w.resolve()
          else still.push(w)
        }
        this.waiters = still
      },
      (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))),
    )
  }

  private fail(err: Error): void {
    this.failure = err
    for (const w of this.waiters) w.reject(err)
    this.waiters = []
  }
}

// A record read back, as an update (markers included), or an error naming the database.
function checked(r: unknown, name: string): Update {
  try {
    return checkedUpdate(r, 'the record')
  } catch (err) {
    const at = typeof r === 'object' && r !== null ? JSON.stringify([(r as Update).key, (r as Update).source_id]) : String(r)
    throw new Error(`idb store: database "${name}" holds a record that is not an update: ${at} (${(err as Error).message})`)
  }
}

// The snapshot fields of a delete record (see Snapshot.collected), if it reads.
function deletesOf(text: string | null | undefined): RecordFields {
  if (typeof text !== 'string') return {}
  try {
    return recordFields(text)
  } catch {
    return {}
  }
}

// Hold the Web Lock named after the database while the store is open.
async function lock(name: string, locks: LockManager | null | undefined): Promise<() => void> {
  if (locks === null || locks === undefined) return () => undefined
  let release: () => void = () => undefined
  const held = new Promise<void>((resolve) => (release = resolve))
  const got = await new Promise<boolean>((resolve, reject) => {
    locks
      .request(`simple-scuttle:${name}`, { ifAvailable: true }, (l) => {
        resolve(l !== null)
        return l === null ? undefined : held
      })
      .catch(reject)
  })
  if (!got) throw new Error(`idb store: database "${name}" is in use by another store (another tab, or this page)`)
  return release
}

/**
 * A node whose state lives in IndexedDB database `name`: restored from it
 * if it holds any, and recorded to it from now on. Await `store.flush()`
 * before telling the user a write is saved; `store.close()` when done.
 * `T` types the node's values, as in `Gossip<T>` (unknown by default; not
 * checked at run time).
 */
export async function openIdbGossip<T = unknown>(id: string, config: Config, name: string, options: IdbStoreOptions = {}): Promise<{ gossip: Gossip<T>; store: IdbStore }> {
  const store = await IdbStore.open(name, id, options)
  try {
    const gossip = store.state === undefined ? new Gossip<T>(id, config) : Gossip.restore<T>(id, config, store.state)
    store.attach(gossip)
    return { gossip, store }
  } catch (err) {
    await store.close()
    throw err
  }
}
