/**
 * The paper's experiments: a round-based simulator over real `Gossip`
 * streams, its staleness bookkeeping and an SVG plot of the results.
 *
 * @packageDocumentation
 */
export * from './engine'
export { Staleness } from './staleness'
export { prng, derive, shuffle } from './random'
export { plot } from './svg'
export type { Plot, Panel, Line } from './svg'
