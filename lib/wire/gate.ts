/**
 * The limits one peer's messages meet before its exchange acts on them,
 * the same for every transport (the TCP node, its WebSocket server,
 * `joinNode`): a run of updates must end with a digest (`floodLimit`), and
 * the peer's digests are answered at most `digestRate` per second (a token
 * bucket): past it a whole digest, its entries and its end, is dropped
 * unanswered, and a thousand in a row past it is a flood. So no peer can
 * make an end send more than its share, nor hold unbounded work.
 *
 * The gate reads each message as the exchange classified it (see
 * `Exchange.admit`): nothing is parsed twice. What an owner wants to know
 * of the peer's digests and updates (the node's counters, its member rate)
 * it learns through a {@link GateObserver}.
 *
 * @packageDocumentation
 */
import { Kind, type DoneReading, type Reading } from '../shape'

/** A session's limits on its peer. */
export interface Limits {
  /** Updates accepted in a row before a digest must end them. */
  floodLimit: number
  /** Digests (questions or replies) answered per second, on average. */
  digestRate: number
}

/** The limits for a node of this `mtu` gossiping every `interval` ms, unless `given`: max(1000, 10 × mtu) updates, max(4, 4 per interval) digests a second. */
export function limitsFor(mtu: number, interval: number, given: Partial<Limits> = {}): Limits {
  return {
    floodLimit: given.floodLimit ?? Math.max(1000, 10 * mtu),
    digestRate: given.digestRate ?? Math.max(4, 4000 / interval),
  }
}

/** Digests a peer may send at once before its rate applies. */
export const BURST = 8
/** Digests dropped in a row past the rate, beyond which a peer floods: an honest one sends one question per interval. */
export const DIGEST_FLOOD = 1000

/** What an owner hears of a peer's messages, once the gate let them through (all optional). */
export interface GateObserver {
  /** A digest entry naming `source_id` at `version`, of a digest taken. */
  entry?(source_id: string, version: number): void
  /** A digest's end; `taken` false when the digest was dropped past the rate (it goes no further). */
  done?(r: DoneReading, taken: boolean): void
  /** Anything but a digest (an update, a local write, or what is none), counted in the run; false holds it back. */
  update?(r: Reading): boolean
  /** A digest was dropped past the rate: how many on this connection so far. */
  dropped?(count: number): void
}

/** One peer's gate (see the module's comment). */
export class Gate {
  /** Updates since the peer's last digest taken. */
  private run = 0
  // The digest budget (a token bucket), whether the digest coming in is
  // being dropped, and the digests dropped, in all and since one was taken.
  private tokens = BURST
  private refilled: number
  private inDigest = false
  private dropping = false
  private dropped = 0
  private droppedRun = 0
  private stopped = false

  constructor(
    readonly limits: Limits,
    private readonly observer: GateObserver,
    // The peer passed a limit: the owner closes it.
    private readonly exceeded: (reason: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.refilled = now()
  }

  /** Nothing more passes (the connection is closing). */
  stop(): void {
    this.stopped = true
  }

  /** Whether the exchange may act on `r`, the peer's next message. */
  readonly admit = (r: Reading): boolean => {
    if (this.stopped) return false
    const o = this.observer
    if (r.kind === Kind.Digest || r.kind === Kind.Done) {
      // A digest's first object takes a token, or the whole digest is dropped.
      if (!this.inDigest) {
        this.inDigest = true
        this.dropping = !this.take()
        if (this.stopped) return false
      }
      if (r.kind === Kind.Done) {
        this.inDigest = false
        // Only a digest taken ends a run of updates: dropped ones would let a flood through.
        if (!this.dropping) this.run = 0
        o.done?.(r, !this.dropping)
      } else if (!this.dropping) o.entry?.(r.source_id, r.version)
      return !this.dropping && !this.stopped
    }
    if (++this.run > this.limits.floodLimit) {
      this.stop()
      this.exceeded(`flooding: more than ${this.limits.floodLimit} updates without a digest`)
      return false
    }
    return o.update === undefined || o.update(r)
  }

  // One digest's worth of budget, if there is one.
  private take(): boolean {
    const now = this.now()
    const rate = this.limits.digestRate
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilled) / 1000) * rate)
    this.refilled = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      this.droppedRun = 0
      return true
    }
    this.observer.dropped?.(++this.dropped)
    if (++this.droppedRun > DIGEST_FLOOD) {
      this.stop()
      this.exceeded(`flooding: more than ${DIGEST_FLOOD} digests past ${rate}/s in a row`)
    }
    return false
  }
}
