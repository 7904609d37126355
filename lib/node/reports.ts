/**
 * What a TCP node makes of what its peers' sessions report: a refusal
 * (by either end), invalid input, a version far ahead of the clock. Each
 * is counted under its code, said within the log budget (bounded by the
 * code, never by text a peer chooses), and costs the peer what it
 * deserves: nothing for what an honest peer relays, its connection once
 * it sends more invalid input than `maxInvalid`.
 *
 * @packageDocumentation
 */
import type { InvalidCode } from '../codes'
import { Clock } from '../clock'
import type { SessionError } from '../wire/session'
import type { Admission } from './admission'
import type { Connection } from './connection'
import { hostPort } from './options'
import type { Twins } from './twins'
import type { CloseCode, LogLevel, NodeStats } from './types'

/** What the reports need of their node. */
export interface ReportsHost {
  /** The node's own id. */
  readonly id: string
  readonly counters: NodeStats
  readonly admission: Admission
  readonly twins: Twins
  readonly maxInvalid: number
  log(line: string, level?: LogLevel): void
  /** Log a line of `kind` within the node's log budget. */
  say(kind: string, line: string, level?: LogLevel): void
  /** Close `c` (see ScuttleNode.drop). */
  drop(c: Connection, code: CloseCode | null, reason: string | null, graceful?: boolean, limited?: boolean): void
  /** The node was restored from an older state than peers collected of its own deletes. */
  restoredStale(reason: string): void
}

/** A node's reports of its peers (see the module's comment). */
export class Reports {
  constructor(private readonly host: ReportsHost) {}

  /** Count invalid input under `code`. */
  count(code: InvalidCode): void {
    const invalid = this.host.counters.invalid
    invalid[code] = (invalid[code] ?? 0) + 1
  }

  /**
   * A version far ahead of the wall clock came from c (see Clock.NOTICE):
   * our own id (the clock jumped past it), or another source's max jumped
   * there. Said once per connection and source.
   */
  ahead(c: Connection, source: string, version: number): void {
    const seen = (c.aheadOf ??= new Set())
    if (seen.has(source) || seen.size >= 16) return
    seen.add(source)
    const own = this.host.id
    const minutes = ((version - Date.now() * 1000) / 60e6).toFixed(1)
    const peer = c.peer ?? c.address
    const why = `a forged update (without --keys any peer can write as any id), or ${source === own ? 'a twin' : source} with a clock that is wrong`
    this.host.say(
      'ahead',
      source === own
        ? `clock: peer ${peer} holds this node's own id ${source} at a version ${minutes} minutes ahead of the wall clock: ${why}; the clock jumps past it, so that this node's writes stay above it and are seen`
        : `peer ${peer}: sent an update of ${source} ${minutes} minutes ahead of this node's clock, above all of ${source} before (taken: up to ${Clock.AHEAD / 3.6e9} h is believed): ${why}`,
      'warn',
    )
  }

  /**
   * A session refused, by us or by the peer: said once per code and
   * address we dial; of incoming peers, once per reason for the first 16
   * reasons of a code (another cluster, a bad name), then every 100th of
   * the code. Bounded by the code, not the text: an incoming peer chooses
   * the text (its id, its cluster), and so could have every refusal said.
   */
  refused(c: Connection, err: SessionError, ours: boolean): void {
    if (c.closed) return
    const { admission, twins } = this.host
    const code = ours ? err.code : 'refused_by_peer'
    admission.count(code)
    // Our own address in --connect (a shared peer list is normal): not
    // dialed again, said once, and its incoming end closed quietly.
    if (ours && code === 'self' && twins.own(c.session.peerHello?.nonce)) {
      const d = c.dialer
      d?.stop()
      if (d !== null) this.host.log(`--connect ${hostPort(d.address)}: that is this node's own address; not dialed again [self]`)
      this.host.drop(c, code, null, true)
      return
    }
    if (!ours && err.peerCode === 'twin') twins.refusedBy(c, err)
    const said = ours ? err.code : `${err.peerCode ?? 'refused'}`
    const out = c.direction === 'out'
    const seen = admission.said(out ? `${c.address} ${said}` : said)
    // Of incoming peers, each reason the first time, for the first 16
    // reasons of a code.
    const first = out ? seen === 0 : admission.said(`${said}\u0000${err.message}`) === 0 && admission.said(`${said}\u0000reasons`) < 16
    const say = first || seen % 100 === 0
    this.host.drop(c, code, say ? (first ? err.message : `${err.message} (${seen + 1} times)`) : null, true, true)
  }

  /** Invalid input from c: counted; what it costs the peer depends on its code. */
  invalid(c: Connection, reason: string, code: InvalidCode): void {
    if (c.closed) return
    const host = this.host
    this.count(code)
    const who = c.peer ?? c.address
    switch (code) {
      // A twin (see Clock.TWIN_LIMIT), reported once per stream: the peer is
      // kept; it may only relay what a twin or a liar wrote as us.
      case 'twin_writes':
        host.counters.twins++
        host.say(code, `twin: peer ${who}: ${reason} (our writes are no longer issued again above its versions; stop one of the two) [${code}]`, 'warn')
        return
      // A value refused as late (docs/deletes.md, rule 5) is no fault of the
      // peer, which may relay it: said once per connection, the peer kept.
      case 'late':
        if (!c.lateSaid) {
          c.lateSaid = true
          host.say(code, `peer ${who}: refused ${reason} (said once per connection; the peer is kept) [${code}]`)
        }
        return
      // Restored from an older state than peers collected of our own
      // deletes: the operator must choose (see docs/deletes.md, Limits).
      case 'restored_stale':
        host.restoredStale(reason)
        return
      // A version too far ahead is refused and the peer kept: an honest peer
      // relays what a node with a wrong clock wrote (said once per
      // connection; what a flood of them costs, floodLimit bounds).
      case 'ahead':
        if (!c.aheadSaid) {
          c.aheadSaid = true
          host.say(code, `peer ${who}: refused ${reason} (said once per connection; the peer is kept) [${code}]`, 'warn')
        }
        return
    }
    c.invalid++
    if (c.invalid > host.maxInvalid) host.drop(c, code, `sent invalid input: ${reason}`)
    else host.say(`invalid:${code}`, `peer ${who}: invalid input dropped: ${reason} [${code}]`, 'warn')
  }
}
