/**
 * Dials one peer address and redials it with backoff while it stays away
 * or misbehaves (the node's `--connect`); and one session dialed for one
 * errand ({@link errand}: a twin told, writes handed over).
 *
 * @packageDocumentation
 */
import * as net from 'net'
import type { Duplex } from 'readable-stream'
import type { Gossip } from '../gossip'
import { Session, type SessionOptions } from '../wire/session'
import type { Address } from './types'

/** Options of a {@link Dialer}. */
export interface DialerOptions {
  /** First and longest delay between attempts, ms. */
  min: number
  max: number
  /** Random numbers in [0, 1), for jitter. */
  random: () => number
  /** Called with each socket once connected; returns whether it was answered (restarts the backoff once it is). */
  connected: (socket: net.Socket) => { answered: boolean }
  /** Where the first failure of a run of failed attempts is said. */
  log: (line: string) => void
  /** Called once, when the first attempt's connection (or attempt to connect) ends. */
  firstEnded?: () => void
}

/** One `--connect` address, dialed and redialed. */
export class Dialer {
  private timer: NodeJS.Timeout | null = null
  private delay: number
  private socket: net.Socket | null = null
  // The last attempt failed (its error was logged; the next ones are not).
  private failing = false
  private stopped = false
  private firstEnded: (() => void) | undefined

  constructor(
    readonly address: Address,
    private readonly options: DialerOptions,
  ) {
    this.delay = options.min
    this.firstEnded = options.firstEnded
  }

  /** Dial now. */
  dial(): void {
    if (this.stopped) return
    this.timer = null
    const { host, port } = this.address
    const socket = net.connect({ host, port })
    this.socket = socket
    let conn: { answered: boolean } | null = null
    socket.once('connect', () => {
      this.failing = false
      conn = this.options.connected(socket)
    })
    socket.on('error', (err) => {
      if (conn !== null || this.failing) return
      this.failing = true
      this.options.log(`dial ${host}:${port}: ${err.message} (retrying with backoff)`)
    })
    socket.once('close', () => {
      this.socket = null
      const first = this.firstEnded
      this.firstEnded = undefined
      first?.()
      if (this.stopped) return
      // Only a connection that answered one of our questions starts the backoff again.
      if (conn?.answered === true) this.delay = this.options.min
      const wait = Math.min(this.options.max, this.delay) * (0.5 + this.options.random())
      this.delay = Math.min(this.options.max, this.delay * 2)
      this.timer = setTimeout(() => this.dial(), wait)
    })
  }

  /** Stop dialing, and drop the connection being made. */
  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.socket?.destroy()
  }
}

/** Why an errand ended without its `done(null)`: in words, and by a code when one is known (the session's refusal, the socket's errno). */
export interface ErrandFailure {
  reason: string
  code?: string
}

/**
 * One session to `to`, for one errand: once connected, `run` gets the
 * session and `done`, which ends it (the session and the socket
 * destroyed). Resolves with null when `done(null)` was called, else with
 * why not: what `done` was given, a socket error, the connection closed,
 * or no `done` within `wait` ms.
 */
export function errand(gossip: Gossip, options: SessionOptions, to: Address, wait: number, run: (s: Session, done: (why: string | null, code?: string) => void) => void): Promise<ErrandFailure | null> {
  return new Promise<ErrandFailure | null>((resolve) => {
    const socket = net.connect({ host: to.host, port: to.port })
    let session: Session | null = null
    let finished = false
    const done = (why: string | null, code?: string) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      session?.destroy()
      socket.destroy()
      resolve(why === null ? null : code === undefined ? { reason: why } : { reason: why, code })
    }
    const timer = setTimeout(() => done(`no answer within ${wait / 1000} s`), wait)
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.message, err.code))
    socket.once('close', () => done('the connection closed'))
    socket.once('connect', () => {
      session = new Session(gossip, socket as unknown as Duplex, options)
      run(session, done)
    })
  })
}
