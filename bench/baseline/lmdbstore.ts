/**
 * A minimal durable store on LMDB (lmdb-js), for bench/store.ts only: the
 * same records as lib/node/store.ts (every source's mappings, the
 * reservation), the same batching (every update of an event-loop turn in
 * one transaction, committed and fsynced off the main thread by lmdb-js),
 * without its damage checks. lmdb is not a dependency: `npm install
 * --no-save lmdb` to measure it.
 */
import { Gossip } from '../../lib'
import type { Config, Snapshot, Update } from '../../lib'

interface LmdbDatabase {
  put(key: string, value: unknown): Promise<boolean>
  putSync(key: string, value: unknown): boolean
  get(key: string): unknown
  getRange(options?: { start?: string; end?: string }): Iterable<{ key: string; value: unknown }>
  flushed: Promise<void>
  close(): Promise<void>
}

export class LmdbStore {
  private last: Promise<unknown> = Promise.resolve()
  private reserved: number
  private gossip: Gossip | null = null
  private readonly onUpdate = (u: Update): void => {
    this.last = this.db.put(`m\u0000${u.source_id}\u0000${u.key}`, { version: u.version, value: u.value, signature: u.signature })
    if (u.source_id === this.id && u.version > this.reserved) {
      this.reserved = u.version + 1_000_000
      this.db.putSync('reserved', this.reserved)
    }
  }

  constructor(
    private readonly db: LmdbDatabase,
    private readonly id: string,
  ) {
    this.reserved = (db.get('reserved') as number | undefined) ?? 0
  }

  /** Every mapping and the reservation, for Gossip.restore (undefined when empty). */
  load(): Snapshot | undefined {
    const updates: Update[] = []
    let version = 0
    for (const { key, value } of this.db.getRange({ start: 'm\u0000', end: 'm\u0001' })) {
      const [, source_id, k] = key.split('\u0000')
      const v = value as { version: number; value: unknown; signature?: string }
      updates.push({ key: k, value: v.value, source_id, version: v.version })
      if (v.version > version) version = v.version
    }
    if (updates.length === 0 && this.reserved === 0) return undefined
    updates.sort((x, y) => x.version - y.version) // see load() in lib/node/store.ts

    return { version, reserved: this.reserved, updates }
  }

  attach(gossip: Gossip): void {
    this.gossip = gossip
    gossip.history.on('update', this.onUpdate)
  }

  async flush(): Promise<void> {
    await this.last
  }

  async close(): Promise<void> {
    this.gossip?.history.off('update', this.onUpdate)
    await this.db.flushed
    await this.db.close()
  }
}

export function openLmdbGossip(id: string, config: Config, dir: string): { gossip: Gossip; store: LmdbStore } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lmdb = require('lmdb') as { open(options: { path: string; compression?: boolean }): LmdbDatabase }
  const store = new LmdbStore(lmdb.open({ path: dir }), id)
  const state = store.load()
  const gossip = state === undefined ? new Gossip(id, config) : Gossip.restore(id, config, state)
  store.attach(gossip)
  return { gossip, store }
}
