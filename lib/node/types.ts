/**
 * Types the TCP node shares with its metrics and admin servers (kept apart
 * so that none of those modules imports another's).
 *
 * @packageDocumentation
 */

import type { InvalidCode } from '../codes'
import type { RefusalCode } from '../wire/session'

/** `host:port` as an object. */
export interface Address {
  host: string
  port: number
}

/** Counters a node keeps from its start (`ScuttleNode.stats()`). */
export interface NodeStats {
  /** Exchanges this node started (questions asked). */
  asked: number
  /** Questions of peers this node answered. */
  answered: number
  /** Updates sent to and received from peers. */
  updatesSent: number
  updatesReceived: number
  /** Bytes sent to and received from peers (hello lines included). */
  bytesSent: number
  bytesReceived: number
  /** Peers' digests dropped unanswered past `digestRate`. */
  digestsDropped: number
  /** Invalid inputs from peers, by code (see `InvalidCode`). */
  invalid: Record<string, number>
  /** Sessions refused, by either end, by code (see `RefusalCode`). */
  refused: Record<string, number>
  /** Sessions opened (a hello accepted), in and out. */
  connected: number
  /** Per-connection log lines not said (see LogBudget), by kind. */
  logUnsaid: Record<string, number>
  /** Connections closed with a reason (not those a peer closed cleanly). */
  closed: number
  /** The same, by code (see {@link CloseCode}). */
  closedBy: Record<string, number>
  /** Twins seen: another live node with this node's id, or two peers with one id. */
  twins: number
  /** Acknowledged writes of this node handed over, refused as a twin, to a peer that wrote them as its own (docs/operations.md, "Twins"). */
  handedOver: number
  /** Writes a peer refused as a twin handed over to this node, written as its own. */
  handedIn: number
  /** Local writes refused: the data directory cannot be written, or this node is a twin (see Twins.refusal). */
  writesRefused: number
}

/** A connected peer, as `peers()` lists it. */
export interface PeerInfo {
  /** The peer's id. */
  id: string
  /** Its address as seen from here. */
  address: string
  /** 'in' if it dialed us, 'out' if we dialed it. */
  direction: 'in' | 'out'
  /** How it is connected. */
  transport: 'tcp' | 'ws'
  /** It proved its id with its key (`--keys`). */
  authenticated: boolean
  /**
   * It counts for the node's sync (`ScuttleNode.unsynced`): it has answered
   * one of this node's questions, and leaves none unanswered for longer
   * than `stallTimeout`.
   */
  answering: boolean
  /**
   * It answers, and its last exchange found nothing missing on either
   * side, membership's writes aside (heartbeats are always newer in a
   * live cluster; see `ScuttleNode.unsynced`).
   */
  synced: boolean
  /** Updates still wanted after its last exchange: by the peer (`them`) and by this node (`us`). */
  behind: { them: number; us: number }
}

/** How much a log line matters: `'warn'` asks an operator to look. */
export type LogLevel = 'warn' | 'info'

/** Why a node closed a connection, besides a refused session ({@link RefusalCode}) or invalid input ({@link InvalidCode}). */
export const CLOSE_CODES = [
  /** It did not read what the node sent for `stallTimeout`. */
  'stalled',
  /** Its socket or WebSocket failed. */
  'transport',
  /** Its slot went to a new connection past `maxConnections`: it left the node's questions unanswered. */
  'evicted',
  /** Its id connected again, and this connection had gone quiet. */
  'new_incarnation',
  /** The data directory failed while something of the node's waited to be durable. */
  'store_failed',
] as const

/** Why a node closed a connection: the code of its log line and of `scuttle_connections_closed_total{code}`. */
export type CloseCode = RefusalCode | InvalidCode | (typeof CLOSE_CODES)[number]
