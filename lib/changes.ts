/**
 * The `'change'` events: the view's entry of a key changed (a write, an
 * update taken, a delete, a collection). Delivered in order, never nested:
 * a change raised while listeners run (one that writes) waits until they
 * return.
 */
import { reportInvalid } from './codes'
import type { ResolutionContext, Update, WatchListener } from './types'

/** What the `'change'` events need of the node. */
export interface ChangesHost {
  /** What the listeners are called on (the node). */
  readonly context: ResolutionContext
  /** Report an event of the node (`'invalid'`: a listener threw). */
  emit(event: string | symbol, ...args: unknown[]): boolean
  /** The node's `'change'` listeners. */
  rawListeners(event: 'change'): Function[]
}

/** One node's `'change'` events (see the module's comment). */
export class Changes {
  /** How many 'change' listeners there are (put() asks per write). */
  watchers = 0
  /** Changes delivered in one turn at most; more (listeners that write in a chain) go on in the next. */
  static readonly CHAIN = 10_000
  // Changes waiting for the listeners, as [key, entry, how, ...], and
  // whether a delivery is under way (see changed).
  private changes: unknown[] = []
  private delivering = false

  constructor(
    private readonly id: string,
    private readonly host: ChangesHost,
  ) {}

  // A key absent before and after (a delete replaced, or collected) did not
  // change. A change raised while listeners run (one that writes) waits
  // until they return, then is delivered in order: listeners never nest.
  changed(key: string, before: Update | undefined, entry: Update | undefined): void {
    const gone = entry === undefined || entry.deleted === true
    if (gone && (before === undefined || before.deleted === true)) return
    const how = gone ? 'delete' : entry.source_id === this.id ? 'local' : 'remote'
    this.changes.push(key, gone ? undefined : entry, how)
    if (!this.delivering) this.deliver()
  }

  // Deliver the changes waiting, at most Changes.CHAIN in one turn: the
  // rest (a listener that writes forever) in later turns, so that the
  // event loop still serves; changes raised meanwhile queue behind them.
  private deliver(): void {
    this.delivering = true
    const q = this.changes
    let i = 0
    try {
      while (i < q.length && i < 3 * Changes.CHAIN) {
        i += 3
        this.tell(q[i - 3] as string, q[i - 2] as Update | undefined, q[i - 1] as 'local' | 'remote' | 'delete')
      }
    } finally {
      q.splice(0, i)
      if (q.length === 0) this.delivering = false
      else setTimeout(() => this.deliver(), 0)
    }
  }

  // A listener that throws is reported, not thrown: it must not stop an
  // exchange, a reset or a collection half-way, nor starve the others.
  private tell(key: string, now: Update | undefined, how: 'local' | 'remote' | 'delete'): void {
    for (const fn of this.host.rawListeners('change') as WatchListener[]) {
      try {
        fn.call(this.host.context, key, now, how)
      } catch (err) {
        reportInvalid(this.host, { key }, `a 'change' listener threw: ${(err as Error)?.message}`, 'node_error')
      }
    }
  }
}
