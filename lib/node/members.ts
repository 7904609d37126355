/**
 * What a TCP node says of membership (`lib/membership.ts`): members live,
 * dead, restarted and collected, and twins it shows (a member's record
 * that goes back to an earlier start, a record of the node's own id that
 * says it started after this node did). Within the log budget: without
 * `--keys` any peer can forge members, and restart them, as fast as it
 * sends.
 *
 * @packageDocumentation
 */
import type { InvalidCode } from '../codes'
import type { Gossip } from '../gossip'
import { MEMBER_PREFIX, type Member, type Membership } from '../membership'
import type { Update } from '../types'
import { iso } from './twins'
import type { LogLevel, NodeStats } from './types'

/** What the node's membership lines need of it. */
export interface MembersHost {
  readonly gossip: Gossip
  readonly counters: NodeStats
  log(line: string, level?: LogLevel): void
  /** Log a line of `kind` within the node's log budget. */
  say(kind: string, line: string, level?: LogLevel): void
}

const where = (member: Member) => (member.address === null ? '' : ` at ${member.address}`)

/** Say `m`'s events. */
export function sayMembers(m: Membership, host: MembersHost): void {
  // Invalid membership reports so far (one in 100 is logged).
  let invalid = 0
  m.on('live', (member: Member) => host.say('member_live', `member ${member.id} is live${where(member)}`))
  m.on('dead', (member: Member) =>
    host.say(
      'member_dead',
      `member ${member.id} is dead${where(member)}: no heartbeat for ${member.lastHeard} ms ` +
        `(phi ${member.phi.toFixed(1)} > ${m.threshold}; heartbeats came every ${Math.round(member.interval ?? 0)} ms)`,
      'warn',
    ),
  )
  m.on('restart', (member: Member, previous: number) => {
    // A record that goes back to an earlier start is no restart: two live
    // nodes write it in turn (or a clock went back).
    if (member.started !== null && member.started < previous) {
      host.counters.twins++
      // Their writes can hide each other's: offered to peers again (see Replica.twinned).
      host.gossip.twinned(member.id)
      host.say(
        'member_twin',
        `twin: member ${member.id}'s record went back from a start at ${iso(previous)} to ${iso(member.started)}${where(member)}: ` +
          `two live nodes say they are ${member.id} (or its clock went back); their writes can hide each other's: give each its own id`,
        'warn',
      )
    } else host.say('member_restarted', `member ${member.id} restarted (a new incarnation${where(member)})`)
  })
  m.on('collected', (member: Member, deleted: boolean) =>
    host.say(
      'member_collected',
      deleted
        ? `member ${member.id} collected: dead for ${m.grace} ms or more, dropped from the member list, its record and heartbeat deleted`
        : `member ${member.id} collected early: dead longest, dropped from the member list to make room (maxMembers)`,
    ),
  )
  m.on('invalid', (id: string, reason: string, code: InvalidCode) => {
    if (invalid++ % 100 === 0) host.log(`member ${id}: ${reason} (${invalid} such reports so far) [${code}]`)
  })
}

/**
 * Watch for a record of the node's own id that says it started after this
 * node did (with membership on, `membership()`): no past incarnation wrote
 * it; another live node with this id did (or a peer forged it). Said once.
 */
export function watchOwnRecord(host: MembersHost, membership: () => Membership | null): void {
  const gossip = host.gossip
  const own = gossip.id
  const ownRecord = MEMBER_PREFIX + own
  let said = false
  gossip.history.on('update', (u: Update) => {
    const m = membership()
    if (u.source_id !== own || u.key !== ownRecord || m === null) return
    const record = u.value as { address?: unknown; started?: unknown } | null
    const started = record?.started
    const ours = m.member(own)?.started ?? null
    if (typeof started !== 'number' || ours === null || started <= ours) return
    // Their writes can hide each other's: offered to peers again (see Replica.twinned).
    gossip.twinned(own)
    if (said) return
    said = true
    host.counters.twins++
    host.log(
      `twin: a record of this node's own id ${own}, at ${JSON.stringify(record?.address ?? null)}, started ${iso(started)}, after this node: ` +
        "another live node has this id (or a peer forged it); their writes can hide each other's: give each node its own id",
      'warn',
    )
  })
}
