/**
 * Whether a TCP node is in sync with its cluster, and whether it is ready
 * (`/ready`, `status`): which peers count (those that answer the node's
 * questions), why the node is not in sync or not ready at an instant, and
 * the `'synced'` line, said once per set of peers it is in sync with; and
 * how stale each peer is (the metrics' slowest peer).
 *
 * @packageDocumentation
 */
import type { Gossip } from '../gossip'
import type { Membership } from '../membership'
import type { Update } from '../types'
import type { Connection } from './connection'
import type { LogLevel } from './types'

/** What readiness needs of its node. */
export interface ReadinessHost {
  /** The node's connections. */
  connections(): Iterable<Connection>
  readonly stallTimeout: number
  /** It was given peers to dial. */
  readonly dials: boolean
  readonly membership: Membership | null
  /** A peer answered one of the node's questions, or it dials no one. */
  readonly joined: boolean
  /** The node is stopping. */
  readonly closing: boolean
  /** Log a line of `kind` within the node's log budget. */
  say(kind: string, line: string, level?: LogLevel): void
  /** The node is in sync with a new set of peers. */
  synced(): void
}

/** A node's sync and readiness (see the module's comment). */
export class Readiness {
  // The peers the last "in sync" log line named.
  private syncedWith = ''

  constructor(private readonly host: ReadinessHost) {}

  /**
   * A peer counts for the node's sync once it has answered one of our
   * questions, and while it leaves none unanswered past stallTimeout: a
   * socket that says hello and never answers (or stops) counts for nothing.
   */
  answers(c: Connection, now: number): boolean {
    return c.peer !== null && !c.closed && c.answered && !(c.unanswered > 0 && now - c.askedAt >= this.host.stallTimeout)
  }

  /** See ScuttleNode.unsynced. */
  unsynced(): string | null {
    const now = Date.now()
    const unlinked = this.unlinked(now)
    if (unlinked !== null) return unlinked
    for (const c of this.host.connections()) if (this.answers(c, now) && !c.synced) return `not in sync with peer ${c.peer}`
    return null
  }

  /**
   * Why the node has no peer it should have, or null: it dials peers or
   * knows other members, and none of its peers answers. A peer answers
   * when it has answered a question of ours and has left none unanswered
   * for `stallTimeout`, so a peer that says hello and never answers (or
   * stops) counts neither way.
   */
  private unlinked(now: number): string | null {
    let connected = 0
    for (const c of this.host.connections()) {
      if (c.peer === null || c.closed) continue
      if (this.answers(c, now)) return null
      connected++
    }
    // (Members counted only then: a walk of them all.)
    if (!this.host.dials && !this.knowsOthers()) return null
    return connected === 0 ? 'no peer connected' : `no connected peer answers (${connected} connected)`
  }

  private knowsOthers(): boolean {
    const counts = this.host.membership?.counts()
    return counts !== undefined && counts.live + counts.dead > 1
  }

  /** See ScuttleNode.notReady. */
  notReady(): string | null {
    const host = this.host
    if (host.closing) return 'stopping'
    if (!host.joined) return 'not joined: no peer has answered yet'
    const now = Date.now()
    const unlinked = this.unlinked(now)
    if (unlinked !== null) return unlinked
    // Caught up: an answer of some peer found it lacking less than one
    // exchange carries; and with each peer that found it lacking more
    // (rejoined after a partition, say), once since they connected.
    let caughtUp = false
    let catching: string | null = null
    for (const c of host.connections()) {
      if (!this.answers(c, now)) continue
      const s = c.session.stream
      if (s.lackingSince >= 0) {
        if (!s.caughtUpOnce) return `catching up with peer ${c.peer}`
        if (now - s.lackingSince > host.stallTimeout) return `behind peer ${c.peer} for ${now - s.lackingSince} ms (over stallTimeout, ${host.stallTimeout} ms)`
      }
      if (s.caughtUpOnce) caughtUp = true
      else catching ??= c.peer
    }
    if (!caughtUp && catching !== null) return `catching up with peer ${catching}`
    // A member just learned of is not known dead yet: a node that joined
    // stayed ready while the records of its peers came in before their beats.
    const counts = host.membership?.counts() ?? { live: 1, dead: 0, unproven: 0 }
    if (counts.dead - counts.unproven > 0 && counts.live === 1) return `every other member (${counts.dead}) is dead`
    return null
  }

  /**
   * Said once per set of peers it is in sync with (a settled cluster says
   * it once), within the log budget: a peer that dials, answers and goes
   * makes a new set each time.
   */
  check(): void {
    if (this.unsynced() !== null) return
    const now = Date.now()
    const ids: string[] = []
    for (const c of this.host.connections()) if (this.answers(c, now) && c.peer !== null) ids.push(c.peer)
    if (ids.length === 0) return
    const set = ids.sort().join(', ')
    if (set === this.syncedWith) return
    this.syncedWith = set
    this.host.say('in_sync', `in sync with every peer that answers (${set})`)
    this.host.synced()
  }
}

// Own writes remembered for peers' staleness.
const OWN_TIMES = 4096

/**
 * How stale each peer is: how long ago, in ms, this node wrote the oldest
 * of its own updates that the peer's last digest did not hold.
 */
export class Staleness {
  // Our own writes, [version, ms] pairs in version order (the latest OWN_TIMES).
  private times: number[] = []

  constructor(gossip: Gossip) {
    const own = gossip.id
    gossip.history.on('update', (u: Update) => {
      if (u.source_id !== own) return
      const times = this.times
      // (A write taken back restores an older version: not a new write.)
      if (times.length > 0 && u.version <= times[times.length - 2]) return
      if (times.length >= 2 * OWN_TIMES) this.times = times.slice(OWN_TIMES)
      this.times.push(u.version, Date.now())
    })
  }

  /** For each of `peers` that has sent a digest: its staleness (0: it held them all). */
  of(peers: Iterable<Connection>): { id: string; ms: number }[] {
    const now = Date.now()
    const times = this.times
    const out: { id: string; ms: number }[] = []
    for (const c of peers) {
      if (c.peer === null || !c.digested) continue
      let ms = 0
      if (times.length > 0 && times[times.length - 2] > c.ownHeld) {
        // The first of our writes above what the peer holds.
        let lo = 0
        let hi = times.length / 2 - 1
        while (lo < hi) {
          const mid = (lo + hi) >> 1
          if (times[2 * mid] > c.ownHeld) hi = mid
          else lo = mid + 1
        }
        ms = now - times[2 * lo + 1]
      }
      out.push({ id: c.peer, ms })
    }
    return out
  }
}
