/**
 * The browser-safe part of simple-scuttle: everything but the Node-only
 * pieces (`Store`, the TCP node, Ed25519 signing). Bundlers that honour the
 * `browser` export condition pick this entry by themselves.
 *
 * @packageDocumentation
 */
import * as base from './base'

export { Gossip, PeerStream } from './gossip'
export { History, SourceLog } from './history'
export { Clock } from './clock'
export { MAX_VERSION } from './shape'
export * as resolution from './resolution'
export { serialize, parse, jsonProblem, MAX_LINE_LENGTH } from './wire'
export type { ParseOptions } from './wire'
export { base }
/** The original exported the defaults under this name. */
export const Base = base
export type {
  Comparator,
  Config,
  DigestDone,
  DigestEntry,
  FlowControlOptions,
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
