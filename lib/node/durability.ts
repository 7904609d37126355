/**
 * A TCP node's writes and its data directory: a local write is
 * acknowledged once durable, nothing of the node's leaves for a peer
 * before it is (a crash never takes back what a peer already has), and
 * once the directory cannot be written, or vanished, or was replaced,
 * local writes are refused (`store_failed`) while reads and gossip go on.
 *
 * @packageDocumentation
 */
import * as fs from 'fs'
import type { Transform } from 'readable-stream'
import { barrier } from '../barrier'
import type { Store } from './store'
import type { LogLevel } from './types'

/** A local write refused because the data directory cannot be written. */
export class StoreFailedError extends Error {
  /** `store_failed`, for logs and answers. */
  readonly code = 'store_failed'
  constructor(
    readonly dir: string,
    override readonly cause: Error,
  ) {
    super(`write refused: data directory ${dir} cannot be written (${cause.message}); reads and gossip go on. Fix the directory and restart the node`)
    this.name = 'StoreFailedError'
  }
}

/** A node's data directory, as its writes see it (see the module's comment). */
export class Durability {
  /** Why local writes are refused now, or null. */
  failure: Error | null = null
  private ino: number | undefined = undefined

  constructor(
    readonly store: Store,
    private readonly log: (line: string, level?: LogLevel) => void,
    // Told once, when the directory fails.
    private readonly failed: (err: Error) => void,
  ) {}

  /**
   * A directory removed or replaced while the node runs takes writes
   * nowhere (SQLite writes on into the unlinked files): said, and writes
   * refused, as for one that cannot be written.
   */
  check(): void {
    if (this.failure !== null) return
    const st = fs.statSync(this.store.dir, { throwIfNoEntry: false })
    this.ino ??= st?.ino
    if (st === undefined || st.ino !== this.ino) this.fail(new Error(st === undefined ? 'it vanished' : 'it was replaced'))
  }

  /** The directory cannot be written: local writes are refused from now on. */
  fail(err: Error): void {
    if (this.failure !== null) return
    this.failure = err
    this.log(
      `data directory ${this.store.dir} cannot be written (${err.message}): local writes are refused from now on; ` +
        'the node keeps serving reads and gossip. Fix the directory (permissions, space, mount) and restart the node',
      'warn',
    )
    this.failed(err)
  }

  /** @throws StoreFailedError once the directory failed. */
  writable(): void {
    if (this.failure !== null) throw new StoreFailedError(this.store.dir, this.failure)
  }

  /** Resolves once what was written is durable. @throws StoreFailedError when it cannot be. */
  async flushed(): Promise<void> {
    try {
      await this.store.flush()
    } catch (err) {
      this.fail(err as Error)
      throw new StoreFailedError(this.store.dir, err as Error)
    }
  }

  /**
   * Between a peer's gossip stream and its serializer: nothing of ours
   * leaves before it is durable. Once the directory failed, nothing more
   * will be, and no write of ours is acknowledged any more: what is held
   * then flows, so that gossip (heartbeats included) goes on for the
   * node's reads and its peers.
   */
  barrier(): Transform {
    const store = this.store
    const self = this
    return barrier({
      id: store.id,
      get durableTo() {
        return self.failure === null ? store.durableTo : Infinity
      },
      flush: () =>
        store.flush().catch((err: unknown) => {
          if (self.failure === null) throw err
        }),
    })
  }
}
