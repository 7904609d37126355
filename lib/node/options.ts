/**
 * The options of a TCP node (`startNode`), their checks and defaults
 * (`checkOptions`), and addresses as the command line writes them.
 *
 * @packageDocumentation
 */
import { isIP } from 'net'
import type { Config, Resolve, Security } from '../types'
import type { MembershipOptions } from '../membership'
import { MAX_FRAME_LENGTH } from '../wire/binary'
import { FORMATS, type Format } from '../wire/codec'
import { checkCodecs } from '../wire/handshake'
import { badCluster, type HelloAuth } from '../wire/session'
import { loadPeer } from './peer'
import type { StoreOptions } from './store'
import type { Address, LogLevel } from './types'

/** The port `simple-scuttle node` listens on unless told otherwise (its admin endpoint: {@link DEFAULT_ADMIN_PORT}). */
export const DEFAULT_PORT = 7946
/** The port of the admin endpoint (`--admin`) unless told otherwise. */
export const DEFAULT_ADMIN_PORT = 7947

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** This node's source id. */
  id: string
  /** Where to accept peers. Default 127.0.0.1, port 0 (any free port; the command's default is {@link DEFAULT_PORT}). */
  listen?: Partial<Address>
  /** Peers to dial, and redial with backoff while they are away. */
  connect?: Address[]
  /** Data directory for durable state; none keeps state in memory only. */
  data?: string
  /** Store options for `data`. */
  store?: StoreOptions
  /** Milliseconds between exchanges with one random connected peer. Default 1000. */
  interval?: number
  /** Deltas per exchange. Default `base.config.mtu`. */
  mtu?: number
  /** Further gossip configuration (`max_history`, `order`, ...). */
  config?: Partial<Config>
  /** Resolution policy (or `config.resolve`). Required: there is no safe default (see `base.resolution`). */
  resolve?: Resolve
  /** Signed updates; see `ed25519`. */
  security?: Security
  /**
   * What to do with this node's writes that peers refuse as late (made
   * before deletes they collected, while this node heard from none of them;
   * see docs/deletes.md, rule 7): `'keep'` writes them again, `'drop'`
   * withdraws them. Unset: the node's `'late'` event is left to the caller.
   */
  late?: 'keep' | 'drop'
  /**
   * Where log lines go, one line each, with their level (`'warn'`: an
   * operator may have to act). Default: stderr, each line prefixed with `[ID] `.
   */
  log?: (line: string, level: LogLevel) => void
  /** Longest NDJSON line accepted from a peer. Default 1 MiB. */
  maxLineLength?: number
  /** Longest binary frame accepted from a peer, in bytes. Default MAX_FRAME_LENGTH (4 MiB). */
  maxFrameLength?: number
  /**
   * Wire formats this node speaks, preferred first: it writes the first of
   * these that the peer's hello lists. Default `['binary', 'ndjson']`;
   * `['ndjson']` keeps every connection readable by people.
   */
  codecs?: Format[]
  /**
   * Also accept peers over WebSocket here (browsers: see `joinNode`). Off
   * by default; `{}` is 127.0.0.1 on any free port.
   */
  ws?: Partial<Address>
  /** Invalid objects tolerated from one peer before it is disconnected. Default 0. */
  maxInvalid?: number
  /** Updates accepted in a row from a peer before a digest must end them. Default max(1000, 10 × mtu). */
  floodLimit?: number
  /**
   * A peer that has not read what we sent for this long, or has not said
   * hello, is disconnected. Default max(10 s, 10 × interval).
   */
  stallTimeout?: number
  /**
   * How long, in ms, close() waits for a peer's digest to name this node's
   * writes (so that they are not in its directory alone, which a restore
   * from an older backup would lose). Default 0 (no wait); the command
   * waits 5 s.
   */
  stopWait?: number
  /**
   * Most connections at once, in and out; a new one past it is refused.
   * Default 64.
   */
  maxConnections?: number
  /**
   * Digests (questions or replies) answered per second for one peer, on
   * average; past it a peer's digests are dropped unanswered, so no peer can
   * make this node send more than its share. Default max(4, 4 per interval).
   */
  digestRate?: number
  /** First and longest redial delay, ms. Default 100 and 5000. */
  backoff?: { min?: number; max?: number }
  /** Random numbers in [0, 1), for peer choice and jitter. Default Math.random. */
  random?: () => number
  /** The wall clock, ms since the epoch, for the twin rules' windows (a handover is taken within a minute of its refusal). Default Date.now. */
  now?: () => number
  /**
   * The cluster's name, said in the hello: a peer of another cluster is
   * refused. At most 128 characters, no control characters. Default
   * `"default"`.
   */
  cluster?: string
  /**
   * Membership and failure detection (see {@link simple-scuttle!Membership | Membership}): `true`, or
   * its options. The node advertises its listening address (or
   * `membership.address`) and heartbeats every `interval` unless told
   * otherwise. Default off: its keys (`member/…`, `heartbeat/…`) would
   * appear in the state of a program that did not ask for them.
   */
  membership?: boolean | MembershipOptions
  /** Serve Prometheus metrics over HTTP here (`GET /metrics`), each request within `requestTimeout` ms (default 3000). Default: none. */
  metrics?: Partial<Address> & { requestTimeout?: number }
  /**
   * Hello proofs (`helloAuth`): every peer must prove its id with its key,
   * and a peer without one is refused. `simple-scuttle node --keys` sets it.
   */
  auth?: HelloAuth
  /**
   * Origins a browser's WebSocket may come from (its `Origin` header, as
   * `https://host:port`), besides the node's own host when the page named
   * it by IP address or localhost (a DNS name could be rebound: list it
   * here). Clients that send no Origin (not browsers) are not asked.
   * Default: none besides the own host.
   */
  wsOrigins?: string[]
  /**
   * New members (records `member/<id>` of an id not yet held) one peer may
   * introduce per interval, besides itself; the rest wait for a later
   * exchange. Bounds how fast one peer can fill `maxMembers`. Default 8.
   */
  memberRate?: number
  /** The address said in this node's hello (where a twin is told its elder is). Default: the listening address. */
  advertise?: string
}

/** The cluster of a node, or of a hello, that names none. */
export const DEFAULT_CLUSTER = 'default'

// What the ws and metrics options need installed (see loadPeer).
const WS_FEATURE = 'A node with WebSockets (the ws option, --ws)'
const METRICS_FEATURE = 'A node with metrics (the metrics option, --metrics)'

/** A node's options checked, with their defaults: what its constructor builds on. */
export interface CheckedOptions {
  /** The node's config: `options.config` with `resolve`, `mtu` and `security` given apart laid over it. */
  readonly config: Config
  readonly codecs: Format[]
  readonly cluster: string
  readonly membership: MembershipOptions | null
  readonly interval: number
  readonly maxLineLength: number
  readonly maxFrameLength: number
  readonly maxInvalid: number
  readonly stallTimeout: number
  readonly stopWait: number
  readonly maxConnections: number
  readonly random: () => number
  readonly now: () => number
}

/**
 * `options` checked, with their defaults, before the node opens anything.
 * @throws TypeError saying which option is wrong, or MissingPeerError for
 * an option whose optional package is not installed.
 */
export function checkOptions(options: NodeOptions): CheckedOptions {
  const interval = options.interval ?? 1000
  if (!(interval > 0)) throw new TypeError('interval must be a positive number of milliseconds')
  if (options.stopWait !== undefined && !(options.stopWait >= 0 && options.stopWait <= 60_000)) throw new TypeError('stopWait must be a number of milliseconds from 0 to 60000')
  const codecs = options.codecs === undefined ? [...FORMATS] : checkCodecs(options.codecs)
  const config: Config = {
    ...options.config,
    resolve: options.resolve ?? options.config?.resolve ?? null,
  }
  if (options.mtu !== undefined) config.mtu = options.mtu
  if (options.security !== undefined) config.security = options.security
  const cluster = options.cluster ?? DEFAULT_CLUSTER
  const bad = badCluster(cluster)
  if (bad !== null) throw new TypeError(`cluster name refused: ${bad}`)
  const m = options.membership ?? false
  if (m !== false && m !== true && (typeof m !== 'object' || m === null)) throw new TypeError('membership must be a boolean or options')
  // The optional packages these options need, asked for before anything opens.
  if (options.ws !== undefined) loadPeer('ws', WS_FEATURE)
  if (options.metrics !== undefined) loadPeer('prom-client', METRICS_FEATURE)
  return {
    config,
    codecs,
    cluster,
    membership: m === false ? null : m === true ? {} : m,
    interval,
    maxLineLength: options.maxLineLength ?? 1 << 20,
    maxFrameLength: options.maxFrameLength ?? MAX_FRAME_LENGTH,
    maxInvalid: options.maxInvalid ?? 0,
    stallTimeout: options.stallTimeout ?? Math.max(10_000, 10 * interval),
    stopWait: options.stopWait ?? 0,
    maxConnections: options.maxConnections ?? 64,
    random: options.random ?? Math.random,
    now: options.now ?? Date.now,
  }
}

/** `HOST:PORT` (`[v6]:PORT`; `:PORT` is 127.0.0.1) as an {@link Address}. @throws TypeError saying what is wrong. */
export function parseAddress(text: string): Address {
  const i = text.lastIndexOf(':')
  if (i < 0) throw new TypeError(`not HOST:PORT: "${text}"`)
  const portText = text.slice(i + 1)
  // Digits only: Number() would take "0x50" or "1e3" as a port.
  if (!/^-?\d+$/.test(portText)) throw new TypeError(`the port of "${text}" is not a number`)
  const port = Number(portText)
  if (port < 0 || port > 65535) throw new TypeError(`port ${port} of "${text}" is out of range (0 to 65535)`)
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  // A list given as one address ("h1:7946,h2:7946") would be dialed, and fail, forever.
  if (isIP(host) === 0 && !/^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$/i.test(host)) {
    throw new TypeError(`the host of "${text}" is neither an IP address nor a DNS name`)
  }
  return { host, port }
}

/** An address as `HOST:PORT` (`[v6]:PORT`). */
export const hostPort = (a: Address): string => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
