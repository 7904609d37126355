/**
 * A node's configuration, checked once: what `new Gossip(id, config)` and
 * `createStream(options)` accept, and the defaults they take.
 */
import { defaults } from './base'
import { flowOptions } from './flow'
import { checkMtuBytes } from './reconcile'
import { badName } from './shape'
import type { Comparator, Config, Filter, FlowControlOptions, Order, Resolve, Security, StreamOptions } from './types'

/** A configuration as the node uses it: every setting checked, defaults taken. */
export interface Settings {
  readonly mtu: number
  readonly maxHistory: number
  /** `config.mtu_bytes`; Infinity when not set. */
  readonly mtuBytes: number
  readonly resolve: Resolve
  readonly sort: Comparator
  readonly order: Order
  readonly random: () => number
  readonly security: Security | undefined
  /** Whether streams take `{key, value}` as local writes unless told otherwise. */
  readonly localWrites: boolean
  readonly filter: Filter | undefined
  /** `config.tombstone_grace`, ms. */
  readonly grace: number
  /** `config.flow_control`, or null when off. */
  readonly flow: Required<FlowControlOptions> | null
  /** `config.digest_part` (for tests); undefined: DIGEST_PART (see digest.ts). */
  readonly digestPart: number | undefined
}

/**
 * The settings of node `id` under `config`.
 * @throws TypeError naming the setting that is wrong.
 */
export function settingsOf(id: string, config: Config): Settings {
  const bad = badName('id', id)
  if (bad !== null) throw new TypeError(bad)
  if (config === null || typeof config !== 'object') throw new TypeError('config must be an object')
  if (typeof config.resolve !== 'function') {
    throw new TypeError(
      'config.resolve is required: there is no safe default. Choose one of ' +
        'base.resolution (lww_vs_current_vers, lww_vs_clock, strictly_order_values) ' +
        'or write your own; see docs/guide.md, "Choosing resolve".',
    )
  }
  // Falsy mtu and max_history take the defaults, as in the original.
  const mtu = config.mtu || defaults.mtu
  if (!Number.isSafeInteger(mtu) || mtu < 1) throw new TypeError('config.mtu must be a positive integer')
  const maxHistory = config.max_history || defaults.max_history
  if (!(maxHistory === Infinity || (Number.isSafeInteger(maxHistory) && maxHistory >= 1))) {
    throw new TypeError('config.max_history must be a positive integer or Infinity')
  }
  if (config.sort !== undefined && typeof config.sort !== 'function') {
    throw new TypeError('config.sort must be a comparator function')
  }
  if (config.order !== undefined && config.order !== 'depth' && config.order !== 'breadth') {
    throw new TypeError("config.order must be 'depth' or 'breadth'")
  }
  if (config.random !== undefined && typeof config.random !== 'function') {
    throw new TypeError('config.random must be a function')
  }
  if (config.local_writes !== undefined && typeof config.local_writes !== 'boolean') {
    throw new TypeError('config.local_writes must be a boolean')
  }
  const security = config.security
  if (
    security !== undefined &&
    (security === null || typeof security !== 'object' || typeof security.sign !== 'function' || typeof security.verify !== 'function')
  ) {
    throw new TypeError('config.security must be an object with sign(update) and verify(update) functions')
  }
  return {
    mtu,
    maxHistory,
    mtuBytes: checkMtuBytes(config.mtu_bytes),
    resolve: config.resolve,
    sort: config.sort ?? defaults.sort,
    order: config.order ?? defaults.order,
    random: config.random ?? Math.random,
    security,
    localWrites: config.local_writes ?? security === undefined,
    filter: config.filter,
    grace: checkGrace(config.tombstone_grace),
    flow: flowOptions(config.flow_control),
    digestPart: checkDigestPart(config.digest_part),
  }
}

/** @throws TypeError for options `createStream` does not take. */
export function checkStreamOptions(options: StreamOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('stream options must be an object')
  if (options.local_writes !== undefined && typeof options.local_writes !== 'boolean') {
    throw new TypeError('local_writes must be a boolean')
  }
}

// config.digest_part, checked: at least 2, so a part names a source besides our own.
function checkDigestPart(part: unknown): number | undefined {
  if (part !== undefined && (typeof part !== 'number' || !Number.isSafeInteger(part) || part < 2)) throw new TypeError('config.digest_part must be an integer, 2 or more')
  return part
}

// config.tombstone_grace, checked: ms, default one hour.
function checkGrace(grace: unknown): number {
  if (grace === undefined) return 3_600_000
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) throw new TypeError('config.tombstone_grace must be a number of milliseconds, 0 or more')
  return grace
}
