/**
 * Defaults and sample policies, as the original exported them.
 */
import * as resolution from './resolution'
import { sort } from './resolution'
import type { Comparator, Config, Order, Resolve } from './types'

/** The configuration a {@link Gossip} falls back to, field by field. */
export interface BaseConfig extends Config {
  mtu: number
  max_history: number
  sort: Comparator
  resolve: Resolve | null
  order: Order
}

/** @internal The defaults the library itself reads; `config` may be changed by users. */
export const defaults: Readonly<BaseConfig> = Object.freeze({
  mtu: 100,
  max_history: 1000,
  sort,
  resolve: null,
  order: 'depth' as Order,
})

/**
 * The default configuration, as a plain object the original's users change
 * in place (`config.resolve = …; new Gossip(id, config)`): a `Gossip` copies
 * what it needs when it is built, so later changes reach only the nodes
 * built after them. `resolve` is null: there is no safe default, so
 * `new Gossip` refuses to run until one is set.
 */
export const config: BaseConfig = { ...defaults }

export { sort, resolution }
