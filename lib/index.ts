/**
 * simple-scuttle: Scuttlebutt anti-entropy replication (van Renesse et al.,
 * "Efficient Reconciliation and Flow Control for Anti-Entropy Protocols",
 * 2008) as object-mode streams.
 *
 * This main entry is what runs anywhere (Node, browsers, workers): the
 * stream, its history, conflict policies, membership, the wire encodings
 * and WebSockets. It needs no optional package. The rest comes from
 * subpath entries: `simple-scuttle/sqlite` (the durable `Store`, with
 * better-sqlite3), `simple-scuttle/node` (the TCP node and Ed25519
 * signing), `simple-scuttle/idb` (`IdbStore`, IndexedDB in a web page).
 *
 * @packageDocumentation
 * @module simple-scuttle
 */
import * as base from './base'

export { Gossip, PeerStream } from './gossip'
export { History, SourceLog } from './history'
export type { HistoryOptions } from './history'
export type { FlowControl } from './flow'
export { Clock } from './clock'
export { MAX_VERSION, RECORD_KEY } from './shape'
export { INVALID_CODES } from './codes'
export type { InputError, InvalidCode } from './codes'
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
export type { Format, ParseOptions, SerializeOptions, Serializer } from './wire/codec'
export { base }
/** The original exported the defaults under this name. */
export const Base = base
export type {
  Comparator,
  Config,
  DigestDone,
  DigestEntry,
  Filter,
  FlowControlOptions,
  LocalWrite,
  Message,
  Missing,
  Order,
  Persisted,
  Resolve,
  ResolutionContext,
  Security,
  Snapshot,
  StaleNotice,
  LateReport,
  StateStore,
  StreamOptions,
  Update,
  WatchListener,
} from './types'
export type { PersistentStore } from './persistence'
