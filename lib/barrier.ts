/**
 * What a durable store (the SQLite `Store`, the browser's `IdbStore`) puts
 * between a node's stream and the wire: each of the node's own writes waits
 * until it is durable (writes waiting together share one flush); everything
 * else passes at once. What other sources wrote, a crash cannot take from
 * them, and digests promise nothing a crash could break (versions are
 * reserved).
 */
import { Transform } from 'readable-stream'

/** A store seen by its barrier: whose writes wait, how far they are durable, and how to make the rest so. */
export interface Durable {
  readonly id: string
  /** The highest own version already durable. */
  readonly durableTo: number
  flush(): Promise<void>
  /**
   * False for a write of ours no longer to be sent once it may pass (the
   * store failed and the node took it back). Default: every one is sent.
   */
  sends?(chunk: { key?: unknown; version?: unknown }): boolean
}

export function barrier(store: Durable): Transform {
  return new Transform({
    objectMode: true,
    transform(chunk: { source_id?: unknown; version?: unknown; digest?: unknown }, _encoding, callback) {
      const own = chunk.source_id === store.id && chunk.digest !== true
      if (!own) return callback(null, chunk)
      // (Asked as it passes: the store may fail while it waits.)
      const pass = (): void => callback(null, store.sends === undefined || store.sends(chunk) ? chunk : undefined)
      if ((chunk.version as number) <= store.durableTo) pass()
      else store.flush().then(pass, (err: Error) => callback(err))
    },
  })
}
