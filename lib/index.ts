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
export { serialize, parse, jsonProblem, MAX_LINE_LENGTH } from './wire'
export type { ParseOptions } from './wire'
export { Store, openGossip } from './store'
export type { StoreOptions } from './store'
export { ed25519, generateKeyPair, signedBytes } from './security'
export type { Ed25519Options, KeyInput } from './security'
export { startNode, ScuttleNode } from './node'
export type { Address, NodeOptions, PeerInfo } from './node'
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
  Security,
  Snapshot,
  Update,
} from './types'
