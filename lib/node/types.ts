/**
 * Types the TCP node shares with its metrics and admin servers (kept apart
 * so that none of those modules imports another's).
 *
 * @packageDocumentation
 */

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
  /** Invalid inputs from peers, by code (a fixed set: see `InputCode`). */
  invalid: Record<string, number>
  /** Sessions refused, by either end, by code (see `RefusalCode`). */
  refused: Record<string, number>
  /** Connections closed with a reason (not those a peer closed cleanly). */
  closed: number
  /** Twins seen: another live node with this node's id, or two peers with one id. */
  twins: number
  /** Local writes refused because the data directory cannot be written. */
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
   * Its last exchange found nothing missing on either side, membership's
   * writes aside (heartbeats are always newer in a live cluster; see
   * `ScuttleNode.synced`).
   */
  synced: boolean
  /** Updates still wanted after its last exchange: by the peer (`them`) and by this node (`us`). */
  behind: { them: number; us: number }
}
