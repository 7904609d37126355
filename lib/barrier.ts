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
}

export function barrier(store: Durable): Transform {
  return new Transform({
    objectMode: true,
    transform(chunk: { source_id?: unknown; version?: unknown; digest?: unknown }, _encoding, callback) {
      const own = chunk.source_id === store.id && chunk.digest !== true
      if (!own || (chunk.version as number) <= store.durableTo) callback(null, chunk)
      else store.flush().then(() => callback(null, chunk), (err: Error) => callback(err))
    },
  })
}
