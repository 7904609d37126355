/**
 * The admin endpoint of a running node (`simple-scuttle node --admin
 * HOST:PORT`), so that it can be operated without its stdin (under systemd
 * or in a container), as serf's and consul's agents are: the same binary
 * is its client (`simple-scuttle get KEY --node HOST:PORT`).
 *
 * | request | answer |
 * | --- | --- |
 * | `GET /health` | 200 `{"ok":true,"id"}` while the node serves |
 * | `GET /ready` | 200 `{"ready":true,...}` when ScuttleNode.ready(), else 503 with the reason |
 * | `GET /v1/kv/KEY` | `{"key","value","version"}` |
 * | `PUT /v1/kv/KEY` (body: JSON) | `{"ok":true,"key","version"}` once durable |
 * | `DELETE /v1/kv/KEY` | `{"ok":true,"key","version"}` once durable |
 * | `GET /v1/members`, `/v1/status`, `/v1/peers`, `/v1/state` | as the stdin commands answer |
 *
 * A refusal is a JSON `{"ok":false,"code","error"}` with a 4xx or 5xx
 * status. Bounded (see bounded-http.ts): 64 connections (the oldest not
 * being answered makes room), 3 s for a whole request, a body of at most 3 MiB of
 * UTF-8 (room for any value within the one value limit, see MAX_BODY).
 * With a token, every request but `/health` and `/ready` must carry
 * `Authorization: Bearer TOKEN` (the scheme in any case); a node bound anywhere but loopback
 * must have one. An address (an IPv6 /64) that sent 10 wrong tokens within
 * a minute is answered 429 for a minute, whatever it sends; past 100 wrong
 * tokens a minute from all addresses, so is every address not seen with
 * the right token (see FailureLimiter). Web pages are refused: a request with an `Origin` (unless
 * allowed), or whose `Host` is a DNS name not allowed (a page whose name
 * was rebound to this address), a `PUT` not in JSON, methods not listed.
 * A request without `Host` is refused (400 `bad_request`), one whose `Host`
 * is not allowed too (403), unless it carries the token (then checked).
 *
 * @packageDocumentation
 */
import * as crypto from 'crypto'
import * as http from 'http'
import * as net from 'net'
import type { AdminCode } from '../codes'
import { MAX_VALUE_LENGTH } from '../value'
import { boundedServer, closeIfUnread } from './bounded-http'
import type { Address, LogLevel } from './types'

/** What one admin request asks the node. */
export interface AdminRequest {
  command: 'get' | 'set' | 'del' | 'members' | 'status' | 'peers' | 'state'
  key?: string
  /** The body of a `set`, as JSON text. */
  value?: string
}

/** The node's side of the endpoint. */
export interface AdminTarget {
  /** The node's id (said by `/health`). */
  readonly id: string
  /** What `/ready` says (ScuttleNode.ready), and why not. */
  readiness(): { ready: boolean; joined: boolean; synced: boolean; reason?: string | null; writable?: boolean; write_refusal?: string | null }
  /** Answer a request: an object to send, or `{ok: false, code, error}`. */
  run(request: AdminRequest): Promise<Record<string, unknown>>
}

/** Options of {@link AdminServer}. */
export interface AdminOptions {
  /** Where to listen. Default 127.0.0.1:7947. */
  at: Partial<Address>
  /** Required of every request but the probes; needed when bound anywhere but loopback. */
  token?: string
  /** DNS names a request's `Host` may name besides IP literals and localhost (and `at.host`). */
  hosts?: string[]
  /** Browser origins (`Origin` header) served; a request from any other origin is refused. */
  origins?: string[]
  /** Milliseconds for a whole request, headers and body (default 3000). */
  requestTimeout?: number
  /** Wrong tokens an address may send within `ms` before it is refused for `ms` (default 10 in 60,000). */
  lockout?: Lockout
  /** Where errors of the server go. */
  log: (line: string, level?: LogLevel) => void
}

/** See {@link AdminOptions.lockout}. */
export interface Lockout {
  attempts: number
  ms: number
  /**
   * Wrong tokens from all addresses together within `ms` past which only
   * addresses seen with the right token are served, for `ms` (default 100):
   * the cap on guesses from an attacker holding many addresses.
   */
  global?: number
}

/** The default {@link Lockout}: 10 wrong tokens a minute per address, 100 from all. */
const LOCKOUT: Required<Lockout> = { attempts: 10, ms: 60_000, global: 100 }

/** Most addresses a {@link FailureLimiter} remembers, counting and locked together; and known good. */
const MAX_TRACKED = 4096
const MAX_GOOD = 1024

type Entry = { failures: number; until: number }

/**
 * Wrong tokens by address, so that they cannot be tried as fast as a
 * client can send them: `attempts` within `ms` of the first lock the
 * address out for `ms`. An IPv6 address counts as its /64 (one host is
 * usually given a whole one). Memory is bounded (MAX_TRACKED addresses),
 * and so are guesses from an attacker with many addresses (127/8, a /48):
 * an address still counting is forgotten before any lock is, and past
 * `global` wrong tokens from all addresses within `ms`, or with the table
 * full of locks, every address but those seen with the right token is
 * refused until `ms` has passed.
 */
export class FailureLimiter {
  // Address -> failures in its window and when it ends, in the order
  // windows began; locked addresses, in the order their locks end.
  private readonly counting = new Map<string, Entry>()
  private readonly locks = new Map<string, Entry>()
  // Addresses seen with the right token, least recent first.
  private readonly known = new Set<string>()
  private readonly lockout: Required<Lockout>
  // Wrong tokens from all addresses in the window ending at globalUntil;
  // past lockedAll, only known addresses are served.
  private global = 0
  private globalUntil = -Infinity
  private lockedAll = -Infinity

  constructor(
    lockout: Lockout = LOCKOUT,
    private readonly now: () => number = Date.now,
  ) {
    this.lockout = { ...LOCKOUT, ...lockout }
  }

  /** Addresses remembered. */
  get size(): number {
    return this.counting.size + this.locks.size
  }

  /** Seconds until `address` may try again, or 0. */
  locked(address: string): number {
    const k = key(address)
    const now = this.now()
    const e = this.locks.get(k)
    let until = e === undefined ? 0 : e.until
    if (!this.known.has(k)) until = Math.max(until, this.lockedAll)
    const left = until - now
    return left > 0 ? Math.ceil(left / 1000) : 0
  }

  /** `address` sent the right token: served while others are refused (its own lock aside). */
  good(address: string): void {
    const k = key(address)
    this.known.delete(k)
    this.known.add(k)
    if (this.known.size > MAX_GOOD) this.known.delete(this.known.values().next().value as string)
  }

  /** `address` sent a wrong token: what that locked, if anything. */
  failed(address: string): 'address' | 'all' | null {
    const k = key(address)
    const now = this.now()
    const { attempts, ms, global } = this.lockout
    let all = false
    if (now >= this.globalUntil) {
      this.global = 0
      this.globalUntil = now + ms
    }
    if (++this.global === global) {
      this.lockedAll = now + ms
      all = true
    }
    this.expire(now)
    const locked = this.locks.get(k)
    if (locked !== undefined) return all ? 'all' : null
    let e = this.counting.get(k)
    if (e === undefined || now >= e.until) {
      this.counting.delete(k)
      if (this.size >= MAX_TRACKED) {
        // An address still counting goes first (its window began first); a lock, never.
        const first = this.counting.keys().next()
        if (first.done === true) {
          // Every address held is locked: nobody new is served until the first lock ends.
          const was = this.lockedAll > now
          this.lockedAll = Math.max(this.lockedAll, now + ms)
          return all || !was ? 'all' : null
        }
        this.counting.delete(first.value)
      }
      e = { failures: 0, until: now + ms }
      this.counting.set(k, e)
    }
    if (++e.failures < attempts) return all ? 'all' : null
    this.counting.delete(k)
    e.until = now + ms
    this.locks.set(k, e)
    return all ? 'all' : 'address'
  }

  // Locks end in the order they began: drop those ended.
  private expire(now: number): void {
    for (const [k, e] of this.locks) {
      if (e.until > now) break
      this.locks.delete(k)
    }
  }
}

// What an address is counted as: IPv4 as it is (mapped into IPv6 or not), IPv6 by its /64.
function key(address: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (v4 !== null) return v4[1]
  if (net.isIPv6(address)) {
    // Expand "::" to read the first four groups.
    const [head, tail = ''] = address.toLowerCase().split('::')
    const h = head === '' ? [] : head.split(':')
    const t = tail === '' ? [] : tail.split(':')
    const groups = address.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h
    return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`
  }
  return address
}

/**
 * Longest request body: the longest value. The value limit is the one of
 * every path, MAX_VALUE_LENGTH characters of JSON (checked on the value as
 * it is parsed); in UTF-8 a character takes at most three bytes, so any
 * value within it, written as JSON.stringify writes it, fits (the binary
 * wire's MAX_FRAME_LENGTH makes the same room).
 */
const MAX_BODY = 3 * MAX_VALUE_LENGTH + (16 << 10)

/** Most connections at once (the oldest not being answered makes room for a new one). */
const MAX_CONNECTIONS = 64

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

/** Whether `host` is loopback: the endpoint needs no token there. */
export const isLoopback = (host: string): boolean => LOOPBACK.test(host)

/** Codes of the admin endpoint's refusals (lib/codes.ts). */
export type { AdminCode }

/** The methods of each path. */
function methods(path: string): string | null {
  if (path === '/health' || path === '/ready') return 'GET, HEAD'
  if (/^\/v1\/kv\/./.test(path)) return 'GET, PUT, DELETE'
  if (/^\/v1\/(members|status|peers|state)$/.test(path)) return 'GET'
  return null
}

/**
 * Whether a `Host` header names this endpoint so that no DNS answer
 * chose it: an IP literal, localhost (browsers resolve neither through
 * DNS), or a name the operator gave. A page of evil.example whose name was
 * rebound to 127.0.0.1 sends `Host: evil.example`.
 */
function hostAllowed(host: string, names: ReadonlySet<string>): boolean {
  // A host and a port, nothing else: URL would read `evil.example@127.0.0.1`
  // (userinfo) as 127.0.0.1.
  if (!/^(\[[0-9a-fA-F:.]+\]|[^\s@/\\?#[\]:]+)(:\d*)?$/.test(host)) return false
  let name: string
  try {
    name = new URL(`http://${host}`).hostname
  } catch {
    return false
  }
  // URL keeps IPv6 literals in brackets, and lower-cases names.
  if (net.isIP(name.replace(/^\[|\]$/g, '')) !== 0) return true
  return name === 'localhost' || name.endsWith('.localhost') || names.has(name)
}

/**
 * The path of a request target as sent, its query left out: no dot
 * segment is resolved (URL would make `/v1/kv/..` and `/v1/kv/%2E%2E` into
 * `/v1/`, and the keys `.` and `..`, which a peer may write, could never
 * be read or deleted). The absolute form (`http://host/path`) gives its
 * authority too.
 */
function requestTarget(url: string): { authority: string | null; path: string } {
  const q = url.indexOf('?')
  const target = q < 0 ? url : url.slice(0, q)
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)(.*)$/i.exec(target)
  if (absolute === null) return { authority: null, path: target }
  return { authority: absolute[1], path: absolute[2] === '' ? '/' : absolute[2] }
}

/** The admin endpoint: one HTTP server, bounded like the metrics one. */
export class AdminServer {
  private readonly server: http.Server
  private readonly hosts: ReadonlySet<string>
  private readonly failures: FailureLimiter

  private constructor(
    private readonly target: AdminTarget,
    private readonly options: AdminOptions,
  ) {
    const names = [...(options.hosts ?? []), options.at.host ?? '127.0.0.1']
    this.hosts = new Set(names.map((h) => h.toLowerCase()))
    this.failures = new FailureLimiter(options.lockout)
    this.server = boundedServer(
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => send(res, 500, { ok: false, code: 'refused', error: `admin: ${(err as Error)?.message}` }))
      },
      { maxConnections: MAX_CONNECTIONS, requestTimeout: options.requestTimeout, checksHost: true },
    )
  }

  /**
   * Listen, and serve `target`.
   * @throws TypeError when bound anywhere but loopback without a token; what listening throws.
   */
  static async start(target: AdminTarget, options: AdminOptions): Promise<AdminServer> {
    const host = options.at.host ?? '127.0.0.1'
    if (!isLoopback(host) && (options.token === undefined || options.token.length < 16)) {
      throw new TypeError(`--admin on ${host} needs a token of 16 characters or more (--admin-token-file, or SCUTTLE_ADMIN_TOKEN): it is reachable from other machines`)
    }
    const admin = new AdminServer(target, options)
    await new Promise<void>((resolve, reject) => {
      admin.server.once('error', reject)
      admin.server.listen(options.at.port ?? 7947, host, () => {
        admin.server.off('error', reject)
        resolve()
      })
    })
    admin.server.on('error', (err) => options.log(`admin server error: ${err.message}`))
    return admin
  }

  /** Where it listens. */
  address(): Address {
    const a = this.server.address() as net.AddressInfo
    return { host: a.address, port: a.port }
  }

  /** Stop serving. */
  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path, authority } = requestTarget(req.url ?? '/')
    // Browsers first: a page must not drive the node, neither from its
    // own origin (Origin header) nor after rebinding its name to this
    // address (Host header). A request without Host is no HTTP/1.1 client's
    // (RFC 9112 3.2). Either is served only carrying the token (no page
    // holds it), checked below as every token is, probes included.
    // One Host at most (RFC 9112 3.2: more is a bad request; Node keeps the
    // first, a proxy may use the last); an absolute-form target's
    // authority wins over it (RFC 9112 3.2.2), so that is what is checked.
    let hosts = 0
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i].toLowerCase() === 'host') hosts++
    if (hosts > 1) return send(res, 400, { ok: false, code: 'bad_request', error: `${hosts} Host headers: a request names one` })
    const host = authority ?? req.headers.host
    const token = this.options.token
    const hostOk = host !== undefined && hostAllowed(host, this.hosts)
    const tokened = token !== undefined && req.headers.authorization !== undefined
    if (host === undefined && !tokened) {
      return send(res, 400, { ok: false, code: 'bad_request', error: 'a request names its Host (HTTP/1.1 requires it): the address or localhost name it asks' })
    }
    if (host !== undefined && !hostOk && !tokened) {
      return send(res, 403, {
        ok: false,
        code: 'forbidden',
        error: `Host ${JSON.stringify(host.slice(0, 100))} is not this endpoint's address: ask it by IP address or localhost, or allow the name with --admin-host (a DNS name could be a rebinding web page)`,
      })
    }
    const origin = req.headers.origin
    if (origin !== undefined && !(this.options.origins ?? []).includes(origin)) {
      return send(res, 403, { ok: false, code: 'forbidden', error: `requests from web pages (Origin ${JSON.stringify(origin.slice(0, 100))}) are refused unless allowed with --admin-origin` })
    }
    const allowed = methods(path)
    if (allowed !== null && !allowed.split(', ').includes(req.method ?? '')) {
      res.setHeader('allow', allowed)
      return send(res, 405, { ok: false, code: 'method_not_allowed', error: `${req.method} ${path.slice(0, 100)}: use ${allowed}` })
    }
    const probe = (req.method === 'GET' || req.method === 'HEAD') && (path === '/health' || path === '/ready')
    // Without a Host that names this endpoint, probes too need the token.
    if (token !== undefined && (!probe || !hostOk)) {
      // A locked-out address is refused before its token is looked at: a guess that hits must not tell.
      const address = req.socket.remoteAddress ?? ''
      const wait = this.failures.locked(address)
      if (wait > 0) {
        res.setHeader('retry-after', String(wait))
        return send(res, 429, { ok: false, code: 'too_many_attempts', error: `too many wrong tokens from ${address}, or from all addresses: try again in ${wait} s` })
      }
      if (!sameToken(req.headers.authorization, token)) {
        const locked = this.failures.failed(address)
        const { attempts, ms, global } = { ...LOCKOUT, ...this.options.lockout }
        if (locked === 'address') {
          this.options.log(`admin: ${attempts} requests with a wrong token from ${address} within ${ms / 1000} s: its requests are refused for ${ms / 1000} s [too_many_attempts]`, 'warn')
        } else if (locked === 'all') {
          this.options.log(
            `admin: ${global} requests with a wrong token from all addresses within ${ms / 1000} s: requests from addresses not seen with the right token are refused for ${ms / 1000} s [too_many_attempts]`,
            'warn',
          )
        }
        return send(res, 401, { ok: false, code: 'unauthorized', error: 'a token is needed: Authorization: Bearer TOKEN (the client reads --token-file or SCUTTLE_ADMIN_TOKEN)' })
      }
      this.failures.good(address)
    }
    if (probe && path === '/health') return send(res, 200, { ok: true, id: this.target.id })
    if (probe) {
      const r = this.target.readiness()
      return send(res, r.ready ? 200 : 503, r)
    }
    const kv = /^\/v1\/kv\/(.+)$/.exec(path)
    let request: AdminRequest | null = null
    if (kv !== null) {
      let key: string
      try {
        key = decodeURIComponent(kv[1])
      } catch {
        return send(res, 400, { ok: false, code: 'bad_request', error: 'the key is not valid percent-encoding' })
      }
      if (req.method === 'GET') request = { command: 'get', key }
      else if (req.method === 'DELETE') request = { command: 'del', key }
      else if (req.method === 'PUT') {
        // A form or a "simple" cross-site request cannot say JSON without a preflight.
        if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
          return send(res, 415, { ok: false, code: 'unsupported_media_type', error: 'a value is sent as Content-Type: application/json' })
        }
        const body = await readBody(req)
        if (body === null) {
          return send(res, 413, {
            ok: false,
            code: 'too_large',
            error: `a body over ${MAX_BODY} bytes, room for any value within the limit (${MAX_VALUE_LENGTH} characters of JSON, at most 3 bytes each in UTF-8): this one is longer, or padded`,
          })
        }
        let text: string
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(body)
        } catch {
          return send(res, 400, { ok: false, code: 'bad_request', error: 'the body is not valid UTF-8' })
        }
        request = { command: 'set', key, value: text }
      }
    } else if (req.method === 'GET') {
      const name = /^\/v1\/(members|status|peers|state)$/.exec(path)?.[1] as AdminRequest['command'] | undefined
      if (name !== undefined) request = { command: name }
    }
    if (request === null) {
      return send(res, 404, { ok: false, code: 'not_found', error: `no such endpoint: ${req.method} ${path.slice(0, 100)} (see GET /v1/status, /v1/members, /v1/peers, /v1/state, GET|PUT|DELETE /v1/kv/KEY, /health, /ready)` })
    }
    const answer = await this.target.run(request)
    if (answer.ok === false) {
      const code = typeof answer.code === 'string' ? answer.code : 'refused'
      return send(res, code === 'store_failed' || code === 'twin' ? 503 : 400, { ...answer, code })
    }
    return send(res, 200, answer)
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  closeIfUnread(res.req, res)
  res.writeHead(status, { 'content-type': 'application/json' }).end(res.req.method === 'HEAD' ? undefined : `${JSON.stringify(body)}\n`)
}

// Compared in constant time: the token is a password. The scheme is
// case-insensitive, and one or more spaces follow it (RFC 9110 11.1, 11.4).
function sameToken(header: string | undefined, token: string): boolean {
  const m = /^bearer +(.+)$/i.exec(header ?? '')
  if (m === null) return false
  const a = crypto.createHash('sha256').update(m[1]).digest()
  const b = crypto.createHash('sha256').update(token).digest()
  return crypto.timingSafeEqual(a, b)
}

// The body, or null past MAX_BODY (the rest is read and dropped, so that
// the 413 reaches the client).
function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let n = 0
    const take = (b: Buffer) => {
      n += b.length
      if (n <= MAX_BODY) {
        parts.push(b)
        return
      }
      req.off('data', take)
      req.resume()
      parts.length = 0
      resolve(null)
    }
    req.on('data', take)
    req.on('end', () => resolve(n > MAX_BODY ? null : Buffer.concat(parts)))
    req.on('error', reject)
  })
}
