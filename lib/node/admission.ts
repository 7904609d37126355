/**
 * Who gets a connection slot of a TCP node, and how refusals are counted
 * and said: past `maxConnections` an incoming connection takes the slot of
 * one that does not answer the node's questions, so that a crowd of peers
 * that say hello (and perhaps answer once) and then nothing cannot keep
 * the cluster out; the node's own dials always get in (`--connect` bounds
 * them). Each refusal is counted by code, and said once, then every
 * 100th, so that a peer refused again and again cannot flood the log.
 *
 * @packageDocumentation
 */
import type { RefusalCode } from '../wire/session'
import type { Connection } from './connection'
import type { LogLevel } from './types'

// Ms a new connection has to answer before a newcomer may take its slot.
const GRACE = 1000

/** Connection slots and refusals of one node (see the module's comment). */
export class Admission {
  // Refusals seen per key (a reason, with the address we dial: a dialer
  // retries with backoff; the reason is logged once until it changes).
  private readonly seen = new Map<string, number>()

  constructor(
    readonly maxConnections: number,
    // The node's counters of refusals, by code.
    private readonly refused: Record<string, number>,
    private readonly log: (line: string, level?: LogLevel) => void,
  ) {}

  /** Count a refusal under `code`. */
  count(code: RefusalCode): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1
  }

  /** How many times `key` was said before, counting this one: say it when that is a multiple of 100. */
  said(key: string): number {
    const seen = this.seen.get(key) ?? 0
    if (this.seen.size >= 1000) this.seen.clear()
    this.seen.set(key, seen + 1)
    return seen
  }

  /** A refusal outside sessions (full, origin): counted, said once per 100. */
  refuse(code: RefusalCode, line: string): void {
    this.count(code)
    const seen = this.said(code)
    if (seen % 100 === 0) this.log(`${seen === 0 ? line : `${line} (${seen + 1} times)`} [${code}]`, 'warn')
  }

  /**
   * Whether a new incoming connection fits among `connections` (and
   * `upgrading` WebSocket upgrades): true; or the connection whose slot
   * it takes; or null when there is none to take (refused as full).
   */
  room(connections: Iterable<Connection>, upgrading: number): true | Connection | null {
    let inbound = upgrading
    for (const c of connections) if (c.direction === 'in') inbound++
    if (inbound < this.maxConnections) return true
    return idlest(connections)
  }
}

/**
 * The incoming connection to let go for a new one, among those that had
 * a second to answer (a new one must have the time to, before a crowd of
 * reconnecting squatters can push it out): the oldest that never
 * answered a question of ours (or never said hello); else the oldest
 * whose answers name no source though this node holds some (it takes
 * nothing it is sent: an empty reply to every question squats a slot
 * while seeming to answer); else the one that let the most, two at least
 * (one may be in flight), go unanswered since its last answer. A peer
 * that answers and holds what it is sent is kept.
 */
export function idlest(connections: Iterable<Connection>): Connection | null {
  let never: Connection | null = null
  let empty: Connection | null = null
  let lapsed: Connection | null = null
  const now = Date.now()
  for (const c of connections) {
    if (c.direction !== 'in' || now - c.opened < GRACE) continue
    if (!c.answered) {
      if (never === null || c.opened < never.opened) never = c
    } else if (c.claimsNothing) {
      if (empty === null || c.opened < empty.opened) empty = c
    } else if (c.unanswered >= 2 && (lapsed === null || c.unanswered > lapsed.unanswered)) lapsed = c
  }
  return never ?? empty ?? lapsed
}
