/**
 * Defaults and sample policies, as the original exported them.
 */
import * as resolution from './resolution'
import { sort } from './resolution'
import type { Comparator, Order, Resolve } from './types'

/** The configuration a {@link Gossip} falls back to, field by field. */
export interface BaseConfig {
  readonly mtu: number
  readonly max_history: number
  readonly sort: Comparator
  readonly resolve: Resolve | null
  readonly order: Order
}

/**
 * Default configuration. `resolve` is deliberately null: there is no safe
 * default, so `new Gossip` refuses to run without one.
 */
export const config: BaseConfig = Object.freeze({
  mtu: 100,
  max_history: 1000,
  sort,
  resolve: null,
  order: 'depth' as Order,
})

export { sort, resolution }
