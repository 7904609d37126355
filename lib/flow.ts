/**
 * Flow control (paper section 4; PROTOCOL.md section 1 gives our reading):
 * a node admits its own local writes at no more than an allowed rate, keeps
 * the rest in a FIFO backlog (nothing is dropped), and adjusts the allowed
 * rate in the style of TCP's AIMD:
 *
 * - after each exchange that fit in the mtu the rate grows by `increase`
 *   (only while the node has wanted more than it was allowed: an idle node
 *   does not inflate its rate);
 * - after an exchange that overflowed (more deltas waited than the mtu
 *   carried, in either direction) it is multiplied by `decrease`;
 * - each node carries its allowed rate on the end-of-digest marker
 *   (`{digest: true, done: true, rate}`), and a node that hears a peer's rate
 *   first moves to the average of the two, so rates converge to an equal
 *   share. A peer that does not speak flow control sends no `rate` and
 *   ignores ours; both are tolerated.
 *
 * Gossip has no timers: time is read from `now()` (seconds by default; the
 * simulator passes its round number) whenever the node writes or gossips.
 */
import type { History } from './history'
import { ALL, lacking, type IdRange } from './reconcile'
import type { FlowControlOptions } from './types'

/** The defaults of `config.flow_control`, field by field. */
export const flowDefaults: Readonly<Required<Omit<FlowControlOptions, 'now'>>> = Object.freeze({
  initial: 1,
  increase: 0.1,
  decrease: 0.8,
  min: 0.01,
  max: Infinity,
  burst: 1,
})

const nowSeconds = (): number => Date.now() / 1000

function positive(name: string, v: unknown, allowInfinity = false): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v <= 0 || (!allowInfinity && v === Infinity)) {
    throw new TypeError(`config.flow_control.${name} must be a positive ${allowInfinity ? 'number' : 'finite number'}`)
  }
  return v
}

/**
 * Validates `config.flow_control` and fills in the defaults. Returns null when
 * flow control is off (`undefined` or `false`).
 * @throws TypeError naming the offending field.
 */
export function flowOptions(option: unknown): Required<FlowControlOptions> | null {
  if (option === undefined || option === false) return null
  if (option === true) return { ...flowDefaults, now: nowSeconds }
  if (option === null || typeof option !== 'object' || Array.isArray(option)) {
    throw new TypeError('config.flow_control must be true, false or an object of options')
  }
  const o = option as FlowControlOptions
  const initial = positive('initial', o.initial ?? flowDefaults.initial)
  const increase = positive('increase', o.increase ?? flowDefaults.increase)
  const decrease = positive('decrease', o.decrease ?? flowDefaults.decrease)
  if (decrease >= 1) throw new TypeError('config.flow_control.decrease must be in (0, 1)')
  const min = positive('min', o.min ?? flowDefaults.min)
  const max = positive('max', o.max ?? flowDefaults.max, true)
  if (min > max) throw new TypeError('config.flow_control.min must not exceed max')
  if (initial < min || initial > max) throw new TypeError('config.flow_control.initial must lie in [min, max]')
  const burst = positive('burst', o.burst ?? flowDefaults.burst)
  const now = o.now ?? nowSeconds
  if (typeof now !== 'function') throw new TypeError('config.flow_control.now must be a function')
  return { initial, increase, decrease, min, max, burst, now }
}

/**
 * True if more deltas waited for the peer whose digest is `digest` than the
 * `sent` we could fit in `mtu`. Exact; costs O(sources) + O(mtu), and only
 * when the answer was full.
 */
export function overflowed(
  history: History,
  digest: ReadonlyMap<string, number>,
  mtu: number,
  sent: number,
  range: IdRange = ALL,
): boolean {
  if (sent < mtu) return false
  // `waiting` is an upper bound (it counts replaced entries): a cheap no first.
  let bound = 0
  for (const [log, from] of lacking(history, digest, range)) {
    bound += history.waiting(log.id, from)
    if (bound > mtu) break
  }
  if (bound <= mtu) return false
  let n = 0
  for (const [log, from] of lacking(history, digest, range)) {
    n += history.news(log.id, from, mtu + 1 - n).length
    if (n > mtu) return true
  }
  return false
}

/**
 * One node's flow control: its allowed rate, its credit and its backlog.
 * Reach it as `gossip.flow` (null when flow control is off).
 */
export class FlowControl {
  /** Updates per time unit this node may admit now. */
  allowed: number
  /** Admissions the node may still make now (a token bucket). */
  credit: number
  /** Local writes admitted since construction. */
  admitted = 0
  /** Exchanges seen, and how many of them overflowed. */
  exchanges = 0
  overflows = 0
  /** Options in force, defaults filled in. */
  readonly options: Required<FlowControlOptions>

  private keys: string[] = []
  private values: unknown[] = []
  private head = 0
  private last: number
  // The node wanted more than it was allowed since the last adjustment.
  private limited = false

  /**
   * @param options - validated options (see {@link flowOptions}).
   * @param apply - makes one admitted write (the node's local write).
   * @param failed - called when `apply` throws for an admitted write.
   */
  constructor(
    options: Required<FlowControlOptions>,
    private readonly apply: (key: string, value: unknown) => void,
    private readonly failed: (key: string, value: unknown, err: unknown) => void,
  ) {
    this.options = options
    this.allowed = options.initial
    this.credit = this.cap()
    this.last = options.now()
  }

  /** Local writes waiting for admission, oldest first. */
  get backlog(): number {
    return this.keys.length - this.head
  }

  /**
   * Queue a local write and admit what the rate allows.
   * @returns true if the backlog is empty afterwards (the write was made).
   */
  write(key: string, value: unknown): boolean {
    this.keys.push(key)
    this.values.push(value)
    this.pump()
    return this.backlog === 0
  }

  /** Admit, oldest first, as many waiting writes as the credit allows. */
  pump(): void {
    this.accrue()
    if (this.head === this.keys.length) return
    while (this.head < this.keys.length && this.credit >= 1) {
      const key = this.keys[this.head]
      const value = this.values[this.head]
      this.keys[this.head] = ''
      this.values[this.head] = undefined
      this.head++
      this.credit -= 1
      this.admitted++
      try {
        this.apply(key, value)
      } catch (err) {
        this.failed(key, value, err)
      }
    }
    if (this.head < this.keys.length) this.limited = true
    if (this.head === this.keys.length) {
      this.keys = []
      this.values = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.keys.length) {
      this.keys.splice(0, this.head)
      this.values.splice(0, this.head)
      this.head = 0
    }
  }

  /**
   * One exchange ended for this node: move towards the peer's rate (when it
   * sent one), then AIMD.
   * @param overflow - more deltas waited than the mtu carried.
   * @param peerRate - the `rate` field of the peer's end-of-digest, if any.
   */
  exchanged(overflow: boolean, peerRate: unknown): void {
    const o = this.options
    this.accrue()
    let r = this.allowed
    if (typeof peerRate === 'number' && peerRate === peerRate) {
      r = (r + Math.min(o.max, Math.max(o.min, peerRate))) / 2
    }
    this.exchanges++
    if (overflow) {
      this.overflows++
      r *= o.decrease
    } else if (this.limited) {
      r += o.increase
    }
    this.allowed = Math.min(o.max, Math.max(o.min, r))
    this.limited = this.backlog > 0
    const cap = this.cap()
    if (this.credit > cap) this.credit = cap
  }

  private cap(): number {
    return Math.max(1, this.allowed * this.options.burst)
  }

  private accrue(): void {
    const t = this.options.now()
    if (t > this.last) {
      this.credit = Math.min(this.cap(), this.credit + this.allowed * (t - this.last))
      this.last = t
    }
  }
}
