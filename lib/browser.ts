/**
 * The browser-safe part of simple-scuttle: everything but the Node-only
 * pieces (`Store`, the TCP node, Ed25519 signing), with `IdbStore`, the
 * durable store of a web page (IndexedDB). Bundlers that honour the
 * `browser` export condition pick this entry by themselves.
 *
 * @packageDocumentation
 */
import * as base from './base'

export { Gossip, PeerStream } from './gossip'
export { History, SourceLog } from './history'
export { Clock } from './clock'
export { MAX_VERSION, RECORD_KEY } from './shape'
export { INVALID_CODES } from './codes'
export type { InvalidCode } from './codes'
export * as resolution from './resolution'
export * as counter from './counter'
export { Membership, PhiAccrual, MEMBER_PREFIX, HEARTBEAT_PREFIX, isMembershipKey } from './membership'
export type { Member, MemberStatus, MembershipOptions } from './membership'
export { jsonProblem, MAX_DEPTH, MAX_VALUE_LENGTH, MAX_KEY_LENGTH, MAX_ID_LENGTH } from './value'
export { serialize, parse, FORMATS } from './wire/codec'
export { MAX_LINE_LENGTH } from './wire/ndjson'
export { MAX_FRAME_LENGTH } from './wire/binary'
export { websocketStream, gossipOver } from './wire/websocket'
export type { WebSocketLike, WebSocketStreamOptions, GossipOverOptions } from './wire/websocket'
export { joinNode } from './wire/join'
export type { JoinOptions, Joined } from './wire/join'
export { Session, SessionError, REFUSAL_CODES, proofBytes } from './wire/session'
export type { SessionOptions, HelloAuth, PeerHello, RefusalCode, InputCode } from './wire/session'
export { MAX_FRAME_ITEMS } from './wire/binary'
export { IdbStore, openIdbGossip } from './browser/idb-store'
export type { IdbStoreOptions } from './browser/idb-store'
export type { Format, ParseOptions, SerializeOptions, Serializer } from './wire/codec'
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
  StateStore,
  StreamOptions,
  Update,
} from './types'
