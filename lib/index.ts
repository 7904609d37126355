/**
 * simple-scuttle: Scuttlebutt anti-entropy replication (van Renesse et al.,
 * "Efficient Reconciliation and Flow Control for Anti-Entropy Protocols",
 * 2008) as object-mode streams.
 *
 * @packageDocumentation
 */
import * as base from './base'

export { Gossip, PeerStream } from './gossip'
export { History, SourceLog } from './history'
export { Clock } from './clock'
export * as resolution from './resolution'
export { base }
/** The original exported the defaults under this name. */
export const Base = base
export type {
  Comparator,
  Config,
  DigestDone,
  DigestEntry,
  LocalWrite,
  Message,
  Missing,
  Order,
  Resolve,
  ResolutionContext,
  Snapshot,
  Update,
} from './types'
