/**
 * A TCP node's writes and its data directory: a local write is
 * acknowledged once durable, nothing of the node's leaves for a peer
 * before it is (a crash never takes back what a peer already has), and
 * once the directory cannot be written, or vanished, or was replaced,
 * local writes are refused (`store_failed`) while reads and gossip go on,
 * and those not durable by then are taken back (never acknowledged, never
 * sent).
 *
 * @packageDocumentation
 */
import * as fs from 'fs'
import type { Transform } from 'readable-stream'
import { barrier } from '../barrier'
import type { Gossip } from '../gossip'
import type { Update } from '../types'
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
  // The highest version of ours durable when the directory failed.
  private durableAtFailure = Infinity
  // Local writes (set, delete) not yet durable, each followed by the
  // mapping of ours it replaced: [write, previous, ...] (see takeBack).
  private pending: (Update | undefined)[] = []
  // A write is under way (a failure inside it is handled as it returns).
  private writing = false
  // Some write was taken back: the barrier asks which it sends.
  private tookBack = false

  constructor(
    readonly store: Store,
    private readonly gossip: Gossip,
    private readonly log: (line: string, level?: LogLevel) => void,
    // Told once, when the directory fails.
    private readonly failed: (err: Error) => void,
  ) {}

  /**
   * A directory removed or replaced while the node runs takes writes
   * nowhere (SQLite writes on into the unlinked files), and one made
   * read-only takes them only until a file must be made there: said, and
   * writes refused, as for one that cannot be written.
   */
  check(): void {
    if (this.failure !== null) return
    const st = fs.statSync(this.store.dir, { throwIfNoEntry: false })
    this.ino ??= st?.ino
    if (st === undefined || st.ino !== this.ino) return this.fail(new Error(st === undefined ? 'it vanished' : 'it was replaced'))
    // Made read-only while the node runs: the files it has open still take
    // writes, but the files it makes as it goes (journals) cannot be made,
    // and it cannot start from it again: said, and writes refused, at once.
    try {
      fs.accessSync(this.store.dir, fs.constants.W_OK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      this.fail(new Error(code === 'EROFS' ? 'it is on a read-only file system now' : `this process may no longer write it (${code ?? 'access refused'}: its mode or owner changed)`))
    }
  }

  /** The directory cannot be written: local writes are refused from now on. */
  fail(err: Error): void {
    if (this.failure !== null) return
    this.failure = err
    this.durableAtFailure = this.store.durableTo
    // (Inside a write, the write takes them back as it returns.)
    if (!this.writing) this.takeBack()
    this.log(
      `data directory ${this.store.dir} cannot be written (${err.message}): local writes are refused from now on; ` +
        'the node keeps serving reads and gossip. Fix the directory (permissions, space, mount) and restart the node',
      'warn',
    )
    this.failed(err)
  }

  /** What a write is refused with now, or null. */
  get refusal(): StoreFailedError | null {
    return this.failure === null ? null : new StoreFailedError(this.store.dir, this.failure)
  }

  /** @throws StoreFailedError once the directory failed. */
  writable(): void {
    if (this.failure !== null) throw new StoreFailedError(this.store.dir, this.failure)
  }

  /**
   * Make a local write of `key` and remember what it replaced until it is
   * durable (see takeBack). Returns the write, if one was made.
   */
  write(key: string, make: () => void): Update | undefined {
    const history = this.gossip.history
    const id = this.gossip.id
    const previous = history.mapping(id, key)
    this.writing = true
    try {
      make()
    } finally {
      this.writing = false
    }
    const u = history.mapping(id, key)
    if (u === previous || u === undefined) return undefined
    this.pending.push(u, previous)
    if (this.failure !== null) this.takeBack()
    return u
  }

  /**
   * Every local write not durable (above `from`: by default, what was
   * durable when the directory failed) is taken back, newest first, so that
   * each key holds what it held before: never acknowledged, never sent (see
   * barrier). Also for a node refused as the newer twin (from -Infinity).
   */
  takeBack(from = this.durableAtFailure): void {
    const pending = this.pending
    this.pending = []
    for (let i = pending.length - 2; i >= 0; i -= 2) {
      const u = pending[i] as Update
      if (u.version <= from) continue
      this.tookBack = true
      this.gossip.revert(u, pending[i + 1])
    }
  }

  /** The versions of local writes not acknowledged yet: they may still be taken back (see takeBack). */
  unsettled(): Set<number> {
    const out = new Set<number>()
    for (let i = 0; i < this.pending.length; i += 2) out.add((this.pending[i] as Update).version)
    return out
  }

  /** Resolves once what was written is durable; a failure is told (see fail), not thrown: see settled. */
  async flushed(): Promise<void> {
    try {
      await this.store.flush()
    } catch (err) {
      this.fail(err as Error)
    }
  }

  /**
   * After flushed: write `u` (undefined: none was made) is durable, or
   * @throws StoreFailedError when the directory failed first (it was taken back).
   */
  settled(u: Update | undefined): void {
    if (this.failure !== null) {
      if (u === undefined || u.version > this.durableAtFailure) throw new StoreFailedError(this.store.dir, this.failure)
      return
    }
    // What is durable now need not be taken back.
    const pending = this.pending
    let n = 0
    while (n < pending.length && (pending[n] as Update).version <= this.store.durableTo) n += 2
    if (n > 0) pending.splice(0, n)
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
    const history = this.gossip.history
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
      // A write taken back (see takeBack) is not ours to send.
      sends: (chunk) => !self.tookBack || history.mapping(store.id, chunk.key as string)?.version === chunk.version,
    })
  }
}
